"""Multiresolution hash-grid encoding (instant-NGP style) for 1 to 4 dimensions."""

# jaxtyping shape strings are not Python expressions.
# ruff: noqa: F722

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import operator
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from .. import host_random
from .window import coarse_to_fine_window

__all__ = ["HashGridEncoding", "HASH_PRIMES"]

#: Per-axis primes of the spatial hash (Müller et al., instant-NGP, 2022). Axis 0
#: uses 1 so that, along it, consecutive vertices map to consecutive entries.
HASH_PRIMES: tuple[int, ...] = (1, 2654435761, 805459861, 3674653429)

_MAX_LOG2_TABLE_SIZE = 30  # keeps dense vertex indices within int32
_MAX_TOTAL_ENTRIES = 2**31 - 1  # rows of the levels' tables stacked into one, int32-indexed


def _check_int(name: str, value: object, minimum: int) -> int:
    """``value`` as an int ``>= minimum``, or a ValueError naming ``name``."""
    try:
        if isinstance(value, bool):
            raise TypeError
        out = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.") from None
    if out < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {out}.")
    return out


def _as_resolution(value: Sequence[int] | int, ndim: int, name: str) -> tuple[int, ...]:
    """Broadcast an int or per-axis sequence of ints to a tuple of ``ndim`` positive ints."""
    values = [value] * ndim if np.ndim(value) == 0 else list(value)  # type: ignore[arg-type]
    if len(values) != ndim:
        raise ValueError(
            f"{name} must be an int or a sequence of {ndim} ints (one per axis of the "
            f"bounding box), got {value!r}."
        )
    out = []
    for v in values:
        try:
            if isinstance(v, bool):
                raise TypeError
            iv = operator.index(v)
        except TypeError:
            raise ValueError(f"{name} must contain integers, got {value!r}.") from None
        if iv < 1:
            raise ValueError(f"{name} must contain positive integers, got {value!r}.")
        out.append(iv)
    return tuple(out)


def _level_resolutions(
    base: tuple[int, ...], finest: tuple[int, ...], num_levels: int
) -> tuple[tuple[int, ...], ...]:
    """Per-level, per-axis grid resolutions (cells), geometric from ``base`` to ``finest``.

    Computed in float64 with a small epsilon before flooring, so the last level is
    exactly ``finest`` (float32 can land just below an integer and lose a cell).
    """
    if num_levels == 1:
        return (finest,)
    base_a = np.asarray(base, dtype=np.float64)
    growth = (np.asarray(finest, dtype=np.float64) / base_a) ** (1.0 / (num_levels - 1))
    levels = np.arange(num_levels, dtype=np.float64)[:, None]
    res = np.floor(base_a * growth**levels + 1e-6).astype(np.int64)
    return tuple(tuple(int(n) for n in row) for row in res)


def _init_tables(
    key: PRNGKeyArray, sizes: tuple[int, ...], features: int, scale: float
) -> tuple[Float[Array, "entries features"], ...]:
    """One table per level, uniform in ``[-scale, scale)``."""
    keys = host_random.split(key, len(sizes))
    return tuple(
        host_random.uniform(k, (n, features), -scale, scale)
        for k, n in zip(keys, sizes, strict=True)
    )


