r"""The forward model of three-beam 3D SIM: a fluorophore density on the (padded) output grid to
the raw camera stacks, in NumPy (the reference, for simulators and tests) and in JAX (training).

Conventions (``bands.py``): raw voxel ``(z, y, x)`` sits at ``(z * z_step, y * pixel,
x * pixel)`` µm; output voxel ``(z, j, i)`` at ``(z * z_step, j * pixel / zoom, i * pixel /
zoom)`` µm relative to raw voxel (0, 0, 0), so raw pixel ``i`` is output pixel ``zoom * i``. The
density lives on a padded output grid (:class:`SIMGrid`) whose index ``origin`` is raw voxel
(0, 0, 0). For orientation ``d`` and phase step ``j`` the raw stack is

    raw = sample_{zoom}( Re sum_{m=-2..2} amp_m exp(i m phi_j)
                            F^-1{ OTF_|m| F{ rho exp(i m 2 pi k0_d . r) } } ),

``r = (y, x)`` the output voxels' positions in µm, ``amp_0 = 1``, ``amp_-m = conj(amp_m)``, the
order ``-m`` seeing the conjugate band PSF (``OTF_-m(k) = conj OTF_m(-k)``, the same array for
the real band PSFs of ``bands.py``), ``F`` the 3D FFT of the padded grid. ``sample_zoom`` keeps
output pixel ``zoom * i`` of the measured planes and rows: raw pixel ``i``.

The camera pixel
    A camera pixel records the mean of the image over its square area, centred on the pixel:
    the image convolved with a centred box of side ``pixel`` and sampled at the pixel's centre.
    The box lives in the band OTFs, as its transfer function ``sinc(ky p) sinc(kx p)``
    (:func:`~.bands.pixel_transfer`; :func:`~.bands.band_otfs_on_grid` adds it to a
    point-sampled PSF, a PSF recorded on the camera holds it already), and the forward model
    samples at the centres. This is exact for any ``zoom`` (the image is band-limited by the
    OTF, far below the output grid's Nyquist frequency), where the sum of the ``zoom x zoom``
    output pixels ``zoom * i .. zoom * i + zoom - 1`` would be a box centred half a raw pixel
    minus half an output pixel away from raw pixel ``i``: 1/4 raw pixel for ``zoom = 2``. The
    convention file (``tests/data/sim3d-convention-check.npz``) pins this: its PSF is the
    point-sampled PSF times this transfer function (to 2.5e-8 of its peak), and its raw stacks
    are reproduced to 6e-6 relative, 1e-6 in the interior (``tests/test_sim3d_forward.py``);
    the off-centre mean misses them by 22 %.

Linear convolution
    The FFT convolves circularly over the padded grid. On the measured region that is the
    linear convolution of the density on the grid when the padding on each side covers the
    PSF's reach (its support in the band OTFs' grid): what lies beyond wraps around. The loss
    sees the measured region only (:attr:`SIMGrid.fov`).

Cost of the JAX form
    Orders ``m`` and ``-m`` give complex-conjugate images, so their sum is twice the real part
    of order ``m``'s and ``Re`` is linear: one spectrum ``OTF_0 F{rho} + sum_{m=1,2} 2 amp_m
    exp(i m phi) OTF_m F{rho exp(i m theta)}`` holds the stack. That is 3 forward FFTs on the
    padded output grid. Keeping every ``zoom``-th sample of a grid is summing its spectrum's
    ``zoom`` aliases (folding), so the one inverse FFT runs on the raw grid's lateral size,
    ``zoom^2`` times smaller.

Per-plane mode
    A raw plane sees only the planes within the PSF's axial reach ``h``: :func:`predict_plane`
    takes the slab of ``2 h + 1`` planes centred on it (:meth:`SIMGrid.slab`) and the lateral
    transfer functions of each slab plane to the centre one (:func:`slab_transfer`, the band
    OTFs inverse-transformed along ``kz``), and sums over the slab plane by plane: no
    circular wrap in z, and the cost of ``2 h + 1`` planes instead of the whole grid. It equals
    the plane of :func:`predict_stack` when the band PSFs vanish beyond ``h`` planes.

Amplitudes
    ``amp_m`` are the orders' strengths relative to order 0: ``(2/3, 1/3)`` times the modulation
    depth for three equal beams (:func:`~.bands.three_beam_amplitudes`; the convention file's
    ``gt_modulation = 0.8`` is such a depth: the fit gives ``amp = (0.53333, 0.26667)``).

All arrays (OTFs, ``k0``, phases, amplitudes) are arguments, so a system can hold them as pytree
leaves (and learn the amplitudes); only the grid's geometry is static.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from ...fourier import negated_frequency
from ...validation import check_positive, check_shape
from .bands import BANDS, check_zoom

__all__ = [
    "SIMGrid",
    "check_k0",
    "predict_plane",
    "predict_stack",
    "simulate_raw",
    "slab_transfer",
]


@dataclasses.dataclass(frozen=True)
class SIMGrid:
    """Geometry of the padded output grid and of the camera's raw stack within it.

    Hashable, so that it can be a static argument of a jitted function.
    """

    raw_shape: tuple[int, int, int]
    """``(Z, Y, X)`` raw voxels of one stack."""
    padded_shape: tuple[int, int, int]
    """``(Zp, Yp, Xp)`` output voxels of the padded grid; ``Yp``, ``Xp`` multiples of zoom."""
    origin: tuple[int, int, int]
    """Padded-grid index of raw voxel (0, 0, 0); its lateral entries multiples of zoom."""
    pixel_size_um: float
    """Raw camera pixel at the sample, µm."""
    z_step_um: float
    """Plane spacing (raw and output), µm."""
    zoom: int = 2
    """Output pixels per raw pixel along y and x."""

    def __post_init__(self) -> None:
        raw = check_shape("raw_shape", self.raw_shape, ndim=3)
        padded = check_shape("padded_shape", self.padded_shape, ndim=3)
        zoom = check_zoom(self.zoom)
        object.__setattr__(self, "raw_shape", raw)
        object.__setattr__(self, "padded_shape", padded)
        object.__setattr__(self, "zoom", zoom)
        object.__setattr__(
            self, "pixel_size_um", check_positive("pixel_size_um", self.pixel_size_um, "µm")
        )
        object.__setattr__(self, "z_step_um", check_positive("z_step_um", self.z_step_um, "µm"))
        try:
            origin = tuple(int(o) for o in self.origin)
        except (TypeError, ValueError):
            origin = ()
        if len(origin) != 3 or tuple(self.origin) != origin or min(origin) < 0:
            raise ValueError(
                f"origin: expected the padded-grid index (z, y, x) of raw voxel (0, 0, 0), three "
                f"integers >= 0, got {self.origin!r}"
            )
        object.__setattr__(self, "origin", origin)
        # Raw pixels must fall on output pixels that the folded spectrum keeps.
        if padded[1] % zoom or padded[2] % zoom:
            raise ValueError(
                f"padded_shape: the lateral sizes {padded[1:]} must be multiples of zoom = {zoom}"
            )
        if origin[1] % zoom or origin[2] % zoom:
            raise ValueError(
                f"origin: the lateral index {origin[1:]} of raw voxel (0, 0, 0) must be a "
                f"multiple of zoom = {zoom} (raw pixel i is output pixel zoom * i)"
            )
        extent = (raw[0], zoom * raw[1], zoom * raw[2])
        if any(o + e > p for o, e, p in zip(origin, extent, padded, strict=True)):
            raise ValueError(
                f"origin, padded_shape: the measured region, {extent} output voxels from "
                f"{origin}, must lie inside the padded grid {padded}"
            )

    @classmethod
    def padded(
        cls,
        raw_shape: tuple[int, int, int],
        *,
        pad_z: int,
        pad_yx: int,
        pixel_size_um: float,
        z_step_um: float,
        zoom: int = 2,
    ) -> SIMGrid:
        """The grid with ``pad_z`` planes and ``pad_yx`` raw pixels of padding on every side.

        Parameters
        ----------
        raw_shape : (Z, Y, X) tuple of int
            Raw voxels of one stack.
        pad_z : int
            Planes added above and below (room for axial motion and the PSF's axial reach).
        pad_yx : int
            Raw pixels added on each lateral side (``zoom * pad_yx`` output pixels).
        pixel_size_um, z_step_um : float
            Raw camera pixel at the sample and plane spacing, µm.
        zoom : int
            Output pixels per raw pixel laterally.
        """
        z, y, x = check_shape("raw_shape", raw_shape, ndim=3)
        zoom = check_zoom(zoom)
        for name, pad in (("pad_z", pad_z), ("pad_yx", pad_yx)):
            if isinstance(pad, bool) or int(pad) != pad or pad < 0:
                raise ValueError(f"{name}: expected an integer >= 0 (planes or pixels), got {pad}")
        pad_z, pad_yx = int(pad_z), int(pad_yx)
        return cls(
            raw_shape=(z, y, x),
            padded_shape=(z + 2 * pad_z, zoom * (y + 2 * pad_yx), zoom * (x + 2 * pad_yx)),
            origin=(pad_z, zoom * pad_yx, zoom * pad_yx),
            pixel_size_um=pixel_size_um,
            z_step_um=z_step_um,
            zoom=zoom,
        )

    @property
    def output_pixel_um(self) -> float:
        """Lateral spacing of the output grid, µm."""
        return self.pixel_size_um / self.zoom

    @property
    def fov(self) -> tuple[slice, slice, slice]:
        """The measured region on the padded grid: ``(Z, zoom * Y, zoom * X)`` output voxels."""
        z, y, x = self.raw_shape
        oz, oy, ox = self.origin
        return slice(oz, oz + z), slice(oy, oy + self.zoom * y), slice(ox, ox + self.zoom * x)

    def lateral_positions_um(self) -> tuple[np.ndarray, np.ndarray]:
        """``(y, x)`` of the padded grid's rows and columns, µm from raw voxel (0, 0, 0)."""
        spacing = self.output_pixel_um
        return tuple(
            (np.arange(n) - o) * spacing
            for n, o in zip(self.padded_shape[1:], self.origin[1:], strict=True)
        )

    def slab(self, plane: int, half_width: int) -> slice:
        """Padded-grid planes of the slab of ``2 half_width + 1`` planes centred on raw plane
        ``plane`` (for :func:`predict_plane`)."""
        if isinstance(plane, bool) or int(plane) != plane or not 0 <= plane < self.raw_shape[0]:
            raise ValueError(
                f"plane: expected a raw plane index in [0, {self.raw_shape[0]}), got {plane!r}"
            )
        _check_half_width(half_width, self.padded_shape[0])
        centre = self.origin[0] + int(plane)
        if centre - half_width < 0 or centre + half_width >= self.padded_shape[0]:
            raise ValueError(
                f"half_width: the slab of +-{half_width} planes around raw plane {plane} (padded "
                f"plane {centre}) leaves the padded grid of {self.padded_shape[0]} planes; pad "
                f"z by at least {half_width}"
            )
        return slice(centre - half_width, centre + half_width + 1)


def _check_half_width(half_width: Any, planes: int) -> int:
    if isinstance(half_width, bool) or int(half_width) != half_width or half_width < 0:
        raise ValueError(f"half_width: expected an integer >= 0 planes, got {half_width!r}")
    if 2 * int(half_width) + 1 > planes:
        raise ValueError(
            f"half_width: a slab of 2 * {half_width} + 1 planes does not fit the {planes} "
            "planes of the band OTFs' grid"
        )
    return int(half_width)


def check_k0(
    k0: Any,
    *,
    na: float | None = None,
    wavelength_ex_um: float | None = None,
    grid: SIMGrid | None = None,
) -> np.ndarray:
    """Validate the first orders' lateral pattern frequencies.

    Parameters
    ----------
    k0 : (orientations, 2) array_like
        ``(ky, kx)`` per orientation, cycles/µm.
    na, wavelength_ex_um : float, optional
        Objective NA and excitation wavelength (µm): the side beams must pass the objective,
        ``|k0| <= NA / wavelength_ex``.
    grid : SIMGrid, optional
        The output grid: the second order, ``2 k0``, must lie below its Nyquist frequency
        ``zoom / (2 pixel)`` on each axis, or the pattern aliases.

    Returns
    -------
    (orientations, 2) ndarray of float64
    """
    k0 = np.asarray(k0)
    if k0.ndim != 2 or k0.shape[1] != 2 or k0.shape[0] < 1:
        raise ValueError(f"k0: expected (orientations, 2) as (ky, kx) cycles/µm, got {k0.shape}")
    if np.iscomplexobj(k0) or not np.all(np.isfinite(k0)):
        raise ValueError("k0: expected finite real frequencies in cycles/µm")
    k0 = k0.astype(np.float64)
    norm = np.linalg.norm(k0, axis=1)
    if np.any(norm == 0):
        raise ValueError(f"k0: orientation {int(np.argmin(norm))} has |k0| = 0 (no pattern)")
    if (na is None) != (wavelength_ex_um is None):
        raise ValueError("na, wavelength_ex_um: give both to check k0 against the passband")
    if na is not None:
        limit = check_positive("na", na, "units of NA") / check_positive(
            "wavelength_ex_um", wavelength_ex_um, "µm"
        )
        if np.any(norm > limit * (1 + 1e-9)):
            d = int(np.argmax(norm))
            raise ValueError(
                f"k0: orientation {d} has |k0| = {norm[d]:.6g} cycles/µm, beyond the excitation "
                f"passband NA / wavelength_ex = {limit:.6g} cycles/µm (the side beams would miss "
                "the objective)"
            )
    if grid is not None:
        nyquist = grid.zoom / (2 * grid.pixel_size_um)
        if np.any(2 * np.abs(k0) >= nyquist):
            raise ValueError(
                f"k0: the second order 2 k0 = {(2 * k0).tolist()} cycles/µm must lie below the "
                f"output grid's Nyquist frequency {nyquist:.6g} cycles/µm on each axis (raise "
                "zoom)"
            )
    return k0


def _check_arrays(density: Any, band_otfs: Any, grid: SIMGrid, density_name: str) -> None:
    """Shape checks shared by the NumPy and JAX forms (static under jit)."""
    if not isinstance(grid, SIMGrid):
        raise TypeError(f"grid: expected a SIMGrid, got {type(grid).__name__}")
    if tuple(np.shape(density)) != grid.padded_shape:
        raise ValueError(
            f"{density_name}: expected the padded output grid {grid.padded_shape} (Zp, Yp, Xp), "
            f"got shape {np.shape(density)}"
        )
    if tuple(np.shape(band_otfs)) != (BANDS, *grid.padded_shape):
        raise ValueError(
            f"band_otfs: expected (3, Zp, Yp, Xp) = (3, *{grid.padded_shape}) on the padded "
            f"output grid, got shape {np.shape(band_otfs)}"
        )


def _check_amplitudes(amplitudes: Any, orientations: int) -> np.ndarray:
    amplitudes = np.asarray(amplitudes)
    if amplitudes.shape == (2,):
        amplitudes = np.broadcast_to(amplitudes, (orientations, 2))
    if amplitudes.shape != (orientations, 2):
        raise ValueError(
            f"amplitudes: expected (amp_1, amp_2) as (2,) or ({orientations}, 2) per orientation, "
            f"got shape {amplitudes.shape}"
        )
    if not np.all(np.isfinite(amplitudes)):
        raise ValueError("amplitudes: expected finite values")
    return amplitudes


def simulate_raw(
    density: np.ndarray,
    band_otfs: np.ndarray,
    grid: SIMGrid,
    *,
    k0: np.ndarray,
    phases: np.ndarray,
    amplitudes: np.ndarray,
    background: float = 0.0,
) -> np.ndarray:
    """Raw SIM stacks of a density, NumPy reference (each order ``m = -2..2`` on its own).

    Parameters
    ----------
    density : (Zp, Yp, Xp) ndarray
        Fluorophore density on the padded output grid of ``grid``.
    band_otfs : (3, Zp, Yp, Xp) ndarray
        ``OTF_|m|`` on the same grid, unshifted, the camera pixel's box included
        (:func:`~.bands.band_otfs_on_grid`).
    grid : SIMGrid
        The geometry.
    k0 : (orientations, 2) ndarray
        First-order lateral frequency ``(ky, kx)`` per orientation, cycles/µm.
    phases : (orientations, phases) ndarray
        First-order pattern phase, radians, at raw voxel (0, 0, 0).
    amplitudes : (2,) or (orientations, 2) ndarray
        ``(amp_1, amp_2)`` relative to order 0, real or complex.
    background : float
        Added to every camera value (counts).

    Returns
    -------
    (orientations, phases, Z, Y, X) ndarray of float64
        The camera values, in the units of ``density`` times the OTFs' gain.
    """
    _check_arrays(density, band_otfs, grid, "density")
    density = np.asarray(density)
    if np.iscomplexobj(density) or not np.all(np.isfinite(density)):
        raise ValueError("density: expected finite real values")
    band_otfs = np.asarray(band_otfs)
    if not np.all(np.isfinite(band_otfs)):
        raise ValueError("band_otfs: expected finite values")
    k0 = check_k0(k0, grid=grid)
    phases = np.asarray(phases)
    if phases.ndim != 2 or phases.shape[0] != k0.shape[0] or phases.shape[1] < 1:
        raise ValueError(
            f"phases: expected ({k0.shape[0]}, phases) radians, one row per orientation of k0, "
            f"got shape {phases.shape}"
        )
    if np.iscomplexobj(phases) or not np.all(np.isfinite(phases)):
        raise ValueError("phases: expected finite real phases in radians")
    amplitudes = _check_amplitudes(amplitudes, k0.shape[0])
    if not np.isfinite(background):
        raise ValueError(f"background: expected a finite number of counts, got {background!r}")

    axes = (0, 1, 2)
    # Order -m: the conjugate band PSF, conj OTF_m(-k).
    otfs = {m: band_otfs[abs(m)] for m in range(BANDS)}
    for m in range(1, BANDS):
        otfs[-m] = np.conj(negated_frequency(band_otfs[m], axes=axes))
    y, x = grid.lateral_positions_um()
    z, ny, nx = grid.raw_shape
    oz, oy, ox = grid.origin
    zoom = grid.zoom
    sample = (
        slice(oz, oz + z),
        slice(oy, oy + zoom * ny, zoom),
        slice(ox, ox + zoom * nx, zoom),
    )
    out = np.empty((*phases.shape, *grid.raw_shape))
    for d, (ky, kx) in enumerate(k0):
        theta = 2 * np.pi * (ky * y[:, None] + kx * x[None, :])
        images = {
            m: np.fft.ifftn(otfs[m] * np.fft.fftn(density * np.exp(1j * m * theta)))[sample]
            for m in otfs
        }
        amp = {0: 1.0}
        for m in range(1, BANDS):
            amp[m], amp[-m] = amplitudes[d, m - 1], np.conj(amplitudes[d, m - 1])
        for j, phi in enumerate(phases[d]):
            total = sum(amp[m] * np.exp(1j * m * phi) * images[m] for m in images)
            out[d, j] = total.real + background
    return out


def _fold(spectrum: Array, zoom: int) -> Array:
    """The spectrum of every ``zoom``-th sample along the last two axes (index 0 kept), up to
    the factor ``1 / zoom^2``: the sum of the ``zoom`` aliases of each raw-grid frequency."""
    *lead, ny, nx = spectrum.shape
    folded = spectrum.reshape(*lead, zoom, ny // zoom, zoom, nx // zoom)
    return folded.sum(axis=(-4, -2))


def _pattern(k0: Array, grid: SIMGrid) -> Complex[Array, "Yp Xp"]:
    """``exp(i 2 pi k0 . r)`` on the padded output grid."""
    y, x = grid.lateral_positions_um()
    k0 = jnp.asarray(k0)
    theta = (
        2 * jnp.pi * (k0[0] * jnp.asarray(y, k0.dtype)[:, None] + k0[1] * jnp.asarray(x, k0.dtype))
    )
    return jnp.exp(1j * theta)


def _order_weights(phase: Array, amplitudes: Array) -> list[Array]:
    """``2 amp_m exp(i m phi)`` for ``m = 1, 2``: orders ``+-m`` together (twice the real part)."""
    amplitudes = jnp.asarray(amplitudes)
    return [2 * amplitudes[m - 1] * jnp.exp(1j * m * phase) for m in range(1, BANDS)]


def predict_stack(
    density: Float[Array, "Zp Yp Xp"],
    band_otfs: Complex[Array, "3 Zp Yp Xp"],
    k0: Float[Array, " 2"],
    phase: Float[Array, ""],
    amplitudes: Array,
    grid: SIMGrid,
) -> Float[Array, "Z Y X"]:
    """One raw stack (one orientation, one phase step) from the density, JAX form.

    Parameters
    ----------
    density : (Zp, Yp, Xp) array
        Fluorophore density on the padded output grid.
    band_otfs : (3, Zp, Yp, Xp) complex array
        ``OTF_|m|`` on the padded grid, unshifted, the camera pixel's box included.
    k0 : (2,) array
        ``(ky, kx)`` of this orientation's first order, cycles/µm.
    phase : scalar array
        First-order pattern phase at raw voxel (0, 0, 0), radians.
    amplitudes : (2,) array
        ``(amp_1, amp_2)`` relative to order 0 (real or complex).
    grid : SIMGrid
        The geometry (static).

    Returns
    -------
    (Z, Y, X) array
        The camera values without background, on the raw grid.
    """
    _check_arrays(density, band_otfs, grid, "density")
    if jnp.shape(k0) != (2,) or jnp.shape(amplitudes) != (2,) or jnp.ndim(phase) != 0:
        raise ValueError(
            f"k0, phase, amplitudes: expected (2,), a scalar and (2,) for one orientation and "
            f"phase, got {jnp.shape(k0)}, {jnp.shape(phase)}, {jnp.shape(amplitudes)}"
        )
    wave = _pattern(k0, grid)
    spectrum = band_otfs[0] * jnp.fft.fftn(density)
    pattern = wave
    for m, weight in enumerate(_order_weights(phase, amplitudes), start=1):
        spectrum = spectrum + weight * band_otfs[m] * jnp.fft.fftn(density * pattern)
        if m + 1 < BANDS:
            pattern = pattern * wave
    zoom = grid.zoom
    image = jnp.fft.ifftn(_fold(spectrum, zoom)).real / zoom**2
    z, ny, nx = grid.raw_shape
    oz, oy, ox = grid.origin
    return image[oz : oz + z, oy // zoom : oy // zoom + ny, ox // zoom : ox // zoom + nx]


def slab_transfer(band_otfs: Complex[Array, "3 Zp Yp Xp"], half_width: int) -> Array:
    """Lateral transfer functions from each plane of a slab to its centre plane.

    Parameters
    ----------
    band_otfs : (3, Zp, Yp, Xp) complex array
        Band OTFs on the padded grid (as for :func:`predict_stack`).
    half_width : int
        Axial reach ``h`` in planes: the slab holds ``2 h + 1`` planes.

    Returns
    -------
    (3, 2 h + 1, Yp, Xp) complex array
        ``T[|m|, s]``: the 2D spectrum of band ``|m|``'s PSF at ``dz = (h - s) * z_step``
        (the centre plane's height minus slab plane ``s``'s), from the band OTFs'
        inverse FFT along ``kz``.
    """
    band_otfs = jnp.asarray(band_otfs)
    if band_otfs.ndim != 4 or band_otfs.shape[0] != BANDS:
        raise ValueError(f"band_otfs: expected (3, Zp, Yp, Xp), got shape {band_otfs.shape}")
    planes = band_otfs.shape[1]
    half_width = _check_half_width(half_width, planes)
    lateral = jnp.fft.ifft(band_otfs, axis=1)  # plane dz at index dz mod Zp
    offsets = (half_width - np.arange(2 * half_width + 1)) % planes
    return lateral[:, offsets]


def predict_plane(
    slab: Float[Array, "S Yp Xp"],
    slab_otfs: Complex[Array, "3 S Yp Xp"],
    k0: Float[Array, " 2"],
    phase: Float[Array, ""],
    amplitudes: Array,
    grid: SIMGrid,
) -> Float[Array, "Y X"]:
    """One raw plane from the slab of density planes within the PSF's axial reach, JAX form.

    Parameters
    ----------
    slab : (2 h + 1, Yp, Xp) array
        The density on padded-grid planes ``grid.slab(plane, h)``: the raw plane at its centre.
    slab_otfs : (3, 2 h + 1, Yp, Xp) complex array
        :func:`slab_transfer` of the band OTFs.
    k0, phase, amplitudes, grid
        As for :func:`predict_stack`.

    Returns
    -------
    (Y, X) array
        The camera values of that raw plane, without background.
    """
    planes = jnp.shape(slab)[0] if jnp.ndim(slab) == 3 else -1
    expected = (planes, *grid.padded_shape[1:])
    if jnp.ndim(slab) != 3 or tuple(jnp.shape(slab)) != expected or planes % 2 == 0:
        raise ValueError(
            f"slab: expected (2 h + 1, Yp, Xp) planes of the padded grid, (Yp, Xp) = "
            f"{grid.padded_shape[1:]}, got shape {jnp.shape(slab)}"
        )
    if tuple(jnp.shape(slab_otfs)) != (BANDS, *expected):
        raise ValueError(
            f"slab_otfs: expected (3, *{expected}) from slab_transfer, got shape "
            f"{jnp.shape(slab_otfs)}"
        )
    if jnp.shape(k0) != (2,) or jnp.shape(amplitudes) != (2,) or jnp.ndim(phase) != 0:
        raise ValueError(
            f"k0, phase, amplitudes: expected (2,), a scalar and (2,) for one orientation and "
            f"phase, got {jnp.shape(k0)}, {jnp.shape(phase)}, {jnp.shape(amplitudes)}"
        )
    wave = _pattern(k0, grid)
    spectrum = jnp.sum(slab_otfs[0] * jnp.fft.fft2(slab), axis=0)
    pattern = wave
    for m, weight in enumerate(_order_weights(phase, amplitudes), start=1):
        spectrum = spectrum + weight * jnp.sum(slab_otfs[m] * jnp.fft.fft2(slab * pattern), axis=0)
        if m + 1 < BANDS:
            pattern = pattern * wave
    zoom = grid.zoom
    image = jnp.fft.ifft2(_fold(spectrum, zoom)).real / zoom**2
    _, ny, nx = grid.raw_shape
    _, oy, ox = grid.origin
    return image[oy // zoom : oy // zoom + ny, ox // zoom : ox // zoom + nx]
