"""The neural space-time model: a motion network and a time-free scene network.

The scene at time t is read from a canonical, time-independent scene at displaced coordinates,

    x(r, t) = O(r + M(r, t)),

with ``r`` a pixel coordinate of the rendered grid (axis order (y, x) or (z, y, x), pixel units),
``t`` in [-1, 1], ``M`` the motion network (displacement in pixels) and ``O`` the scene network.
Both are an encoding followed by a small MLP. The coarse-to-fine parameter ``alpha`` is an
argument of every call, so both encodings are annealed in sync by construction.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from .. import host_random
from ..config import FieldConfig, ModelConfig
from ..encodings import FourierFeatureEncoding, HashGridEncoding
from .mlp import MLP

Encoding = HashGridEncoding | FourierFeatureEncoding


class SpaceTimeModel(eqx.Module):
    """Motion network + scene network, rendered on a fixed pixel grid.

    Parameters
    ----------
    scene_encoding, scene_mlp
        Scene network: ``ndim`` coordinates -> ``channels`` values.
    motion_encoding, motion_mlp
        Motion network: ``ndim + 1`` coordinates (space, then t) -> ``ndim`` raw outputs.
    grid_shape : tuple of int
        The rendered grid, ``(H, W)`` or ``(Z, H, W)``.
    displacement_scale_px : tuple of float
        Per-axis factor turning the motion MLP's output into pixels.
    motion_stride_px : int
        The motion network is evaluated on a lattice of nodes this many pixels apart (from
        pixel 0 of every axis) and interpolated multilinearly in between; 1 evaluates it at
        every point. Motion is smooth, so a stride of a few pixels changes it negligibly while
        dividing the motion network's cost by ``stride ** ndim``.
    """

    scene_encoding: Encoding
    scene_mlp: MLP
    motion_encoding: Encoding
    motion_mlp: MLP
    grid_shape: tuple[int, ...] = eqx.field(static=True)
    displacement_scale_px: tuple[float, ...] = eqx.field(static=True)
    motion_stride_px: int = eqx.field(static=True, default=1)

    @property
    def ndim(self) -> int:
        """Number of spatial axes."""
        return len(self.grid_shape)

    @property
    def channels(self) -> int:
        """Number of scene channels."""
        return self.scene_mlp.out_size

    def motion_network(
        self, coords: Float[Array, "*batch ndim"], t: Float[ArrayLike, "*batch"], *, alpha=None
    ) -> Float[Array, "*batch ndim"]:
        """The motion network itself at arbitrary points, in pixels (no lattice)."""
        # Named scopes ("motion", "scene") label the compiled program's operations by network,
        # for profiles (benchmarks/profile_step.py --trace).
        with jax.named_scope("motion"):
            t = jnp.broadcast_to(jnp.asarray(t, coords.dtype), coords.shape[:-1])
            features = self.motion_encoding(
                jnp.concatenate([coords, t[..., None]], -1), alpha=alpha
            )
            return self.motion_mlp(features) * jnp.asarray(self.displacement_scale_px, coords.dtype)

    def displacement(
        self, coords: Float[Array, "*batch ndim"], t: Float[ArrayLike, "*batch"], *, alpha=None
    ) -> Float[Array, "*batch ndim"]:
        """Displacement M(r, t) in pixels: the scene at (r, t) is the canonical scene at r + M.

        With ``motion_stride_px > 1``, the multilinear interpolation of the motion network
        between the lattice nodes around each point.
        """
        stride = self.motion_stride_px
        if stride == 1:
            return self.motion_network(coords, t, alpha=alpha)
        nodes = np.asarray(_lattice_nodes(self.grid_shape, stride))
        pos = jnp.clip(coords, 0.0, (nodes - 1) * stride) / stride
        cell = jnp.clip(jnp.floor(pos), 0.0, np.maximum(nodes - 2, 0))
        frac = pos - cell
        result = jnp.zeros_like(coords)
        for corner in itertools.product((0.0, 1.0), repeat=self.ndim):
            weight = jnp.prod(jnp.where(np.asarray(corner) > 0, frac, 1.0 - frac), axis=-1)
            node = (cell + np.asarray(corner, np.float32)) * stride
            result += weight[..., None] * self.motion_network(node, t, alpha=alpha)
        return result

    def _lattice_displacement(
        self,
        times: Float[Array, " times"],
        alpha,
        origins: Int[Array, "times ndim"] | None = None,
        box: tuple[int, ...] | None = None,
    ) -> Float[Array, "ndim times *box"]:
        """Displacement at every grid point (or every point of the box of shape ``box`` from
        each time's origin), component-major: the network on the lattice, then separable
        interpolation (equal to :meth:`displacement` at grid points, far cheaper).
        Component-major keeps each axis's displacement contiguous, so the encodings read it
        without a transpose."""
        stride = self.motion_stride_px
        nodes = _lattice_nodes(self.grid_shape, stride)
        lattice = _grid_points(nodes, spacing=stride)
        num_times = times.shape[0]
        # One flat batch of (node, time) queries: a vmap over times would trace every
        # operation of the networks through the batching interpreter (~1 s of tracing).
        values = self.motion_network(
            jnp.tile(lattice, (num_times, 1)), jnp.repeat(times, lattice.shape[0]), alpha=alpha
        )
        with jax.named_scope("motion"):
            values = jnp.moveaxis(values.reshape(num_times, *nodes, self.ndim), -1, 0)
            if origins is None:
                # (ndim, times, *nodes) -> (ndim * times, *nodes): one batch of small grids.
                values = values.reshape(-1, *nodes)
                for axis, (n, k) in enumerate(zip(self.grid_shape, nodes, strict=True)):
                    matrix = jnp.asarray(_interpolation_matrix(n, k, stride))  # (n, k)
                    # Contract grid axis `axis` (at position axis + 1), keeping the axis order.
                    values = jnp.moveaxis(
                        jnp.tensordot(values, matrix, axes=(axis + 1, 1)), -1, axis + 1
                    )
                return values.reshape(self.ndim, num_times, *self.grid_shape)
            # Each time's box: the rows of the interpolation matrices from its origin.
            for axis, (n, k, b) in enumerate(zip(self.grid_shape, nodes, box, strict=True)):
                matrix = jnp.asarray(_interpolation_matrix(n, k, stride))
                rows = matrix[origins[:, axis, None] + jnp.arange(b)]  # (times, b, k)
                values = jnp.moveaxis(
                    jnp.einsum("dt...k,tbk->dt...b", jnp.moveaxis(values, axis + 2, -1), rows),
                    -1,
                    axis + 2,
                )
            return values

    def canonical(
        self, coords: Float[Array, "*batch ndim"], *, alpha=None
    ) -> Float[Array, "*batch channels"]:
        """The time-free canonical scene O(r)."""
        with jax.named_scope("scene"):
            return self.scene_mlp(self.scene_encoding(coords, alpha=alpha))

    def __call__(
        self, coords: Float[Array, "*batch ndim"], t: Float[ArrayLike, "*batch"], *, alpha=None
    ) -> Float[Array, "*batch channels"]:
        """The scene at time ``t``: O(r + M(r, t))."""
        return self.canonical(coords + self.displacement(coords, t, alpha=alpha), alpha=alpha)

    def grid_coords(self) -> Float[Array, "points ndim"]:
        """Pixel coordinates of every grid point, C order, shape ``(prod(grid_shape), ndim)``."""
        return _grid_points(self.grid_shape)

    def render(
        self,
        times: Float[ArrayLike, " times"],
        *,
        alpha=None,
        chunk_points: int | None = None,
        origins: Int[ArrayLike, "times ndim"] | None = None,
        box: Sequence[int] | None = None,
    ) -> Float[Array, "times *grid channels"]:
        """Render the grid, or a box of it, at each time (the training path, differentiable).

        Parameters
        ----------
        times : (T,) array_like
            Normalized times in [-1, 1].
        alpha : float, optional
            Coarse-to-fine progress of the encodings.
        chunk_points : int, optional
            Evaluate the ``T x points`` queries in chunks of this many, recomputing each
            chunk's activations in the backward pass instead of storing them: memory is then
            bounded by the chunk rather than the grid (about 0.75 KB per query point otherwise).
            None evaluates everything at once.
        origins : (T, ndim) int array_like, optional
            Grid index of the first pixel of each time's box (with ``box``); the box must lie
            within the grid. None renders the whole grid.
        box : sequence of int, optional
            Shape of the boxes (static), with ``origins``.

        Returns
        -------
        (T, *grid_shape, channels) array, or (T, *box, channels) with ``origins``
        """
        times = jnp.asarray(times, jnp.float32)
        num_times = times.shape[0]
        if origins is None:
            shape = self.grid_shape
            grid = self.grid_coords()
            coords = jnp.tile(grid, (num_times, 1))
        else:
            if box is None or len(box) != self.ndim:
                raise ValueError(f"box: expected {self.ndim} sizes with origins, got {box!r}")
            shape = tuple(int(b) for b in box)
            if any(b > n for b, n in zip(shape, self.grid_shape, strict=True)):
                raise ValueError(f"box: {shape} does not fit in the grid {self.grid_shape}")
            origins = jnp.asarray(origins, jnp.int32).reshape(num_times, self.ndim)
            grid = _grid_points(shape)
            coords = (grid[None] + origins[:, None].astype(jnp.float32)).reshape(-1, self.ndim)
        num_points = grid.shape[0]
        total = num_times * num_points
        t = jnp.repeat(times, num_points)
        on_lattice = self.motion_stride_px > 1
        if on_lattice:
            # Motion is cheap on the lattice: warp every point first, then query the scene.
            displacement = self._lattice_displacement(times, alpha, origins, shape)
            displacement = displacement.reshape(self.ndim, total)
            coords = jnp.stack([coords[:, d] + displacement[d] for d in range(self.ndim)], -1)

        def query(c, tc):
            return self.canonical(c, alpha=alpha) if on_lattice else self(c, tc, alpha=alpha)

        if chunk_points is None or chunk_points >= total:
            values = query(coords, t)
        else:
            if chunk_points < 1:
                raise ValueError(f"chunk_points must be >= 1 or None, got {chunk_points}")
            # Whole chunks (the last padded); each chunk's activations are recomputed in the
            # backward pass, so only its inputs are stored.
            chunks = math.ceil(total / chunk_points)
            pad = chunks * chunk_points - total
            coords = jnp.concatenate([coords, jnp.zeros((pad, self.ndim))])
            t = jnp.concatenate([t, jnp.zeros(pad)])
            values = jax.lax.map(
                jax.checkpoint(lambda args: query(*args)),
                (coords.reshape(chunks, chunk_points, self.ndim), t.reshape(chunks, chunk_points)),
            )
            values = values.reshape(-1, self.channels)[:total]
        return values.reshape(num_times, *shape, self.channels)


def _grid_points(shape: tuple[int, ...], spacing: float = 1.0) -> Float[Array, "points ndim"]:
    """Coordinates ``index * spacing`` of every point of a ``shape`` grid, C order."""
    axes = [jnp.arange(n, dtype=jnp.float32) * spacing for n in shape]
    return jnp.stack(jnp.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(shape))


def _lattice_nodes(grid_shape: tuple[int, ...], stride: int) -> tuple[int, ...]:
    """Nodes per axis of the motion lattice: positions 0, stride, ... up to >= n - 1."""
    return tuple(math.ceil((n - 1) / stride) + 1 for n in grid_shape)


def _interpolation_matrix(n: int, nodes: int, stride: int) -> np.ndarray:
    """(n, nodes) linear interpolation weights from lattice nodes to pixels 0..n-1."""
    pos = np.arange(n) / stride
    cell = np.clip(np.floor(pos), 0, max(nodes - 2, 0)).astype(int)
    frac = (pos - cell).astype(np.float32)
    matrix = np.zeros((n, nodes), np.float32)
    matrix[np.arange(n), cell] += 1.0 - frac
    upper = np.minimum(cell + 1, nodes - 1)
    matrix[np.arange(n), upper] += frac
    return matrix


def _chunked(fn, model: SpaceTimeModel, times: np.ndarray, chunk_points: int, out: int):
    """Evaluate ``fn(model, coords, t) -> (chunk, out)`` over the grid at each time, one
    fixed-size chunk of points at a time (one compilation, memory bounded by the chunk)."""
    if chunk_points < 1:
        raise ValueError(f"chunk_points must be >= 1, got {chunk_points}")
    coords = np.asarray(model.grid_coords())
    num_points = coords.shape[0]
    chunk = min(chunk_points, num_points)
    padded = math.ceil(num_points / chunk) * chunk
    coords = np.concatenate([coords, np.repeat(coords[-1:], padded - num_points, 0)])
    step = eqx.filter_jit(fn)
    results = np.empty((len(times), padded, out), np.float32)
    for i, t in enumerate(np.asarray(times, np.float32)):
        for start in range(0, padded, chunk):
            results[i, start : start + chunk] = step(model, coords[start : start + chunk], t)
    return results[:, :num_points].reshape(len(times), *model.grid_shape, out)


def render_scenes(
    model: SpaceTimeModel, times: Sequence[float] | np.ndarray, *, chunk_points: int = 1 << 16
) -> np.ndarray:
    """Render the scene at any times in [-1, 1] with all levels open.

    Parameters
    ----------
    model : SpaceTimeModel
    times : (T,) array_like
        Normalized times in [-1, 1]: measurement times or any times in between.
    chunk_points : int
        Points evaluated at once, which bounds memory regardless of the grid size.

    Returns
    -------
    (T, *grid_shape, channels) ndarray, float32
    """
    times = _check_times(times)
    # The training renderer (it validates chunk_points), one time per call: motion on the
    # lattice, the scene in chunks.
    frame = eqx.filter_jit(lambda m, t: m.render(t[None], chunk_points=chunk_points)[0])
    return np.stack([np.asarray(frame(model, t)) for t in times])


def motion_fields(
    model: SpaceTimeModel, times: Sequence[float] | np.ndarray, *, chunk_points: int = 1 << 16
) -> np.ndarray:
    """Displacement fields at any times: ``(T, *grid_shape, ndim)`` in pixels, axis order
    (dy, dx) or (dz, dy, dx); the scene at time t at pixel r is the canonical scene at
    r + motion."""
    times = _check_times(times)
    if model.motion_stride_px == 1:
        return _chunked(
            lambda m, r, t: m.displacement(r, t), model, times, chunk_points, model.ndim
        )
    field = eqx.filter_jit(lambda m, t: jnp.moveaxis(m._lattice_displacement(t[None], None), 0, -1))
    return np.concatenate([np.asarray(field(model, t)) for t in times])


def _check_times(times) -> np.ndarray:
    times = np.atleast_1d(np.asarray(times, np.float32))
    if times.ndim != 1:
        raise ValueError(f"times: expected a 1-D array of normalized times, got {times.shape}")
    if not np.all(np.isfinite(times)) or times.min() < -1 or times.max() > 1:
        raise ValueError(
            f"times: expected finite values in [-1, 1], got range [{times.min()}, {times.max()}]"
        )
    return times


# --------------------------------------------------------------------------- construction
def _make_encoding(
    config: FieldConfig,
    bbox_min: Sequence[float],
    bbox_max: Sequence[float],
    base: Sequence[int],
    finest: Sequence[int],
    *,
    key: PRNGKeyArray,
) -> Encoding:
    if config.encoding == "hashgrid":
        return HashGridEncoding(
            bbox_min,
            bbox_max,
            base_resolution=tuple(base),
            finest_resolution=tuple(finest),
            num_levels=config.num_levels,
            features_per_level=config.features_per_level,
            log2_table_size=config.log2_table_size,
            key=key,
        )
    if config.encoding == "fourier":
        return FourierFeatureEncoding(
            bbox_min, bbox_max, num_levels=config.num_levels, include_input=True
        )
    raise ValueError(f"encoding: expected 'hashgrid' or 'fourier', got {config.encoding!r}")


def _cells(extent: float, cell_px: float) -> int:
    return max(1, math.ceil(extent / cell_px - 1e-6))


def check_model_config(config: ModelConfig) -> None:
    """Raise a ValueError naming the field (``model.scene.mlp_width``...) for a config that
    cannot build a model, so that a run refuses it before writing or computing anything."""

    def integer(where: str, value, minimum: int) -> None:
        if isinstance(value, bool) or int(value) != value or value < minimum:
            raise ValueError(f"{where} must be an integer >= {minimum}, got {value!r}")

    def positive(where: str, value) -> None:
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{where} must be a positive number of pixels, got {value!r}")

    for name in ("scene", "motion"):
        field = getattr(config, name)
        where = f"model.{name}"
        integer(f"{where}.num_levels", field.num_levels, 1)
        integer(f"{where}.features_per_level", field.features_per_level, 1)
        integer(f"{where}.log2_table_size", field.log2_table_size, 1)
        integer(f"{where}.mlp_width", field.mlp_width, 1)
        integer(f"{where}.mlp_depth", field.mlp_depth, 0)
        positive(f"{where}.coarsest_cell_px", field.coarsest_cell_px)
        if field.finest_cell_px is not None:
            positive(f"{where}.finest_cell_px", field.finest_cell_px)
        if not np.isfinite(field.bbox_margin_px):  # may be negative (the paper's -0.5 px)
            raise ValueError(f"{where}.bbox_margin_px must be finite, got {field.bbox_margin_px!r}")
        if not (np.isfinite(field.bbox_margin_fraction) and field.bbox_margin_fraction >= 0):
            raise ValueError(
                f"{where}.bbox_margin_fraction must be >= 0, got {field.bbox_margin_fraction!r}"
            )
        if field.time_cells is not None:
            for value in field.time_cells:
                integer(f"{where}.time_cells", value, 1)
    if config.displacement_scale_px is not None:
        positive("model.displacement_scale_px", config.displacement_scale_px)
    integer("model.motion_stride_px", config.motion_stride_px, 1)


def make_model(
    config: ModelConfig,
    *,
    grid_shape: Sequence[int],
    channels: int,
    bandwidth_cycles_per_px: float | Sequence[float] = 0.5,
    num_times: int = 2,
    key: PRNGKeyArray,
) -> SpaceTimeModel:
    """Build a :class:`SpaceTimeModel` from a config and the imaging system's geometry.

    Parameters
    ----------
    config : ModelConfig
    grid_shape : sequence of int
        The rendered grid, ``(H, W)`` or ``(Z, H, W)`` pixels.
    channels : int
        Scene channels (from the imaging system).
    bandwidth_cycles_per_px : float or sequence of float
        Highest spatial frequency the system transmits, one value or one per axis. Unless
        ``config.scene.finest_cell_px`` is set, the scene's finest cell along each axis is
        ``1 / (2 * bandwidth)`` pixels (at least 1), so the encoding can represent everything
        the system passes.
    num_times : int
        Number of distinct render times; sets the motion's default temporal resolution.
    key : PRNGKeyArray
    """
    check_model_config(config)
    grid_shape = tuple(int(n) for n in grid_shape)
    ndim = len(grid_shape)
    if ndim not in (2, 3) or min(grid_shape) < 1:
        raise ValueError(f"grid_shape: expected (H, W) or (Z, H, W) > 0, got {grid_shape}")
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    k_se, k_sm, k_me, k_mm = host_random.split(key, 4)

    scene = config.scene
    if scene.finest_cell_px is not None:
        finest_cells = [scene.finest_cell_px] * ndim
    else:
        bandwidth = np.broadcast_to(np.asarray(bandwidth_cycles_per_px, np.float64), (ndim,))
        if not np.all(np.isfinite(bandwidth) & (bandwidth > 0)):
            raise ValueError(
                "bandwidth_cycles_per_px: expected positive frequencies in cycles/pixel, one or "
                f"one per axis of {grid_shape}, got {bandwidth_cycles_per_px!r}"
            )
        finest_cells = [1.0 / (2.0 * min(b, 0.5)) for b in bandwidth]
    margins = [scene.bbox_margin_px + scene.bbox_margin_fraction * n for n in grid_shape]
    lo = [-m for m in margins]
    hi = [n - 1 + m for n, m in zip(grid_shape, margins, strict=True)]
    extents = [h - l for l, h in zip(lo, hi, strict=True)]
    finest = [_cells(e, c) for e, c in zip(extents, finest_cells, strict=True)]
    base = [min(f, _cells(e, scene.coarsest_cell_px)) for e, f in zip(extents, finest, strict=True)]
    scene_encoding = _make_encoding(scene, lo, hi, base, finest, key=k_se)
    scene_mlp = MLP(
        scene_encoding.output_size,
        channels,
        width=scene.mlp_width,
        depth=scene.mlp_depth,
        activation=scene.activation,
        key=k_sm,
    )

    motion = config.motion
    m_finest_cell = motion.finest_cell_px if motion.finest_cell_px is not None else 16.0
    m_extents = [max(n - 1, 1) for n in grid_shape]
    m_finest = [_cells(e, m_finest_cell) for e in m_extents]
    m_base = [
        min(f, _cells(e, motion.coarsest_cell_px)) for e, f in zip(m_extents, m_finest, strict=True)
    ]
    t_base, t_finest = motion.time_cells or (1, int(np.clip(num_times - 1, 1, 8)))
    motion_encoding = _make_encoding(
        motion,
        [0.0] * ndim + [-1.0],
        [float(e) for e in m_extents] + [1.0],
        [*m_base, min(t_base, t_finest)],
        [*m_finest, t_finest],
        key=k_me,
    )
    motion_mlp = MLP(
        motion_encoding.output_size,
        ndim,
        width=motion.mlp_width,
        depth=motion.mlp_depth,
        activation=motion.activation,
        zero_init_output=True,  # start from exactly zero motion
        key=k_mm,
    )
    if config.displacement_scale_px is None:
        scale = tuple(float(n) for n in grid_shape)
    else:
        scale = (float(config.displacement_scale_px),) * ndim
    return SpaceTimeModel(
        scene_encoding=scene_encoding,
        scene_mlp=scene_mlp,
        motion_encoding=motion_encoding,
        motion_mlp=motion_mlp,
        grid_shape=grid_shape,
        displacement_scale_px=scale,
        motion_stride_px=int(config.motion_stride_px),
    )


def param_labels(model: SpaceTimeModel):
    """Label every array leaf ``"scene"`` or ``"motion"`` (the two optimizer groups)."""
    labels = jax.tree_util.tree_map(lambda _: "scene", model)
    return eqx.tree_at(
        lambda m: (m.motion_encoding, m.motion_mlp),
        labels,
        (
            jax.tree_util.tree_map(lambda _: "motion", model.motion_encoding),
            jax.tree_util.tree_map(lambda _: "motion", model.motion_mlp),
        ),
    )