class HashGridEncoding(eqx.Module):
    """Multiresolution grid encoding of 1D to 4D coordinates (instant-NGP style).

    Each of ``num_levels`` levels is a regular grid over the bounding box whose
    vertices carry ``features_per_level`` trainable features. A coordinate is
    encoded by multilinear interpolation of the features at the ``2**ndim``
    vertices of its cell, at every level, and the per-level results are
    concatenated level-major (level 0 first).

    A level whose vertex grid fits in ``2**log2_table_size`` entries is stored
    densely (one entry per vertex, no collisions); finer levels share a table of
    ``2**log2_table_size`` entries indexed by the spatial hash
    ``XOR_d (i_d * HASH_PRIMES[d]) mod 2**log2_table_size`` (uint32 arithmetic).

    Parameters
    ----------
    bbox_min, bbox_max : sequence of float, length ndim
        Lower and upper corners of the encoded box, in the units of the input
        coordinates, e.g. ``(y, x)`` in pixels for a 2D scene or ``(z, y, x, t)``
        for 3D motion. ``ndim = len(bbox_min)`` must be 1, 2, 3 or 4.
    base_resolution : int or sequence of int
        Grid resolution of level 0, in cells across the box, per axis (an int is
        used for every axis).
    finest_resolution : int or sequence of int
        Grid resolution of the last level, in cells per axis, ``>= base_resolution``.
        Level resolutions grow geometrically per axis; an axis with
        ``base == finest`` keeps that resolution at every level.
    num_levels : int, default 8
        Number of levels ``L``.
    features_per_level : int, default 2
        Features per vertex ``F``.
    log2_table_size : int, default 19
        Base-2 log of the maximum number of entries per level table, in ``[1, 30]``.
    init_scale : float, default 1e-4
        Table entries are initialized from ``U[-init_scale, init_scale]``.
    key : PRNGKeyArray
        Random key for the initialization.

    Attributes
    ----------
    tables : tuple of Float[Array, "entries_l F"]
        Per-level feature tables (float32), ``entries_l = prod(N_l + 1)`` for dense
        levels and ``2**log2_table_size`` for hashed levels.
    bbox_min, bbox_max : tuple of float
        Bounding box.
    level_resolutions : tuple of tuple of int
        ``level_resolutions[l][d]`` is the number of cells ``N_l`` of level ``l``
        along axis ``d``.
    is_dense : tuple of bool
        Whether each level is stored densely (``True``) or hashed.
    log2_table_size : int
        Base-2 log of the maximum table size.
    features_per_level : int
        Features per level ``F``.

    Notes
    -----
    Coordinates are mapped to ``u = (x - bbox_min) / (bbox_max - bbox_min)`` and
    **clamped to** ``[0, 1]`` per axis: points outside the box read the encoding
    at the nearest point on the box boundary. This is deliberate: during motion
    estimation, warped coordinates can leave the box, and clamping gives them a
    well-defined, continuous value (with zero gradient along the clamped axes)
    instead of wrapping or hashing garbage.

    Examples
    --------
    >>> import jax
    >>> enc = HashGridEncoding((0.0, 0.0), (256.0, 256.0), base_resolution=16,
    ...                        finest_resolution=256, key=jax.random.key(0))
    >>> enc(jax.numpy.zeros((1024, 2))).shape
    (1024, 16)
    """

    tables: tuple[Float[Array, "entries features"], ...]
    bbox_min: tuple[float, ...] = eqx.field(static=True)
    bbox_max: tuple[float, ...] = eqx.field(static=True)
    level_resolutions: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    is_dense: tuple[bool, ...] = eqx.field(static=True)
    log2_table_size: int = eqx.field(static=True)
    features_per_level: int = eqx.field(static=True)

    def __init__(
        self,
        bbox_min: Sequence[float],
        bbox_max: Sequence[float],
        *,
        base_resolution: Sequence[int] | int,
        finest_resolution: Sequence[int] | int,
        num_levels: int = 8,
        features_per_level: int = 2,
        log2_table_size: int = 19,
        init_scale: float = 1e-4,
        key: PRNGKeyArray,
    ):
        lo = tuple(float(v) for v in np.ravel(bbox_min))
        hi = tuple(float(v) for v in np.ravel(bbox_max))
        if len(lo) != len(hi):
            raise ValueError(
                f"bbox_min and bbox_max must have the same length, got {len(lo)} and {len(hi)}."
            )
        ndim = len(lo)
        if not 1 <= ndim <= 4:
            raise ValueError(f"bbox_min must have 1 to 4 entries (ndim), got {ndim}.")
        if not all(math.isfinite(v) for v in lo + hi):
            raise ValueError(f"bbox must be finite, got bbox_min={lo}, bbox_max={hi}.")
        if not all(h > l for l, h in zip(lo, hi, strict=True)):
            raise ValueError(
                f"bbox_max must be > bbox_min on every axis, got bbox_min={lo}, bbox_max={hi}."
            )
        num_levels = _check_int("num_levels", num_levels, 1)
        features_per_level = _check_int("features_per_level", features_per_level, 1)
        log2_table_size = _check_int("log2_table_size", log2_table_size, 1)
        if log2_table_size > _MAX_LOG2_TABLE_SIZE:
            raise ValueError(
                f"log2_table_size must be in [1, {_MAX_LOG2_TABLE_SIZE}], got {log2_table_size}."
            )
        if not init_scale >= 0:
            raise ValueError(f"init_scale must be >= 0, got {init_scale}.")
        base = _as_resolution(base_resolution, ndim, "base_resolution")
        finest = _as_resolution(finest_resolution, ndim, "finest_resolution")
        if any(b > f for b, f in zip(base, finest, strict=True)):
            raise ValueError(
                f"base_resolution must be <= finest_resolution on every axis, got "
                f"base_resolution={base}, finest_resolution={finest}."
            )

        resolutions = _level_resolutions(base, finest, num_levels)
        max_entries = 2**log2_table_size
        is_dense = tuple(math.prod(n + 1 for n in res) <= max_entries for res in resolutions)
        sizes = _table_sizes(resolutions, is_dense, log2_table_size)
        if sum(sizes) > _MAX_TOTAL_ENTRIES:
            raise ValueError(
                f"The {num_levels} levels' tables would hold {sum(sizes)} entries in all, more "
                f"than the {_MAX_TOTAL_ENTRIES} that int32 row indices address: lower "
                f"log2_table_size ({log2_table_size}) or num_levels."
            )
        self.tables = _init_tables(key, tuple(sizes), features_per_level, init_scale)
        self.bbox_min = lo
        self.bbox_max = hi
        self.level_resolutions = resolutions
        self.is_dense = is_dense
        self.log2_table_size = log2_table_size
        self.features_per_level = features_per_level

    @property
    def ndim(self) -> int:
        """Number of input dimensions."""
        return len(self.bbox_min)

    @property
    def num_levels(self) -> int:
        """Number of levels ``L``."""
        return len(self.tables)

    @property
    def output_size(self) -> int:
        """Size of the encoding, ``num_levels * features_per_level``."""
        return self.num_levels * self.features_per_level

    def __call__(
        self, coords: Float[ArrayLike, "*batch ndim"], *, alpha: ArrayLike | None = None
    ) -> Float[Array, "*batch num_levels*features_per_level"]:
        """Encode coordinates.

        Parameters
        ----------
        coords : Float[ArrayLike, "*batch ndim"]
            Coordinates in the units of the bounding box, any leading batch shape.
            Points outside the box are clamped onto it.
        alpha : float or scalar array or None, optional
            Coarse-to-fine annealing progress (see :func:`coarse_to_fine_window`);
            ``None`` applies no window.

        Returns
        -------
        features : Float[Array, "*batch num_levels*features_per_level"]
            Level-major features: ``features[..., l*F:(l+1)*F]`` belong to level ``l``.
        """
        coords = jnp.asarray(coords)
        if coords.ndim < 1 or coords.shape[-1] != self.ndim:
            raise ValueError(
                f"coords must have shape (*batch, {self.ndim}), got shape {coords.shape}."
            )
        if not jnp.issubdtype(coords.dtype, jnp.floating):
            coords = coords.astype(jnp.float32)
        features = _encode(
            self.tables,
            coords.reshape(-1, self.ndim),
            alpha,
            bbox_min=self.bbox_min,
            bbox_max=self.bbox_max,
            resolutions=self.level_resolutions,
            dense=self.is_dense,
            log2_table_size=self.log2_table_size,
        )
        return features.reshape(*coords.shape[:-1], self.output_size)


