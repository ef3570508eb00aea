"""Fourier-feature (NeRF-style positional) encoding with a coarse-to-fine window."""

# jaxtyping shape strings are not Python expressions.
# ruff: noqa: F722

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .hashgrid import _check_int
from .window import coarse_to_fine_window

__all__ = ["FourierFeatureEncoding"]


class FourierFeatureEncoding(eqx.Module):
    r"""Parameter-free sinusoidal encoding of coordinates in a bounding box.

    Coordinates are normalized to ``u = 2 (x - bbox_min) / (bbox_max - bbox_min) - 1``
    and clamped to ``[-1, 1]`` per axis (points outside the box read the value on
    its boundary, as in :class:`~nstm.encodings.HashGridEncoding`). Band ``k`` uses
    the angular frequency :math:`f_k = 2^k \pi`, ``k = 0, ..., num_levels - 1``, and
    contributes ``2 * ndim`` features interleaved per axis::

        [sin(f_k u_0), cos(f_k u_0), sin(f_k u_1), cos(f_k u_1), ...]

    Bands are concatenated level-major (band 0 first) and windowed by
    :func:`~nstm.encodings.coarse_to_fine_window`, all features of a band sharing
    one weight. With ``include_input=True`` the normalized coordinates ``u`` are
    prepended; they are never windowed.

    Parameters
    ----------
    bbox_min, bbox_max : sequence of float, length ndim
        Lower and upper corners of the box, in the units of the input coordinates.
    num_levels : int, default 8
        Number of frequency bands ``L``.
    include_input : bool, default False
        Whether to prepend the normalized coordinates ``u`` to the features.

    Attributes
    ----------
    bbox_min, bbox_max : tuple of float
        Bounding box.
    num_levels : int
        Number of frequency bands.
    include_input : bool
        Whether ``u`` is prepended.
    """

    bbox_min: tuple[float, ...] = eqx.field(static=True)
    bbox_max: tuple[float, ...] = eqx.field(static=True)
    num_levels: int = eqx.field(static=True)
    include_input: bool = eqx.field(static=True)

    def __init__(
        self,
        bbox_min: Sequence[float],
        bbox_max: Sequence[float],
        *,
        num_levels: int = 8,
        include_input: bool = False,
    ):
        lo = tuple(float(v) for v in np.ravel(bbox_min))
        hi = tuple(float(v) for v in np.ravel(bbox_max))
        if len(lo) != len(hi):
            raise ValueError(
                f"bbox_min and bbox_max must have the same length, got {len(lo)} and {len(hi)}."
            )
        if len(lo) < 1:
            raise ValueError("bbox_min must have at least 1 entry (ndim), got 0.")
        if not all(math.isfinite(v) for v in lo + hi):
            raise ValueError(f"bbox must be finite, got bbox_min={lo}, bbox_max={hi}.")
        if not all(h > l for l, h in zip(lo, hi, strict=True)):
            raise ValueError(
                f"bbox_max must be > bbox_min on every axis, got bbox_min={lo}, bbox_max={hi}."
            )
        num_levels = _check_int("num_levels", num_levels, 1)
        self.bbox_min = lo
        self.bbox_max = hi
        self.num_levels = num_levels
        self.include_input = bool(include_input)

    @property
    def ndim(self) -> int:
        """Number of input dimensions."""
        return len(self.bbox_min)

    @property
    def output_size(self) -> int:
        """Feature size, ``num_levels * 2 * ndim`` (``+ ndim`` with ``include_input``)."""
        return self.num_levels * 2 * self.ndim + (self.ndim if self.include_input else 0)

    def __call__(
        self, coords: Float[ArrayLike, "*batch ndim"], *, alpha: ArrayLike | None = None
    ) -> Float[Array, "*batch output_size"]:
        """Encode coordinates.

        Parameters
        ----------
        coords : Float[ArrayLike, "*batch ndim"]
            Coordinates in the units of the bounding box, any leading batch shape.
        alpha : float or scalar array or None, optional
            Coarse-to-fine annealing progress (see :func:`coarse_to_fine_window`);
            ``None`` applies no window.

        Returns
        -------
        features : Float[Array, "*batch output_size"]
            ``[u (if include_input), band 0, band 1, ...]``, each band
            ``[sin(f u_0), cos(f u_0), ..., sin(f u_{ndim-1}), cos(f u_{ndim-1})]``.
        """
        coords = jnp.asarray(coords)
        if coords.ndim < 1 or coords.shape[-1] != self.ndim:
            raise ValueError(
                f"coords must have shape (*batch, {self.ndim}), got shape {coords.shape}."
            )
        if not jnp.issubdtype(coords.dtype, jnp.floating):
            coords = coords.astype(jnp.float32)
        return _encode(
            coords,
            alpha,
            bbox_min=self.bbox_min,
            bbox_max=self.bbox_max,
            num_levels=self.num_levels,
            include_input=self.include_input,
        )


# Jitted so that eager calls compile one program; inside a caller's jit it is inlined.
@functools.partial(jax.jit, static_argnames=("bbox_min", "bbox_max", "num_levels", "include_input"))
def _encode(
    coords: Float[Array, "*batch ndim"],
    alpha: ArrayLike | None,
    *,
    bbox_min: tuple[float, ...],
    bbox_max: tuple[float, ...],
    num_levels: int,
    include_input: bool,
) -> Float[Array, "*batch out"]:
    lo = jnp.asarray(bbox_min, dtype=coords.dtype)
    hi = jnp.asarray(bbox_max, dtype=coords.dtype)
    u = 2.0 * jnp.clip((coords - lo) / (hi - lo), 0.0, 1.0) - 1.0

    freqs = jnp.asarray(np.pi * 2.0 ** np.arange(num_levels), dtype=coords.dtype)
    phase = u[..., None, :] * freqs[:, None]  # (*batch, L, ndim)
    # Interleave sin/cos per axis, then flatten level-major -> (*batch, L * 2 * ndim).
    bands = jnp.stack([jnp.sin(phase), jnp.cos(phase)], axis=-1)
    if alpha is not None:
        window = coarse_to_fine_window(alpha, num_levels).astype(bands.dtype)
        bands = bands * window[:, None, None]
    features = bands.reshape(*coords.shape[:-1], num_levels * 2 * coords.shape[-1])
    if include_input:
        features = jnp.concatenate([u, features], axis=-1)
    return features
