"""3D structured illumination microscopy (three-beam SIM) of a moving sample.

The scene is the fluorophore density on the padded output grid (``zoom`` times the camera's
lateral sampling, the raw z planes, padding for the PSF's reach and for axial motion), one
channel, ``volume``, kept non-negative by a softplus. Each raw stack (orientation ``d``, phase
step ``j``) is predicted by :func:`.forward.predict_stack` from the scene at the stack's time
(``timing="stack"``), or each raw plane by :func:`.forward.predict_plane` from the slab of the
scene within the PSF's axial reach at the plane's own time (``timing="plane"``: the model
renders only that slab, a render box). The pattern (``k0``, phases, modulation) is estimated
from the data unless given (:func:`.estimation.estimate_parameters`, written to
``parameters.json``); the modulation amplitudes can be trained (``train.system_lr``). The
conventional reconstruction is the generalized Wiener one (:mod:`.wiener`), with the widefield
image beside it.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, Int

from ..base import AbstractImagingSystem
from .bands import band_otfs_from_psf, band_otfs_on_grid, three_beam_amplitudes
from .data import SIMData, load_sim
from .estimation import SIMParameters, estimate_parameters
from .forward import SIMGrid, predict_plane, predict_stack, slab_transfer
from .otf import (
    expand_radial_otf,
    kz0_three_beam,
    lateral_cutoff,
    load_radial_otf,
    max_axial_frequency,
    widefield_psf,
)
from .wiener import DEFAULT_WIENER, widefield_image, wiener_reconstruction

Timing = Literal["auto", "stack", "plane"]


class _Held:
    """Values kept out of the pytree and compared by identity: a static field that jit can
    hash (the raw data and the camera PSF, for the conventional reconstruction, never enter the
    training step)."""

    def __init__(self, data: SIMData, psf: np.ndarray):
        self.data, self.psf = data, psf


@dataclasses.dataclass(frozen=True)
class SIM3DConfig:
    """3D SIM system parameters. Microscope values given here override the data file's."""

    pixel_size_um: float | None = None
    """Raw camera pixel at the sample, µm (npz key 'pixel_size')."""
    z_step_um: float | None = None
    """Plane spacing, µm (npz key 'z_step')."""
    wavelength_em_um: float | None = None
    """Emission wavelength, µm (npz key 'wavelength_em')."""
    wavelength_ex_um: float | None = None
    """Excitation wavelength, µm (npz key 'wavelength_ex')."""
    na: float | None = None
    """Objective numerical aperture (npz key 'na')."""
    n_immersion: float | None = None
    """Refractive index of the immersion medium (npz key 'n_immersion')."""
    background: float | None = None
    """Camera background in counts, subtracted from the raw values; None: the file's (else 0)."""
    k0: tuple[tuple[float, float], ...] | None = None
    """First-order lateral frequency (ky, kx) per orientation, cycles/µm; None: the file's, else
    estimated."""
    modulation: float | None = None
    """Modulation depth (1: three equal beams at full contrast); None: the file's, else
    estimated."""
    otf: str | None = None
    """A measured radially averaged OTF (cudasirecon makeotf's TIFF or MRC); None: computed
    from the microscope (nstm.systems.sim3d.otf)."""
    zoom: int = 2
    """Output pixels per raw pixel laterally."""
    timing: Timing = "auto"
    """'stack': one time per raw stack (fast); 'plane': each raw plane at its own time; 'auto':
    'plane' when the data has one time per plane."""
    pad_yx: int = 8
    """Raw pixels of padding on each lateral side (emitters outside the field of view)."""
    pad_z: int | None = None
    """Planes of padding above and below; None: the PSF's axial reach (room for axial motion
    and the slabs of plane timing)."""
    wiener: float = DEFAULT_WIENER
    """Wiener parameter of the conventional reconstruction (nstm.systems.sim3d.wiener)."""
    axis_order: str = "OZP"
    """TIFF input: the order of its pages, slowest first (cudasirecon's: OZP)."""
    orientations: int | None = None
    """TIFF input: number of orientations."""
    phases: int | None = None
    """TIFF input: phase steps per orientation."""


def _axial_reach(na: float, n: float, wavelength: float, z_step: float, planes: int) -> int:
    """Planes on each side within which the widefield PSF holds its energy: two axial FWHMs
    (about 0.88 lambda / (n - sqrt(n^2 - NA^2)) each), at least one plane."""
    fwhm = 0.88 * wavelength / (n - np.sqrt(n**2 - na**2))
    return int(min(max(1, np.ceil(2 * fwhm / z_step)), planes))