@dataclasses.dataclass(frozen=True)
class _GridSpec:
    """Static geometry of a :class:`HashGridEncoding` (hashable: a ``custom_vjp`` static arg)."""

    bbox_min: tuple[float, ...]
    bbox_max: tuple[float, ...]
    resolutions: tuple[tuple[int, ...], ...]
    dense: tuple[bool, ...]
    log2_table_size: int


# Jitted so that eager calls compile one program instead of every primitive per shape;
# inside a caller's jit it is simply inlined.
@functools.partial(
    jax.jit,
    static_argnames=("bbox_min", "bbox_max", "resolutions", "dense", "log2_table_size"),
)
def _encode(
    tables: tuple[Float[Array, "entries F"], ...],
    points: Float[Array, "P ndim"],
    alpha: ArrayLike | None,
    *,
    bbox_min: tuple[float, ...],
    bbox_max: tuple[float, ...],
    resolutions: tuple[tuple[int, ...], ...],
    dense: tuple[bool, ...],
    log2_table_size: int,
) -> Float[Array, "P L*F"]:
    """Level-major, windowed features of flattened points; see :class:`HashGridEncoding`."""
    spec = _GridSpec(bbox_min, bbox_max, resolutions, dense, log2_table_size)
    features = _interpolate(spec, tables, points)
    if alpha is not None:
        window = coarse_to_fine_window(alpha, len(tables)).astype(features.dtype)
        # Applied as a product with the diagonal matrix, which XLA computes once: as a
        # broadcast product, XLA:CPU fuses the window's cosines into every loop over the
        # features and their cotangent and evaluates them per element (a third of the
        # encoding's backward). Exact: the off-diagonal zeros add nothing.
        scale = jnp.diag(jnp.repeat(window, tables[0].shape[-1]))  # (L*F, L*F)
        features = jnp.matmul(features, scale, precision=jax.lax.Precision.HIGHEST)
    return features


