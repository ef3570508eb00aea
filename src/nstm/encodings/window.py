"""Coarse-to-fine frequency window shared by the coordinate encodings.

The window anneals the fine levels of an encoding in during training: early in the
optimization only coarse features reach the network, which keeps the motion
network from fitting high-frequency noise before the coarse motion is found.
"""

# jaxtyping shape strings are not Python expressions.
# ruff: noqa: F722

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

__all__ = ["coarse_to_fine_window"]


def coarse_to_fine_window(alpha: ArrayLike | None, num_levels: int) -> Float[Array, " num_levels"]:
    r"""Per-level weights of the coarse-to-fine annealing window.

    Level 0 (the coarsest) is always fully on. For ``num_levels`` :math:`L > 1`,
    level :math:`l \geq 1` ramps from 0 to 1 while ``alpha`` goes from
    :math:`(l - 1) / (L - 1)` to :math:`l / (L - 1)`, following the cosine ramp

    .. math::

        w_l = \tfrac{1}{2}\left(1 - \cos\left(\pi\,
              \mathrm{clip}(\alpha (L - 1) - (l - 1), 0, 1)\right)\right).

    Hence ``alpha <= 0`` gives ``[1, 0, ..., 0]`` and ``alpha >= 1`` gives all
    ones (the identity window).

    Parameters
    ----------
    alpha : float or scalar array or None
        Fraction of the annealing schedule completed (dimensionless, usually in
        ``[0, 1]``; values outside are clipped). May be a traced JAX scalar, so the
        window can change every step inside a jitted training loop without
        recompiling. ``None`` means the window is fully open.
    num_levels : int
        Number of encoding levels :math:`L`, ``>= 1``.

    Returns
    -------
    window : Float[Array, "num_levels"]
        float32 weights in ``[0, 1]``, non-decreasing in ``alpha`` for each level.

    Raises
    ------
    ValueError
        If ``num_levels < 1`` or ``alpha`` is not a scalar.

    Notes
    -----
    This differs from the original NSTM implementation in two ways:

    * There, level 0 was also ramped, so at ``alpha = 0`` the encoding was all
      zeros and the network saw a constant input. Here level 0 is always on.
    * The original laid encoding features out feature-major, so the two features
      of one level were windowed by different weights and did not open together.
      Our encodings are level-major and the window is repeated per feature, so
      all features of a level open together.

    Examples
    --------
    >>> coarse_to_fine_window(0.5, 4)
    Array([1. , 1. , 0.5, 0. ], dtype=float32)
    """
    if isinstance(num_levels, bool) or not isinstance(num_levels, int | np.integer):
        raise ValueError(f"num_levels must be an integer >= 1, got {num_levels!r}.")
    if num_levels < 1:
        raise ValueError(f"num_levels must be an integer >= 1, got {num_levels}.")
    num_levels = int(num_levels)
    if alpha is None:
        return jnp.ones((num_levels,), jnp.float32)
    if jnp.ndim(alpha) != 0:
        raise ValueError(f"alpha must be a scalar, got an array of shape {jnp.shape(alpha)}.")
    return _window(alpha, num_levels)


# Jitted so that eager calls (e.g. logging the window) compile once per num_levels.
@functools.partial(jax.jit, static_argnums=1)
def _window(alpha: ArrayLike, num_levels: int) -> Float[Array, " num_levels"]:
    levels = jnp.arange(num_levels, dtype=jnp.float32)
    ramp = jnp.clip(jnp.asarray(alpha, jnp.float32) * (num_levels - 1) - (levels - 1), 0.0, 1.0)
    window = 0.5 * (1.0 - jnp.cos(jnp.pi * ramp))
    # The ramp gives level 0 a weight < 1 for alpha < 0; pin it on.
    return jnp.where(levels == 0, 1.0, window)
