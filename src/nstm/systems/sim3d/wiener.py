"""The conventional baseline of 3D SIM: generalized Wiener reconstruction (Gustafsson et al.
2008, Biophys J 94:4957, Eq. 9-10) with apodization, the widefield image, and the bead
widths that compare them.

Output grid: ``zoom`` times the raw lateral sampling, the raw z sampling; output voxel
``(z, j, i)`` sits at ``(z * z_step, j * pixel / zoom, i * pixel / zoom)`` µm, so raw pixel
``i`` is output pixel ``zoom * i`` (the convention of ``bands.py``: raw voxel (0, 0, 0) at the
origin).

The reconstruction, per orientation ``d`` and order ``m`` (``bands.py``'s band ``m`` is
``amp_m OTF_|m| conv (rho exp(i m 2 pi k0 . r))``, so its spectrum at ``k + m k0`` holds the
sample's spectrum at ``k``):

1. separate the bands with the absolute phases (:func:`~.estimation.separate_bands`);
2. move each band onto the output grid (Fourier zero-padding, exact for band-limited data) and
   back to its true place in frequency space, ``D_{d,m}(k) = B_{d,m}(k + m k0_d)``, by the
   real-space ramp ``exp(-i 2 pi m k0_d . r)`` (exact for any sub-pixel ``k0``);
3. combine ``S(k) = A(k) sum_{d,m} conj(O_{d,m}(k)) D_{d,m}(k) / (sum_{d,m} |O_{d,m}(k)|^2 +
   w^2)`` with ``O_{d,m}(k) = amp_{d,m} OTF_|m|(k + m k0_d)`` (the band's OTF where its
   content now lies) and the apodization ``A``, a "bent" triangle
   ``(1 - |k|_e)^bend`` over the ellipsoid that holds the extended passband;
4. inverse FFT, real part.

The Wiener parameter ``w`` is in units of the OTF (``OTF_0`` is 1 at DC, where the
denominator is about the orientation count): it is the noise-to-signal amplitude ratio below
which a frequency is suppressed. Smaller is sharper and noisier (ringing and speckle from
amplified noise), larger smoother. Typical values: 0.01-0.03 for clean data (thousands of
photons per bead), 0.05-0.2 for noisy data; choose by eye on a bead or by the agreement of
two independent acquisitions. The default 0.02 gives about 110 nm lateral bead FWHM
against 185 nm widefield on the 1000-photon beads of the tests (0.01: 103 nm, 0.05: 127 nm).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.optimize

from ...fourier import embed_spectrum, negated_frequency, signed_indices
from ...validation import check_nonnegative, check_positive
from .bands import check_zoom
from .estimation import (
    OTF_THRESHOLD,
    SIMParameters,
    check_band_otfs,
    check_finite,
    edge_taper,
    separate_bands,
)

__all__ = [
    "BeadWidths",
    "DEFAULT_WIENER",
    "apodization",
    "bead_fwhm",
    "fourier_upsample",
    "isolated_beads",
    "widefield_image",
    "wiener_reconstruction",
]

DEFAULT_WIENER = 0.02
"""Default Wiener parameter ``w`` (OTF units; see the module docstring)."""
FWHM_PER_SIGMA = 2 * np.sqrt(2 * np.log(2))

_AXES3 = (-3, -2, -1)


def _check_raw(raw: Any) -> np.ndarray:
    raw = np.asarray(raw)
    if raw.ndim != 5:
        raise ValueError(
            f"raw: expected (orientations, phases, Z, Y, X) camera values, got shape {raw.shape}"
        )
    if np.iscomplexobj(raw) or not np.all(np.isfinite(raw)):
        raise ValueError("raw: expected finite real camera values")
    return raw


def fourier_upsample(volume: np.ndarray, zoom: int) -> np.ndarray:
    """Band-limited (Fourier zero-padding) lateral upsampling of a real or complex stack.

    Parameters
    ----------
    volume : (..., Z, Y, X) ndarray
        Samples at raw voxels.
    zoom : int
        Lateral factor; output pixel ``zoom * i`` is input pixel ``i`` (same values there).

    Returns
    -------
    (..., Z, zoom*Y, zoom*X) ndarray
        Complex for complex input; for real input the real part (a Nyquist term of an even
        size is split evenly between +N/2 and -N/2, as it must for a real signal).
    """
    zoom = check_zoom(zoom)
    spectrum = np.fft.fftn(volume, axes=(-2, -1))
    fine = (volume.shape[-2] * zoom, volume.shape[-1] * zoom)
    out = np.fft.ifftn(embed_spectrum(spectrum, fine), axes=(-2, -1)) * zoom**2
    return out if np.iscomplexobj(volume) else out.real


def widefield_image(raw: np.ndarray, *, zoom: int = 2, background: float = 0.0) -> np.ndarray:
    """The widefield image: every raw stack averaged (the phases cancel the pattern), on the
    output grid.

    Parameters
    ----------
    raw : (orientations, phases, Z, Y, X) array_like of float
        Camera values.
    zoom : int
        Lateral upsampling of the output grid.
    background : float
        Camera offset subtracted, counts.

    Returns
    -------
    (Z, zoom*Y, zoom*X) ndarray of float64
        Counts per raw stack, background subtracted.
    """
    raw = _check_raw(raw)
    mean = raw.mean(axis=(0, 1), dtype=np.float64) - check_finite("background", background)
    return fourier_upsample(mean, zoom)


def apodization(
    shape: Sequence[int],
    spacing_um: Sequence[float],
    cutoff: Sequence[float],
    bend: float = 1.0,
) -> np.ndarray:
    """The bent-triangle apodization ``max(0, 1 - sqrt((kz/kz_c)^2 + (kr/kr_c)^2))^bend``.

    Parameters
    ----------
    shape : (3,) ints
        Grid ``(Z, Y, X)``.
    spacing_um : (3,) floats
        Voxel spacing ``(dz, dy, dx)`` in µm.
    cutoff : (2,) floats
        ``(kz_c, kr_c)`` in cycles/µm, where the weight reaches 0.
    bend : float
        Exponent; 1 is the triangle, larger is a faster fall (smoother, less resolution).

    Returns
    -------
    (Z, Y, X) ndarray of float64 on the unshifted FFT grid (1 at DC).
    """
    kz, ky, kx = (np.fft.fftfreq(n, d) for n, d in zip(shape, spacing_um, strict=True))
    kz_c, kr_c = (
        check_positive(name, c, "cycles/µm")
        for name, c in zip(("kz_c", "kr_c"), cutoff, strict=True)
    )
    bend = check_positive("apodization_bend", bend, "(an exponent)")
    radius = np.sqrt(
        (kz[:, None, None] / kz_c) ** 2
        + (ky[None, :, None] ** 2 + kx[None, None, :] ** 2) / kr_c**2
    )
    return np.clip(1 - radius, 0, 1) ** bend


def wiener_reconstruction(
    raw: np.ndarray,
    parameters: SIMParameters,
    band_otfs: np.ndarray,
    *,
    pixel_size_um: float,
    z_step_um: float,
    zoom: int = 2,
    wiener: float = DEFAULT_WIENER,
    apodization_bend: float = 1.0,
    background: float = 0.0,
    edge_px: float = 0.0,
) -> np.ndarray:
    """Generalized Wiener 3D SIM reconstruction (see the module docstring for the steps).

    Parameters
    ----------
    raw : (orientations, phases, Z, Y, X) array_like of float
        Camera values.
    parameters : SIMParameters
        Pattern vectors, absolute phases and modulation of every orientation (estimated by
        :func:`~.estimation.estimate_parameters` or known); its ``modulation`` sets the orders'
        weights ``amp_m`` relative to the band OTFs.
    band_otfs : (3, Z, Y, X) array_like of complex
        ``OTF_|m|`` on the raw stack's unshifted FFT grid (OTF_0 1 at DC).
    pixel_size_um, z_step_um : float
        Raw pixel size at the sample and plane spacing, µm.
    zoom : int
        Lateral upsampling of the output grid (default 2: the SIM passband reaches about twice
        the widefield's, beyond the raw Nyquist frequency).
    wiener : float
        The Wiener parameter ``w`` in OTF units (see the module docstring for how to choose).
    apodization_bend : float
        Exponent of the bent-triangle apodization (1: triangle).
    background : float
        Camera offset subtracted, counts.
    edge_px : float
        Width in raw pixels of a raised-cosine taper applied to the raw data's lateral edges
        (fewer edge artifacts from a non-periodic field of view, at the cost of the outermost
        pixels); 0 for none.

    Returns
    -------
    (Z, zoom*Y, zoom*X) ndarray of float64
        The fluorophore density in the counts of one raw stack (its DC equals the widefield
        image's, before the Wiener and apodization weights), on the output grid.
    """
    raw = _check_raw(raw)
    if not isinstance(parameters, SIMParameters):
        raise TypeError(f"parameters: expected SIMParameters, got {type(parameters).__name__}")
    n_dir, n_phase = raw.shape[:2]
    if parameters.k0.shape[0] != n_dir or parameters.phases.shape != (n_dir, n_phase):
        raise ValueError(
            f"parameters: expected {n_dir} orientations x {n_phase} phases like raw, got k0 "
            f"{parameters.k0.shape} and phases {parameters.phases.shape}"
        )
    pixel_size_um = check_positive("pixel_size_um", pixel_size_um, "µm")
    z_step_um = check_positive("z_step_um", z_step_um, "µm")
    zoom = check_zoom(zoom)
    wiener = check_nonnegative("wiener", wiener, "OTF units")
    otfs = check_band_otfs(band_otfs, raw.shape[2:])
    z, y, x = raw.shape[2:]
    fine = (z, y * zoom, x * zoom)
    fine_pixel = pixel_size_um / zoom
    positions = [np.arange(n) * fine_pixel for n in fine[1:]]
    signed = [signed_indices(n) * fine_pixel for n in fine[1:]]
    kernels = np.fft.ifftn(embed_spectrum(otfs, fine), axes=_AXES3)  # band PSFs, fine grid
    taper = edge_taper((y, x), edge_px)
    numerator = np.zeros(fine, np.complex128)
    denominator = np.zeros(fine)
    support = np.zeros(fine, bool)
    orders = parameters.orders
    for d in range(n_dir):
        data = (raw[d].astype(np.float64) - check_finite("background", background)) * taper
        bands = separate_bands(data, parameters.phases[d], orders=orders)
        for index, m in enumerate(orders):
            if m < 0:
                continue  # the mirror of +m, added below
            shift = m * parameters.k0[d]
            ramp = _ramp(positions, shift)
            band = fourier_upsample(bands[index], zoom) * ramp
            spectrum = np.fft.fftn(band, axes=_AXES3)
            otf = np.fft.fftn(kernels[m] * _ramp(signed, shift), axes=_AXES3)
            support |= np.abs(otf) > OTF_THRESHOLD
            if m:
                otf = otf * parameters.modulation[d, m - 1]
            term = np.conj(otf) * spectrum
            power = np.abs(otf) ** 2
            if m:  # order -m: band_{-m} = conj(band_m), so its term is this one's mirror
                term = term + np.conj(negated_frequency(term, _AXES3))
                power = power + negated_frequency(power, _AXES3)
                support |= negated_frequency(support, _AXES3)
            numerator += term
            denominator += power
    cutoff = _support_cutoff(support, fine, (z_step_um, fine_pixel, fine_pixel))
    weight = apodization(fine, (z_step_um, fine_pixel, fine_pixel), cutoff, apodization_bend)
    spectrum = weight * numerator / (denominator + wiener**2)
    return np.fft.ifftn(spectrum, axes=_AXES3).real


def _ramp(positions: list[np.ndarray], shift: np.ndarray) -> np.ndarray:
    """``exp(-i 2 pi shift . r)`` on the lateral grid ``positions`` (y, x), broadcast over z."""
    return (
        np.exp(-2j * np.pi * shift[0] * positions[0])[:, None]
        * np.exp(-2j * np.pi * shift[1] * positions[1])[None, :]
    )


def _support_cutoff(support: np.ndarray, shape, spacing) -> tuple[float, float]:
    """``(kz_c, kr_c)`` of the extended passband: its largest axial and lateral frequencies
    (a frequency step beyond, so that the apodization is still positive at the edge)."""
    kz, ky, kx = (np.fft.fftfreq(n, d) for n, d in zip(shape, spacing, strict=True))
    lateral = np.hypot(ky[:, None], kx[None, :])
    kr_c = lateral[support.any(axis=0)].max() + abs(ky[1])
    kz_c = np.abs(kz)[support.any(axis=(1, 2))].max() + abs(kz[1]) if shape[0] > 1 else 1.0
    return float(kz_c), float(kr_c)


# --------------------------------------------------------------------------------------------
# Bead widths
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BeadWidths:
    """Gaussian fits to beads in a volume; NaN where a fit failed or left its window.

    Attributes
    ----------
    lateral_um : (n,) ndarray
        Lateral FWHM (isotropic 2D Gaussian in the bead's brightest plane), µm.
    axial_um : (n,) ndarray
        Axial FWHM (1D Gaussian along z through the lateral centre), µm.
    center_um : (n, 3) ndarray
        Fitted centre ``(z, y, x)``, µm, in the volume's coordinates (voxel (0, 0, 0) at the
        origin): its distance to the true position is the localization error.
    """

    lateral_um: np.ndarray
    axial_um: np.ndarray
    center_um: np.ndarray


def _gaussian_fit(coords: np.ndarray, values: np.ndarray, center0: np.ndarray, sigma0: float):
    """Least-squares ``a exp(-|r - c|^2 / (2 s^2)) + b`` over points ``coords`` (n, dims);
    returns ``(c, s)`` or None."""

    def residual(p):
        a, b, s = p[0], p[1], p[2]
        c = p[3:]
        r2 = np.sum((coords - c) ** 2, axis=1)
        return a * np.exp(-r2 / (2 * s**2)) + b - values

    start = np.concatenate([[values.max() - values.min(), values.min(), sigma0], center0])
    try:
        fit = scipy.optimize.least_squares(residual, start, method="lm")
    except (ValueError, RuntimeError):
        return None
    if not fit.success or fit.x[0] <= 0:
        return None
    return fit.x[3:], abs(fit.x[2])


def bead_fwhm(
    volume: np.ndarray,
    positions_um: np.ndarray,
    spacing_um: Sequence[float],
    *,
    window_um: float = 0.25,
    axial_window_um: float = 0.6,
    search_um: float = 0.1,
) -> BeadWidths:
    """Lateral and axial FWHM of beads, by Gaussian fits around their known positions.

    Each bead's peak is the brightest voxel within ``search_um`` laterally (and one plane
    axially) of its position; the lateral fit is an isotropic 2D Gaussian plus offset over the
    square of half-width ``window_um`` in that plane, the axial fit a 1D Gaussian plus offset
    along z through the fitted lateral centre over ``axial_window_um``.

    Parameters
    ----------
    volume : (Z, Y, X) array_like of float
        The image (any scale; a constant offset is fitted).
    positions_um : (n, 3) array_like of float
        Bead centres ``(z, y, x)`` in µm, voxel (0, 0, 0) of ``volume`` at the origin.
    spacing_um : (3,) floats
        Voxel spacing ``(dz, dy, dx)`` of ``volume`` in µm.
    window_um, axial_window_um, search_um : float
        Half-widths of the lateral and axial fit windows and of the peak search, µm.

    Returns
    -------
    BeadWidths
        NaN for a bead whose window leaves the volume or whose fit fails.
    """
    volume = np.asarray(volume, np.float64)
    if volume.ndim != 3:
        raise ValueError(f"volume: expected (Z, Y, X), got shape {volume.shape}")
    positions_um = np.asarray(positions_um, np.float64).reshape(-1, 3)
    spacing = np.array([check_positive("spacing_um", s, "µm") for s in spacing_um])
    if spacing.shape != (3,):
        raise ValueError(f"spacing_um: expected (dz, dy, dx) in µm, got {spacing_um!r}")
    half = int(np.ceil(window_um / spacing[1]))
    half_z = int(np.ceil(axial_window_um / spacing[0]))
    search = int(np.ceil(search_um / spacing[1]))
    n = len(positions_um)
    lateral = np.full(n, np.nan)
    axial = np.full(n, np.nan)
    centers = np.full((n, 3), np.nan)
    shape = np.array(volume.shape)
    for b, position in enumerate(positions_um):
        voxel = np.round(position / spacing).astype(int)
        lo = voxel - np.array([1, search, search])
        hi = voxel + np.array([1, search, search]) + 1
        if np.any(voxel < 0) or np.any(voxel >= shape):
            continue
        lo, hi = np.maximum(lo, 0), np.minimum(hi, shape)
        box = volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        peak = lo + np.array(np.unravel_index(np.argmax(box), box.shape))
        if np.any(peak[1:] - half < 0) or np.any(peak[1:] + half >= shape[1:]):
            continue
        patch = volume[
            peak[0], peak[1] - half : peak[1] + half + 1, peak[2] - half : peak[2] + half + 1
        ]
        grid = np.stack(
            np.meshgrid(*(np.arange(-half, half + 1) * spacing[1],) * 2, indexing="ij"), -1
        )
        fit = _gaussian_fit(grid.reshape(-1, 2), patch.ravel(), np.zeros(2), 0.4 * window_um)
        if fit is None or np.any(np.abs(fit[0]) > window_um):
            continue
        (dy, dx), sigma = fit
        lateral[b] = FWHM_PER_SIGMA * sigma
        centers[b, 1:] = peak[1:] * spacing[1:] + (dy, dx)
        zs = np.arange(max(peak[0] - half_z, 0), min(peak[0] + half_z + 1, shape[0]))
        if len(zs) < 4:
            continue
        line = volume[zs, peak[1], peak[2]]
        fit_z = _gaussian_fit(
            (zs * spacing[0])[:, None], line, np.array([peak[0] * spacing[0]]), 0.2
        )
        if fit_z is None or not zs[0] * spacing[0] <= fit_z[0][0] <= zs[-1] * spacing[0]:
            continue
        axial[b] = FWHM_PER_SIGMA * fit_z[1]
        centers[b, 0] = fit_z[0][0]
    return BeadWidths(lateral_um=lateral, axial_um=axial, center_um=centers)


def isolated_beads(
    positions_um: np.ndarray,
    extent_um: Sequence[float],
    *,
    min_distance_um: float = 0.6,
    margin_um: Sequence[float] | float = (0.0, 0.4, 0.4),
) -> np.ndarray:
    """Which beads have no other bead within ``min_distance_um`` (3D) and lie inside the box
    ``[margin, extent - margin]`` on every axis.

    Parameters
    ----------
    positions_um : (n, 3) array_like of float
        Bead centres ``(z, y, x)``, µm.
    extent_um : (3,) floats
        The volume's extent ``(z, y, x)`` in µm (voxels times spacing).
    min_distance_um : float
        Smallest distance to every other bead, µm.
    margin_um : float or (3,) floats
        Distance from the volume's faces, µm.

    Returns
    -------
    (n,) ndarray of bool
    """
    positions_um = np.asarray(positions_um, np.float64).reshape(-1, 3)
    extent = np.asarray(extent_um, np.float64)
    margin = np.broadcast_to(np.asarray(margin_um, np.float64), (3,))
    distance = np.linalg.norm(positions_um[:, None] - positions_um[None], axis=-1)
    np.fill_diagonal(distance, np.inf)
    inside = np.all((positions_um >= margin) & (positions_um <= extent - margin), axis=1)
    return inside & (distance.min(axis=1) >= min_distance_um)