# The per-point arithmetic below works on one contiguous (P, L) array per axis and per corner
# (structure of arrays): XLA:CPU vectorizes such loops well, while (P, ndim) / (P, corners)
# layouts become strided loops that cost more than the gathers themselves.


def _box_coords(spec: _GridSpec, points: Float[Array, "P ndim"]) -> Float[Array, "P ndim"]:
    """The points mapped to the unit box (not clamped: 0 and 1 are its faces)."""
    lo = np.asarray(spec.bbox_min, np.float32)
    hi = np.asarray(spec.bbox_max, np.float32)
    return (points - lo) / (hi - lo)


def _unit(spec: _GridSpec, points: Float[Array, "P ndim"]) -> tuple[Float[Array, " P"], ...]:
    """Per axis, the points mapped to the unit box and clamped onto it.

    XLA fuses (recomputes) this, and whatever produced ``points``, into every level's loops:
    callers should pass points whose producer is cheap to recompute and reads memory
    contiguously (the renderer's warp is component-major for this reason).
    """
    unit = jnp.clip(_box_coords(spec, points), 0.0, 1.0)
    return tuple(unit[:, d] for d in range(unit.shape[-1]))


def _corners(ndim: int) -> np.ndarray:
    """Corner offsets ``{0, 1}^ndim`` (C, ndim), axis 0 slowest, the same for every level."""
    return np.array(list(itertools.product((0, 1), repeat=ndim)), dtype=np.int32)


def _table_sizes(
    resolutions: tuple[tuple[int, ...], ...], dense: tuple[bool, ...], log2_table_size: int
) -> list[int]:
    """Entries of each level's table: one per vertex if dense, else the hash table's size."""
    return [
        math.prod(n + 1 for n in res) if is_dense else 2**log2_table_size
        for res, is_dense in zip(resolutions, dense, strict=True)
    ]


