"""A simulated moving fluorescent sample imaged by three-beam 3D SIM, with its ground truth.

The density lives on the padded output grid of the forward model (``zoom`` times the camera's
lateral sampling); at each raw stack's time (or each raw plane's, ``timing="plane"``) the
sample is moved, imaged by :func:`.forward.simulate_raw` with the computed PSF, and recorded
with shot and read noise. Beads are drawn from their positions at each time (a moving bead
stays a sub-resolution point), other samples are warped.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from ...simulation.motion import displacement_field, warp
from ...simulation.noise import camera
from ...simulation.phantoms import make_density
from .bands import band_otfs_on_grid, three_beam_amplitudes
from .data import SIMData, default_times
from .forward import SIMGrid, simulate_raw
from .otf import kz0_three_beam, lateral_cutoff, widefield_psf


@dataclasses.dataclass(frozen=True)
class SIM3DSimulationConfig:
    """What to simulate. Units: raw voxels, micrometres, counts."""

    shape: tuple[int, int, int] = (8, 32, 32)
    """Raw stack (Z, Y, X), voxels."""
    phantom: str = "beads"
    """'beads' (sub-resolution), 'cells', 'filaments', or an image file (a thin slab)."""
    motion: Literal["none", "translation", "rotation", "elastic", "brownian"] = "translation"
    """How the sample moves ('brownian': each bead on its own random walk; beads only)."""
    max_displacement_px: float = 2.0
    """Largest displacement over the acquisition, raw pixels (laterally; planes axially)."""
    orientations: int = 3
    phases: int = 5
    timing: Literal["stack", "plane"] = "stack"
    """One time per raw stack, or one per raw plane."""
    pixel_size_um: float = 0.08
    z_step_um: float = 0.125
    wavelength_em_um: float = 0.515
    wavelength_ex_um: float = 0.488
    na: float = 1.4
    n_immersion: float = 1.515
    pattern_fraction: float = 0.9
    """|k0| as a fraction of the detection cutoff NA / lambda_em (2 |k0| of the second order
    within the passband 2 NA / lambda_em)."""
    modulation: float = 0.8
    """Modulation depth (1: three equal beams at full contrast)."""
    zoom: int = 2
    photons: float | None = 1000.0
    """Expected photoelectrons at the brightest noiseless pixel; None for noiseless data."""
    read_noise_e: float = 1.5
    background: float = 100.0
    """Camera offset added to every value, counts."""
    seed: int = 0


def _times(config: SIM3DSimulationConfig) -> np.ndarray:
    """(orientations, phases) or (orientations, phases, Z) acquisition times in [-1, 1]."""
    o, p, z = config.orientations, config.phases, config.shape[0]
    if config.timing == "stack":
        return default_times(o, p)
    return np.linspace(-1, 1, o * p * z, dtype=np.float32).reshape(o, p, z)


def simulate_sim3d(
    config: SIM3DSimulationConfig = SIM3DSimulationConfig(),
) -> tuple[SIMData, dict[str, np.ndarray]]:
    """Simulate a moving sample recorded by 3D SIM.

    Returns
    -------
    data : SIMData
        Raw camera values (background included) and the microscope; the pattern is left to
        be estimated.
    truth : dict
        ``density`` (stacks, Z, zoom Y, zoom X), the emitters at each stack's (mean) time on the
        output grid; ``motion`` (stacks, Z, zoom Y, zoom X, 3), (dz, dy, dx) in raw voxels,
        pull convention (beads: translation only); ``k0`` (orientations, 2), ``phases``
        (orientations, phases), ``amplitudes`` (orientations, 2); for beads ``bead_pos_um``
        (stacks, beads, 3).
    """
    if config.motion == "brownian" and config.phantom != "beads":
        raise ValueError("motion: 'brownian' moves beads independently; use phantom 'beads'")
    rng = np.random.default_rng(config.seed)
    nz, ny, nx = config.shape
    pad_z, pad_yx = 3, 4
    grid = SIMGrid.padded(
        config.shape, pad_z=pad_z, pad_yx=pad_yx, pixel_size_um=config.pixel_size_um,
        z_step_um=config.z_step_um, zoom=config.zoom,
    )  # fmt: skip
    o, p = config.orientations, config.phases
    cutoff = lateral_cutoff(na=config.na, wavelength_um=config.wavelength_em_um) / 2
    angles = np.pi * (np.arange(o) / o) + rng.uniform(0, np.pi / o)
    k0 = config.pattern_fraction * cutoff * np.stack([np.sin(angles), np.cos(angles)], -1)
    phases = rng.uniform(0, 2 * np.pi, (o, 1)) + 2 * np.pi * np.arange(p)[None] / p
    amplitudes = three_beam_amplitudes(config.modulation, o)
    kz0 = float(
        np.mean(
            kz0_three_beam(
                np.hypot(*k0.T),
                n_immersion=config.n_immersion,
                wavelength_ex_um=config.wavelength_ex_um,
            )
        )
    )
    psf = widefield_psf(
        (grid.padded_shape[0], ny + 2 * pad_yx, nx + 2 * pad_yx),
        pixel_size_um=config.pixel_size_um, z_step_um=config.z_step_um, na=config.na,
        n_immersion=config.n_immersion, wavelength_um=config.wavelength_em_um,
        integrate_pixel=True,
    )  # fmt: skip
    otfs = band_otfs_on_grid(
        psf, grid.padded_shape, zoom=config.zoom, kz0=kz0, z_step_um=config.z_step_um,
        pixel_size_um=config.pixel_size_um, pixel_integrated=True,
    )  # fmt: skip
    times = _times(config)
    stack_times = times if times.ndim == 2 else times.mean(axis=-1)
    # Lateral displacements in raw pixels are zoom output pixels; axial ones are planes.
    scale = np.array([1.0, config.zoom, config.zoom])
    every_time = np.unique(np.concatenate([times.ravel(), stack_times.ravel()]))

    if config.phantom == "beads":
        positions = _bead_positions(grid, spacing_raw_px=10.0, rng=rng)
        walks = _bead_paths(config, positions, every_time, scale, rng)

        def density_at(t: float) -> np.ndarray:
            return _splat(walks[float(t)], grid.padded_shape)

        field = None
    else:
        canonical = make_density(config.phantom, grid.padded_shape, rng=rng)
        field = {}
        if config.motion != "none":
            motion = displacement_field(
                config.motion, grid.padded_shape, every_time,
                max_displacement_px=config.max_displacement_px * config.zoom, rng=rng,
                fov_shape=(nz, config.zoom * ny, config.zoom * nx),
            )  # fmt: skip
            field = {float(t): m for t, m in zip(every_time, motion, strict=True)}

        def density_at(t: float) -> np.ndarray:
            if config.motion == "none":
                return canonical
            return np.clip(warp(canonical, field[float(t)]), 0, None)

    # Raw stacks, each from the sample at its time (or each plane at its own).
    raw = np.empty((o, p, nz, ny, nx))
    for d in range(o):
        for j in range(p):
            moments = times[d, j] if times.ndim == 3 else np.full(nz, times[d, j])
            for t in np.unique(moments):
                pattern = dict(
                    k0=k0[d : d + 1], phases=phases[d : d + 1, j : j + 1],
                    amplitudes=amplitudes[d : d + 1],
                )  # fmt: skip
                stack = simulate_raw(density_at(t), otfs, grid, **pattern)[0, 0]
                raw[d, j][moments == t] = stack[moments == t]
    peak = raw.max()
    expected = np.clip(raw / peak, 0, None)
    if config.photons is None:
        counts = expected * 1000.0 + config.background
    else:
        counts = camera(
            expected, config.photons, read_noise_e=config.read_noise_e, rng=rng,
            offset=config.background,
        )  # fmt: skip
    data = SIMData(
        counts.astype(np.float32), config.pixel_size_um, config.z_step_um,
        config.wavelength_em_um, config.wavelength_ex_um, config.na, config.n_immersion,
        times=times, background=config.background,
    )  # fmt: skip
    fov = (slice(None), *grid.fov)
    volumes = np.stack([density_at(t) for t in stack_times.ravel()])
    # "density", not the reconstruction's "volume": the two have different units (emitters per
    # voxel against the reconstruction's relative units), so no PSNR compares them.
    truth = {
        "density": volumes[fov].astype(np.float32),
        "k0": k0,
        "phases": phases,
        "amplitudes": amplitudes,
    }
    if config.phantom == "beads":
        origin = np.asarray(grid.origin, np.float64)
        spacing = np.array([config.z_step_um, grid.output_pixel_um, grid.output_pixel_um])
        truth["bead_pos_um"] = np.stack(
            [(walks[float(t)] - origin) * spacing for t in stack_times.ravel()]
        ).astype(np.float32)
        if config.motion in ("none", "translation"):  # one field; Brownian beads have none
            shift = np.stack([walks[float(t)][0] - positions[0] for t in stack_times.ravel()])
            motion = -shift / scale  # pull: the sample at r came from r - shift
            truth["motion"] = np.broadcast_to(
                motion[:, None, None, None, :], (*volumes[fov].shape, 3)
            ).astype(np.float32)
    elif field:
        truth["motion"] = np.stack(
            [field[float(t)][fov[1:]] / scale for t in stack_times.ravel()]
        ).astype(np.float32)
    return data, truth


def _bead_paths(config, positions, every_time, scale, rng) -> dict[float, np.ndarray]:
    """Bead positions (padded-grid voxels) at each time: moved together (translation) or each
    on its own random walk (brownian), at most ``max_displacement_px`` from the start."""
    paths = {}
    if config.motion in ("none", "translation"):
        direction = rng.normal(size=3) * [0.3, 1, 1]
        direction /= np.linalg.norm(direction)
        for t in every_time:
            shift = 0 if config.motion == "none" else config.max_displacement_px * t
            paths[float(t)] = positions + shift * direction * scale
        return paths
    if config.motion == "brownian":
        steps = rng.normal(size=(len(every_time), *positions.shape)) * [0.3, 1, 1]
        walk = np.cumsum(steps, axis=0)
        walk -= walk.mean(axis=0)
        walk *= config.max_displacement_px / max(np.abs(walk).max(), 1e-12)
        for t, w in zip(every_time, walk, strict=True):
            paths[float(t)] = positions + w * scale
        return paths
    raise ValueError(
        f"motion: beads move by 'none', 'translation' or 'brownian', got {config.motion!r}"
    )


def _bead_positions(grid: SIMGrid, *, spacing_raw_px: float, rng) -> np.ndarray:
    """Beads (padded-grid voxels) on a jittered lateral lattice ``spacing_raw_px`` raw pixels
    apart over the field of view and its lateral padding, at random heights within the stack:
    isolated, so that each one's width can be measured."""
    zoom = grid.zoom
    step = spacing_raw_px * zoom
    _, yp, xp = grid.padded_shape
    ys = np.arange(step / 2, yp - step / 4, step)
    xs = np.arange(step / 2, xp - step / 4, step)
    lateral = np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
    lateral = lateral + rng.uniform(-step / 6, step / 6, lateral.shape)
    z0, nz = grid.origin[0], grid.raw_shape[0]
    heights = rng.uniform(z0, z0 + nz - 1, len(lateral))
    return np.column_stack([heights, lateral])


def _splat(positions: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Unit point emitters at sub-voxel ``positions`` (voxels), trilinearly spread."""
    density = np.zeros(shape)
    base = np.floor(positions).astype(int)
    frac = positions - base
    for corner in np.ndindex(2, 2, 2):
        idx = base + np.asarray(corner)
        weight = np.prod(np.where(np.asarray(corner), frac, 1 - frac), axis=1)
        inside = np.all((idx >= 0) & (idx < np.asarray(shape)), axis=1)
        np.add.at(density, tuple(idx[inside].T), weight[inside])
    return density