class SIM3D(AbstractImagingSystem):
    """Raw 3D SIM stacks (or planes) and their forward model. Build it with :meth:`from_data`."""

    channels: ClassVar[tuple[str, ...]] = ("volume",)
    channel_units: ClassVar[Mapping[str, str]] = MappingProxyType({"volume": "relative"})
    per_measurement: ClassVar[tuple[str, ...]] = (
        "measured",
        "times",
        "orientation",
        "phase",
        "plane",
    )
    trainable: ClassVar[tuple[str, ...]] = ("amplitudes",)
    linear: ClassVar[bool] = False  # the softplus keeps the density non-negative
    # Projections show every bead; "auto" would pick middle planes, for the Wiener's ringing.
    volume_view: ClassVar[str] = "mip"

    measured: Float[Array, "measurements ..."]
    """(stacks, Z, Y, X) or (planes, Y, X): raw values minus background, over ``scale``."""
    times: Float[Array, " measurements"]
    orientation: Int[Array, " measurements"]
    phase: Float[Array, " measurements"]
    """First-order pattern phase of each measurement's stack, radians."""
    plane: Int[Array, " measurements"]
    """Raw plane of each measurement (plane timing; 0 for stacks)."""
    k0: Float[Array, "orientations 2"]
    amplitudes: Float[Array, "orientations 2"]
    otfs: Complex[Array, "3 ..."]
    """Band OTFs on the padded grid (stacks) or the slab transfer functions (planes)."""
    grid: SIMGrid = eqx.field(static=True)
    by_plane: bool = eqx.field(static=True)
    half_width: int = eqx.field(static=True)
    stack_times: tuple[float, ...] = eqx.field(static=True)
    scale: float = eqx.field(static=True)
    """Counts per unit of the reconstructed density."""
    bandwidth: tuple[float, float, float] = eqx.field(static=True)
    parameters_json: str = eqx.field(static=True)
    wiener: float = eqx.field(static=True)
    held: _Held = eqx.field(static=True)

    @classmethod
    def from_data(cls, data: SIMData, config: SIM3DConfig = SIM3DConfig()) -> SIM3D:
        """Estimate or take the pattern, build the OTFs and the measurements."""
        if config.timing not in ("auto", "stack", "plane"):
            raise ValueError(f"timing: expected 'auto', 'stack' or 'plane', got {config.timing!r}")
        by_plane = config.timing == "plane" or (config.timing == "auto" and data.per_plane_times)
        if by_plane and not data.per_plane_times:
            times = np.repeat(data.times[..., None], data.raw.shape[2], axis=-1)
            data = dataclasses.replace(data, times=times)
        o, p, nz, ny, nx = data.raw.shape
        background = data.background if config.background is None else float(config.background)
        half_width = _axial_reach(
            data.na, data.n_immersion, data.wavelength_em_um, data.z_step_um, nz
        )
        pad_z = half_width if config.pad_z is None else int(config.pad_z)
        grid = SIMGrid.padded(
            (nz, ny, nx),
            pad_z=pad_z,
            pad_yx=config.pad_yx,
            pixel_size_um=data.pixel_size_um,
            z_step_um=data.z_step_um,
            zoom=config.zoom,
        )
        camera_psf = widefield_psf(
            (nz, ny, nx),
            pixel_size_um=data.pixel_size_um,
            z_step_um=data.z_step_um,
            na=data.na,
            n_immersion=data.n_immersion,
            wavelength_um=data.wavelength_em_um,
            integrate_pixel=True,
        )
        k0 = config.k0 if config.k0 is not None else data.k0
        modulation = data.modulation
        if config.modulation is not None:
            modulation = three_beam_amplitudes(config.modulation, o)
        common = dict(pixel_size_um=data.pixel_size_um, z_step_um=data.z_step_um)
        if k0 is None:  # a first pass for k0, then kz0 from it for the phases and modulation
            guess = kz0_three_beam(
                lateral_cutoff(na=data.na, wavelength_um=data.wavelength_em_um) / 2,
                n_immersion=data.n_immersion,
                wavelength_ex_um=data.wavelength_ex_um,
            )
            k0 = estimate_parameters(
                data.raw, psf=camera_psf, kz0=float(guess), background=background,
                phases=data.phases if data.phases is not None else np.zeros((o, p)),
                modulation=np.ones((o, 2)), **common,
            ).k0  # fmt: skip
            k0_estimated = True
        else:
            k0_estimated = False
        kz0 = float(
            np.mean(
                kz0_three_beam(
                    np.hypot(*np.asarray(k0, np.float64).T),
                    n_immersion=data.n_immersion,
                    wavelength_ex_um=data.wavelength_ex_um,
                )
            )
        )
        parameters = estimate_parameters(
            data.raw, psf=camera_psf, kz0=kz0, background=background, k0=k0,
            phases=data.phases, modulation=modulation, **common,
        )  # fmt: skip
        parameters = dataclasses.replace(
            parameters, estimated={**parameters.estimated, "k0": k0_estimated}
        )
        if config.otf is not None:
            radial = load_radial_otf(config.otf, **common)
            otfs = expand_radial_otf(
                radial,
                grid.padded_shape,
                pixel_size_um=grid.output_pixel_um,
                z_step_um=data.z_step_um,
            )[:3]
        else:
            otfs = band_otfs_on_grid(
                camera_psf, grid.padded_shape, zoom=grid.zoom, kz0=kz0, pixel_integrated=True,
                **common,
            )  # fmt: skip
        corrected = data.raw.astype(np.float64) - background
        scale = float(max(np.mean(corrected), 1e-12))
        measured = (corrected / scale).astype(np.float32)
        orientation, phase_index = np.meshgrid(np.arange(o), np.arange(p), indexing="ij")
        phases = parameters.phases[orientation, phase_index]  # (o, p)
        if by_plane:
            measured = measured.reshape(o * p * nz, ny, nx)
            times = data.times.reshape(-1)
            orient = np.repeat(orientation.ravel(), nz)
            phase = np.repeat(phases.ravel(), nz)
            plane = np.tile(np.arange(nz), o * p)
            otfs = np.asarray(slab_transfer(jnp.asarray(otfs, jnp.complex64), half_width))
            stack_times = data.times.mean(axis=-1).ravel()
        else:
            measured = measured.reshape(o * p, nz, ny, nx)
            times = data.times.reshape(-1)
            orient, phase, plane = orientation.ravel(), phases.ravel(), np.zeros(o * p, int)
            stack_times = times
        # The extended SIM passband: lateral 2 NA / lambda + 2 |k0|, axial that of band 0 plus
        # kz0, in cycles per output pixel (at most the grid's Nyquist frequency).
        lateral = lateral_cutoff(na=data.na, wavelength_um=data.wavelength_em_um)
        lateral += 2 * float(np.max(np.hypot(*parameters.k0.T)))
        axial = max_axial_frequency(
            na=data.na, n_immersion=data.n_immersion, wavelength_um=data.wavelength_em_um
        )
        bandwidth = (
            min(0.5, (axial + kz0) * data.z_step_um),
            min(0.5, lateral * grid.output_pixel_um),
            min(0.5, lateral * grid.output_pixel_um),
        )
        info = {
            **parameters.to_dict(),
            "kz0_cycles_per_um": kz0,
            "background_counts": background,
            "scale_counts_per_unit": scale,
            "timing": "plane" if by_plane else "stack",
            "otf": config.otf or "computed from the microscope (nstm.systems.sim3d.otf)",
        }
        return cls(
            measured=jnp.asarray(measured),
            times=jnp.asarray(times, jnp.float32),
            orientation=jnp.asarray(orient, jnp.int32),
            phase=jnp.asarray(phase, jnp.float32),
            plane=jnp.asarray(plane, jnp.int32),
            k0=jnp.asarray(parameters.k0, jnp.float32),
            amplitudes=jnp.asarray(parameters.modulation[:, :2], jnp.float32),
            otfs=jnp.asarray(otfs, jnp.complex64),
            grid=grid,
            by_plane=bool(by_plane),
            half_width=int(half_width),
            stack_times=tuple(float(t) for t in np.asarray(stack_times)),
            scale=scale,
            bandwidth=tuple(float(b) for b in bandwidth),
            parameters_json=json.dumps(info, indent=2),
            wiener=float(config.wiener),
            held=_Held(data, camera_psf),
        )

    # ------------------------------------------------------------------- interface
    @property
    def grid_shape(self) -> tuple[int, int, int]:
        return self.grid.padded_shape

    @property
    def render_times(self) -> Float[Array, "measurements 1"]:
        return self.times[:, None]

    @property
    def render_shape(self) -> tuple[int, int, int]:
        if not self.by_plane:
            return self.grid.padded_shape
        _, yp, xp = self.grid.padded_shape
        return (2 * self.half_width + 1, yp, xp)

    @property
    def render_origins(self) -> Int[Array, "measurements 1 3"] | None:
        if not self.by_plane:
            return None
        start = self.grid.origin[0] + self.plane - self.half_width
        zeros = jnp.zeros_like(start)
        return jnp.stack([start, zeros, zeros], axis=-1)[:, None, :]

    @property
    def output_times(self) -> np.ndarray:
        return np.asarray(self.stack_times, np.float32)

    @property
    def fov(self) -> tuple[slice, slice, slice]:
        return self.grid.fov

    @property
    def bandwidth_cycles_per_px(self) -> tuple[float, float, float]:
        return self.bandwidth

    @property
    def spacing_um(self) -> tuple[float, float, float]:
        return (self.grid.z_step_um, self.grid.output_pixel_um, self.grid.output_pixel_um)

    @property
    def motion_spacing_um(self) -> tuple[float, float, float]:
        return (self.grid.z_step_um, self.grid.pixel_size_um, self.grid.pixel_size_um)

    def motion_output(self, motion: np.ndarray) -> np.ndarray:
        """(dz, dy, dx) in raw voxels: planes, and raw pixels (``zoom`` output pixels)."""
        return motion / np.asarray([1.0, self.grid.zoom, self.grid.zoom], motion.dtype)

    def density(self, scenes: Array) -> Array:
        """The non-negative fluorophore density of rendered scene values."""
        return jax.nn.softplus(scenes)

    def forward(self, scenes: Float[Array, "1 *box 1"], index: Int[Array, ""]) -> Array:
        """The raw stack (or plane) ``index`` predicted from the scene at its time."""
        density = self.density(scenes[0, ..., 0])
        d = self.orientation[index]
        args = (self.k0[d], self.phase[index], self.amplitudes[d], self.grid)
        if self.by_plane:
            return predict_plane(density, self.otfs, *args)
        return predict_stack(density, self.otfs, *args)

    def measurement(self, index: Int[Array, ""]) -> Array:
        return self.measured[index]

    def outputs(self, scenes) -> dict[str, np.ndarray]:
        density = np.asarray(self.density(jnp.asarray(scenes)))
        return {"volume": density[(slice(None), *self.fov, 0)]}

    def parameters(self) -> dict[str, object]:
        """The pattern used (estimated or given), for ``parameters.json``."""
        return json.loads(self.parameters_json)

    def baseline_info(self) -> dict[str, object]:
        return {"method": "generalized Wiener (Gustafsson 2008)", "wiener": self.wiener}

    def reconstruct_static(self) -> dict[str, np.ndarray]:
        """The Wiener reconstruction and the widefield image (phase average), on the output
        grid, in the units of the reconstruction."""
        info = self.parameters()
        parameters = SIMParameters.from_dict(info)
        data, grid = self.held.data, self.grid
        raw_otfs = band_otfs_from_psf(
            self.held.psf, kz0=info["kz0_cycles_per_um"], z_step_um=data.z_step_um
        )
        background = info["background_counts"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            volume = wiener_reconstruction(
                data.raw, parameters, raw_otfs, pixel_size_um=data.pixel_size_um,
                z_step_um=data.z_step_um, zoom=grid.zoom, wiener=self.wiener,
                background=background,
            )  # fmt: skip
        widefield = widefield_image(data.raw, zoom=grid.zoom, background=background)
        return {"volume": volume / self.scale, "widefield": widefield / self.scale}


def load_system(path: str | Path, config: SIM3DConfig = SIM3DConfig()) -> SIM3D:
    """Load a 3D SIM acquisition (``.npz`` or TIFF) and build the system; config values win."""
    data = load_sim(
        path,
        axis_order=config.axis_order,
        orientations=config.orientations,
        phases=config.phases,
        pixel_size_um=config.pixel_size_um,
        z_step_um=config.z_step_um,
        wavelength_em_um=config.wavelength_em_um,
        wavelength_ex_um=config.wavelength_ex_um,
        na=config.na,
        n_immersion=config.n_immersion,
    )
    return SIM3D.from_data(data, config)