def _table_offsets(spec: _GridSpec) -> np.ndarray:
    """First row of each level in the levels' tables stacked into one, ``(L,)`` int32."""
    sizes = _table_sizes(spec.resolutions, spec.dense, spec.log2_table_size)
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)


def _cells(
    spec: _GridSpec, unit: tuple[Float[Array, " P"], ...]
) -> tuple[Int[Array, "C P L"], tuple[Float[Array, "P L"], ...]]:
    """For every level at once: rows of the stacked tables for the ``2**ndim`` corners of each
    point's cell, and the point's position inside the cell per axis (``frac``, in [0, 1]).

    All levels are computed together as ``(P, L)`` arrays, with the per-level resolutions,
    strides and table offsets as ``(L,)`` constants, so that the program has one operation
    per corner and axis rather than one per level (unrolled levels made up most of the
    training step's compile time). Level-minor, so that the features come out in the
    encoding's ``(P, L*F)`` order and its cotangent is read in place.
    """
    res = np.asarray(spec.resolutions, np.int32)  # (L, ndim)
    ndim = res.shape[1]
    cells, fracs = [], []
    for d, u in enumerate(unit):
        pos = u[:, None] * res[:, d].astype(np.float32)  # (P, L)
        # Clip so that points on the upper face use the last cell with weight 1.
        cell = jnp.clip(jnp.floor(pos).astype(jnp.int32), 0, res[:, d] - 1)
        cells.append(cell)
        fracs.append(pos - cell.astype(pos.dtype))
    corners = _corners(ndim)
    dense = np.asarray(spec.dense)
    if dense.any():
        # Row-major ravel of the vertex index; the per-corner offset is a constant per level.
        sizes = res.astype(np.int64) + 1
        strides = np.cumprod(sizes[:, ::-1], axis=1)[:, ::-1]
        strides = np.concatenate([strides[:, 1:], np.ones_like(strides[:, :1])], 1)
        # (L, ndim); zero on hashed levels, whose vertex counts can overflow int32 and whose
        # dense rows are discarded below.
        strides = np.where(dense[:, None], strides, 0).astype(np.int32)
        base = sum(c * strides[:, d] for d, c in enumerate(cells))
        dense_rows = [base + strides @ corner for corner in corners]
    if not dense.all():
        primes = np.asarray(HASH_PRIMES[:ndim], dtype=np.uint32)
        lo_hash = [c.astype(jnp.uint32) * p for c, p in zip(cells, primes, strict=True)]
        # (i + 1) * p == i * p + p (mod 2**32): the upper corner's hash is one add away.
        hi_hash = [h + p for h, p in zip(lo_hash, primes, strict=True)]
        mask = np.uint32(2**spec.log2_table_size - 1)
        hashed_rows = [
            (
                functools.reduce(
                    operator.xor, [hi_hash[d] if up else lo_hash[d] for d, up in enumerate(c)]
                )
                & mask
            ).astype(jnp.int32)
            for c in corners
        ]
    if dense.all():
        rows = dense_rows
    elif not dense.any():
        rows = hashed_rows
    else:
        rows = [jnp.where(dense, a, b) for a, b in zip(dense_rows, hashed_rows, strict=True)]
    index = jnp.stack(rows) + _table_offsets(spec)
    # Materialized once: fused into their consumers, the index arithmetic would be redone in
    # every gather and scatter, where it does not vectorize.
    index, frac = jax.lax.optimization_barrier((index, jnp.stack(fracs)))
    return index, tuple(frac)


def _corner_weights(fracs: tuple[Float[Array, "*shape"], ...]) -> list[Float[Array, "*shape"]]:
    """Multilinear weight ``prod_d (frac_d if upper_d else 1 - frac_d)`` of every corner."""
    factors = [(1.0 - f, f) for f in fracs]
    return [
        functools.reduce(operator.mul, (factors[d][up] for d, up in enumerate(corner)))
        for corner in _corners(len(fracs))
    ]


def _gather(
    table: Float[Array, "entries F"], index: Int[Array, "*shape"]
) -> Float[Array, "*shape F"]:
    # Indices are in range by construction (clipped cells, masked hashes), so skip the
    # bounds handling of jnp.take's default "fill" mode.
    values = table.at[index.reshape(-1)].get(mode="promise_in_bounds")
    return values.reshape(*index.shape, table.shape[-1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _interpolate(
    spec: _GridSpec, tables: tuple[Float[Array, "entries F"], ...], points: Float[Array, "P ndim"]
) -> Float[Array, "P L*F"]:
    """Multilinear interpolation of every level's table at the points, level-major.

    The levels' tables are read as one stacked table (a copy of well under the points'
    size). A custom VJP: autodiff of the interpolation materializes several ``(C, P, L)``
    temporaries, while the hand-written backward scatters the table gradients directly and
    forms the coordinate gradient from the corner values.
    """
    index, fracs = _cells(spec, _unit(spec, points))
    values = _gather(jnp.concatenate(tables), index)  # (C, P, L, F)
    # An explicit sum over corners: XLA lowers the equivalent einsum to a batched dot that
    # first copies the gathered values into a transposed buffer.
    terms = [w[..., None] * v for w, v in zip(_corner_weights(fracs), values, strict=True)]
    features = functools.reduce(operator.add, terms)  # (P, L, F)
    return features.reshape(points.shape[0], -1)


def _interpolate_fwd(spec, tables, points):
    return _interpolate(spec, tables, points), (tables, points)


def _interpolate_bwd(spec, residuals, cotangent):
    tables, points = residuals
    table = jnp.concatenate(tables)
    features = table.shape[-1]
    unit = _unit(spec, points)
    ndim = len(unit)
    index, fracs = _cells(spec, unit)
    num_points, num_levels = index.shape[1:]
    g = cotangent.reshape(num_points, num_levels, features)  # (P, L, F)
    weights = jnp.stack(_corner_weights(fracs))  # (C, P, L)
    table_grad = (
        jnp.zeros_like(table)
        .at[index.reshape(-1)]
        .add((weights[..., None] * g).reshape(-1, features), mode="promise_in_bounds")
    )
    table_grads = tuple(jnp.split(table_grad, _table_offsets(spec)[1:]))
    # d feature / d frac_d = sum_c (d weight_c / d frac_d) value_c, and d frac / d unit = n.
    # Feature and level sums written out: XLA:CPU runs small reductions as slow library calls.
    values = _gather(table, index)  # (C, P, L, F)
    value_dot_g = [
        functools.reduce(operator.add, [v[..., f] * g[..., f] for f in range(features)])
        for v in values
    ]
    factors = [(1.0 - f, f) for f in fracs]
    resolutions = np.asarray(spec.resolutions, np.float32)  # (L, ndim)
    unit_grads = []
    for d in range(ndim):
        terms = []
        for c, corner in enumerate(_corners(ndim)):
            others = [factors[e][up] for e, up in enumerate(corner) if e != d]
            term = functools.reduce(operator.mul, others, value_dot_g[c])
            terms.append(term if corner[d] else -term)
        per_level = sum(terms) * resolutions[:, d]  # (P, L)
        unit_grads.append(
            functools.reduce(operator.add, [per_level[:, lv] for lv in range(num_levels)])
        )
    # The clamp onto the box passes the gradient inside it and blocks it outside.
    raw = _box_coords(spec, points)
    inside = (raw >= 0.0) & (raw <= 1.0)
    extent = np.asarray(spec.bbox_max, np.float32) - np.asarray(spec.bbox_min, np.float32)
    points_grad = jnp.where(inside, jnp.stack(unit_grads, -1), 0.0) / extent
    return table_grads, points_grad.astype(points.dtype)


_interpolate.defvjp(_interpolate_fwd, _interpolate_bwd)
