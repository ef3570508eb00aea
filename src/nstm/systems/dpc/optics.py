"""Fourier optics of a partially coherent brightfield microscope for differential phase contrast.

Frequency grids, pupils, half-disc DPC sources and the weak-object transfer functions that map a
thin sample's absorption and phase to background-normalized DPC frames.

Conventions
-----------
* Arrays are ``(frames, H, W)`` with axis order ``(y, x) = (row, col)``; lengths are in µm.
* Frequency-domain arrays live on the *unshifted* FFT grid: DC at ``[0, 0]`` and the frequencies
  of ``numpy.fft.fftfreq(n, d=pixel_size_um)`` in cycles/µm. Names ending in ``_centered`` would
  be fftshifted; none are used here.
* The sample is a weak object with complex transmittance ``o = exp(mu + i*phi)``: ``absorption``
  ``mu`` is the natural-log amplitude (dimensionless, ``<= 0`` for absorbing samples) and
  ``phase`` ``phi`` is in radians.
* Source maps follow the **LED convention** by default (that of the original NSTM, of the
  Waller-lab DPC code and of LED-array DPC datasets): a source map is a picture of the lit LEDs
  in frequency space, and a point at ``+u`` is an LED at illumination NA ``wavelength * |u|``
  on the ``+u`` side of the optical axis, which lights the sample with the plane wave
  ``exp(-i 2 pi u . r)`` travelling towards ``-u``. The other convention, ``"wavevector"``
  (that of nstm before 0.2), puts at ``+u`` the plane wave ``exp(+i 2 pi u . r)`` itself.
  Reading a map in the wrong convention inverts the sign of the phase transfer functions, and
  so of every reconstructed phase; see `illumination_spectrum`.
* A DPC frame is the background-normalized intensity ``I / I_background - 1`` (zero-centred).

This module is NumPy set-up code, not the training hot path.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Literal

import numpy as np
import scipy.fft

from ...fourier import embed_spectrum, frequency_grid, negated_frequency, signed_indices
from ...optics import GEOMETRY_RTOL, disc, warn_if_clipped
from ...validation import check_positive, check_shape, real_array

__all__ = [
    "SOURCE_CONVENTIONS",
    "SourceConvention",
    "apply_transfer_functions",
    "dpc_sources",
    "half_disc_source",
    "illumination_spectrum",
    "transfer_functions",
]

SourceConvention = Literal["led", "wavevector"]
"""How a source map's frequency coordinate ``u`` maps to the illumination (module docstring)."""
SOURCE_CONVENTIONS: tuple[str, ...] = typing.get_args(SourceConvention)

# Correlation values below this fraction of the total source-pupil weight are FFT rounding noise.
_CORRELATION_RTOL = 1e-10


def half_disc_source(
    shape: tuple[int, int],
    *,
    angle_deg: float,
    wavelength_um: float,
    na_illum: float,
    pixel_size_um: float,
) -> np.ndarray:
    """Half-disc illumination source for DPC on the unshifted frequency grid.

    The source fills the half of the disc ``|s| <= na_illum / wavelength_um`` on the side
    ``s . n > 0`` of the line through DC, with the unit normal ``n = (cos θ, sin θ)`` given in
    ``(fx, fy)`` components. θ is measured from +fx towards +fy: θ = 0 lights ``fx > 0``,
    θ = 90 lights ``fy > 0``. In the (default) LED convention of the module docstring that is
    the half of the LEDs on the side of increasing column (θ = 0) or increasing row index
    (θ = 90), whose plane waves travel towards decreasing column or row.

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(H, W)``; odd and non-square sizes work.
    angle_deg : float
        Orientation θ of the lit half in degrees; any real value (taken modulo 360).
    wavelength_um : float
        Illumination wavelength in µm.
    na_illum : float
        Illumination numerical aperture; the disc radius is ``na_illum / wavelength_um``
        cycles/µm.
    pixel_size_um : float
        Sample-plane pixel size in µm.

    Returns
    -------
    (H, W) ndarray of float32
        Source weights: 1 on the lit side, 0.5 on the dividing line (DC included), 0 elsewhere.
        The half weights make the sources for θ and θ + 180 sum exactly to the full disc, so no
        orientation is privileged.
    """
    angle_deg = float(angle_deg)
    if not np.isfinite(angle_deg):
        raise ValueError(f"angle_deg: expected a finite angle in degrees, got {angle_deg!r}")
    wavelength_um = check_positive("wavelength_um", wavelength_um, "µm")
    na_illum = check_positive("na_illum", na_illum, "units of NA")
    pixel_size_um = check_positive("pixel_size_um", pixel_size_um, "µm")
    height, width = check_shape("shape", shape)
    radius = na_illum / wavelength_um
    warn_if_clipped("half_disc_source", radius, pixel_size_um)

    # Fold θ into [0, 180) and flip the sign instead, so that θ and θ + 180 see exactly
    # negated projections and their halves sum to the disc bit for bit.
    theta = angle_deg % 360.0
    sign = 1.0
    if theta >= 180.0:
        theta -= 180.0
        sign = -1.0
    theta_rad = np.deg2rad(theta)
    fy, fx = frequency_grid((height, width), pixel_size_um)
    projection = sign * (fx * np.cos(theta_rad) + fy * np.sin(theta_rad))

    # Treat |s . n| below a tiny fraction of the grid spacing as "on the line" (cos 90° != 0 in
    # floating point).
    spacing = min(1.0 / (height * pixel_size_um), 1.0 / (width * pixel_size_um))
    tol = GEOMETRY_RTOL * spacing
    weights = np.where(projection > tol, 1.0, np.where(projection >= -tol, 0.5, 0.0))
    weights *= disc((height, width), radius, pixel_size_um)
    return weights.astype(np.float32)


def dpc_sources(
    shape: tuple[int, int],
    *,
    wavelength_um: float,
    na_illum: float,
    pixel_size_um: float,
    angles_deg: Sequence[float] = (0, 180, 90, 270),
) -> np.ndarray:
    """Stack of half-disc DPC sources, one per illumination angle.

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(H, W)``.
    wavelength_um : float
        Illumination wavelength in µm.
    na_illum : float
        Illumination numerical aperture.
    pixel_size_um : float
        Sample-plane pixel size in µm.
    angles_deg : sequence of float, optional
        Orientation of each half disc in degrees (see `half_disc_source`). The default
        ``(0, 180, 90, 270)`` gives the usual left/right/top/bottom DPC set.

    Returns
    -------
    (n, H, W) ndarray of float32
        One source per angle, on the unshifted frequency grid.
    """
    angles = np.asarray(angles_deg, dtype=np.float64)
    if angles.ndim != 1 or angles.size == 0:
        raise ValueError(
            f"angles_deg: expected a non-empty 1D sequence of angles in degrees, got {angles_deg!r}"
        )
    return np.stack(
        [
            half_disc_source(
                shape,
                angle_deg=angle,
                wavelength_um=wavelength_um,
                na_illum=na_illum,
                pixel_size_um=pixel_size_um,
            )
            for angle in angles
        ]
    )


def illumination_spectrum(
    sources: np.ndarray, source_convention: SourceConvention = "led"
) -> np.ndarray:
    """Source maps as the weight of each illuminating plane wave ``exp(+i 2 pi f . r)``.

    Image formation (`transfer_functions`, `nstm.systems.dpc.abbe`) sums over the plane waves
    that light the sample. This maps a source map in either convention to those waves' weights
    ``W_j(f)``, on the same unshifted grid.

    Parameters
    ----------
    sources : (..., H, W) array_like
        Source maps on the unshifted frequency grid (DC at ``[0, 0]``).
    source_convention : {"led", "wavevector"}, default "led"
        ``"led"``: a point at ``+u`` is an LED lighting the sample with ``exp(-i 2 pi u . r)``
        (the original NSTM's and LED-array DPC data's convention), so ``W(f) = S(-f)``.
        ``"wavevector"``: a point at ``+u`` is the wave ``exp(+i 2 pi u . r)``, so
        ``W(f) = S(f)``.

    Returns
    -------
    (..., H, W) ndarray
        ``W``, the same dtype as `sources`; for ``"led"`` the value at the negated frequency
        ``-f mod (H, W)``, for ``"wavevector"`` `sources` itself.

    Raises
    ------
    ValueError
        If `source_convention` is not one of `SOURCE_CONVENTIONS`.
    """
    if source_convention not in SOURCE_CONVENTIONS:
        raise ValueError(
            f"source_convention: expected one of {list(SOURCE_CONVENTIONS)}, got "
            f"{source_convention!r} "
            '("led": a point at +u is an LED lighting the sample with exp(-i 2 pi u . r), the '
            'original NSTM\'s layout; "wavevector": the plane wave exp(+i 2 pi u . r) itself)'
        )
    sources = np.asarray(sources)
    return negated_frequency(sources) if source_convention == "led" else sources


# --------------------------------------------------------------------------------------------
# weak-object transfer functions
# --------------------------------------------------------------------------------------------
def transfer_functions(
    sources: np.ndarray, pupil: np.ndarray, *, source_convention: SourceConvention = "led"
) -> tuple[np.ndarray, np.ndarray]:
    r"""Weak-object absorption and phase transfer functions of partially coherent DPC.

    Frame ``j`` is lit incoherently by the plane waves ``exp(i 2 pi f . r)`` with weights
    :math:`W_j(f)` (`illumination_spectrum` of the source map :math:`S_j`). Linearizing
    ``o = exp(mu + i phi) ~ 1 + mu + i phi`` and normalizing each frame by its background
    :math:`B_j = \sum_f W_j(f) P(f)^2` gives

    .. math::

        \hat I_j(v) = H^u_j(v)\,\hat\mu(v) + H^\phi_j(v)\,\hat\phi(v),

        H^u_j(v) = \frac{1}{B_j}\sum_f W_j(f) P(f) [P(f+v) + P(f-v)],

        H^\phi_j(v) = \frac{i}{B_j}\sum_f W_j(f) P(f) [P(f+v) - P(f-v)],

    so that ``frame_j = Re IFFT2(Hu_j * FFT2(mu) + Hp_j * FFT2(phi))`` (see
    `apply_transfer_functions`), with numpy's FFT sign convention. For LED-convention source
    maps (the default, ``W_j(f) = S_j(-f)``) and an even pupil (``P(-f) = P(f)``, as every
    `pupil` is) this is the original NSTM's formula,

    .. math::

        C_j(u) = \sum_k S_j(k+u) P(k+u) P(k),\quad
        H^u_j = \frac{C_j(u) + C_j(-u)}{C_j(0)},\quad
        H^\phi_j = i\,\frac{C_j(u) - C_j(-u)}{C_j(0)},

    without its extra factor ``1 / wavelength`` (the phase here is in radians).

    Parameters
    ----------
    sources : (n, H, W) array_like
        Non-negative source intensities ``S_j`` on the unshifted frequency grid (DC at
        ``[0, 0]``), e.g. from `dpc_sources`.
    pupil : (H, W) array_like
        Real pupil amplitude ``P`` on the same grid, e.g. from `pupil`. Complex (aberrated)
        pupils are not supported.
    source_convention : {"led", "wavevector"}, default "led"
        How `sources` maps to the illumination (see `illumination_spectrum`); the wrong one
        negates ``Hp``.

    Returns
    -------
    absorption_tf, phase_tf : (n, H, W) ndarray of complex64
        ``Hu`` (real and even, ``Hu(0) = 2``) and ``Hp`` (purely imaginary and odd), on the
        unshifted grid, dimensionless (per unit of ``mu`` and per radian of ``phi``).

    Raises
    ------
    ValueError
        On shape mismatches, negative or non-finite source weights, an unknown
        `source_convention`, or a source whose background ``B_j`` is zero (no weight inside the
        pupil, e.g. a centred source passed where an unshifted one was expected).

    Notes
    -----
    The correlations are computed exactly with FFTs on a zero-padded frequency grid of about
    1.5x the size, so that ``f + v`` beyond the grid's Nyquist frequency never wraps around;
    the pupil is taken as zero outside the sampled grid. On the Nyquist row/column of an even
    axis the frequencies +F and -F share one bin, and the transfer functions there are the
    average of both (equivalently: ``Hu`` is symmetrized to be exactly even and ``Hp`` exactly
    odd); elsewhere this changes nothing. Values below 1e-10 of the total source-pupil weight
    are FFT rounding noise and are set to zero, so the transfer functions vanish exactly outside
    the ``(na + na_illum) / wavelength`` passband.
    """
    sources = real_array("sources", sources, 3, "(frames, H, W)")
    pupil = np.asarray(pupil)
    if pupil.shape != sources.shape[1:]:
        raise ValueError(
            f"pupil: expected shape (H, W) = {sources.shape[1:]} matching sources "
            f"{sources.shape}, got {pupil.shape}"
        )
    pupil = real_array("pupil", pupil, 2, "(H, W)")
    if np.any(sources < 0):
        raise ValueError("sources: expected non-negative source intensities, got negative values")

    n, height, width = sources.shape
    weighted = illumination_spectrum(sources, source_convention) * pupil  # g_j(f) = W_j(f) P(f)
    background = np.sum(weighted * pupil, axis=(-2, -1))  # B_j = sum_f W_j(f) P(f)^2
    dark = np.flatnonzero(background <= 0)
    if dark.size:
        raise ValueError(
            f"sources: sources {dark.tolist()} have zero background sum_s S(s) P(s)^2, i.e. no "
            "weight inside the pupil; sources must lie on the unshifted grid (DC at [0, 0]) "
            "inside |f| <= na / wavelength (a centred/fftshifted source lies outside the pupil)"
        )

    # C_j(v) = sum_f g_j(f) P(f + v) by the correlation theorem. Lags up to |v| = H//2 are
    # needed in both directions; a grid of H + H//2 keeps them free of wrap-around.
    padded = (
        scipy.fft.next_fast_len(height + height // 2, real=True),
        scipy.fft.next_fast_len(width + width // 2, real=True),
    )
    spectrum_g = scipy.fft.rfft2(embed_spectrum(weighted, padded), workers=-1)
    spectrum_p = scipy.fft.rfft2(embed_spectrum(pupil, padded), workers=-1)
    correlation = scipy.fft.irfft2(np.conj(spectrum_g) * spectrum_p, s=padded, workers=-1)
    noise_floor = _CORRELATION_RTOL * np.sum(np.abs(weighted), axis=(-2, -1)) * np.abs(pupil).max()
    correlation[np.abs(correlation) < noise_floor[:, None, None]] = 0.0
    correlation[:, 0, 0] = background  # C_j(0) = B_j exactly, hence Hu_j(0) = 2 exactly

    rows, cols = signed_indices(height), signed_indices(width)
    plus = correlation[:, (rows % padded[0])[:, None], (cols % padded[1])[None, :]]
    minus = correlation[:, (-rows % padded[0])[:, None], (-cols % padded[1])[None, :]]
    scale = 1.0 / background[:, None, None]
    absorption_tf = (plus + minus) * scale
    phase_odd = (plus - minus) * scale
    # Exact parity; only the Nyquist bins of even axes actually change (average of +F and -F).
    absorption_tf = 0.5 * (absorption_tf + negated_frequency(absorption_tf))
    phase_odd = 0.5 * (phase_odd - negated_frequency(phase_odd))
    return absorption_tf.astype(np.complex64), (1j * phase_odd).astype(np.complex64)


def apply_transfer_functions(
    absorption: np.ndarray,
    phase: np.ndarray,
    absorption_tf: np.ndarray,
    phase_tf: np.ndarray,
) -> np.ndarray:
    """Linear weak-object DPC model: ``Re IFFT2(Hu * FFT2(mu) + Hp * FFT2(phi))``.

    The model is periodic over the ``(H, W)`` grid.

    Parameters
    ----------
    absorption : (H, W) or (n, H, W) array_like
        Natural-log amplitude ``mu`` (dimensionless); a 2D map is used for every frame, a 3D
        stack gives frame ``j`` its own map (moving sample).
    phase : (H, W) or (n, H, W) array_like
        Phase ``phi`` in radians, same convention as `absorption`.
    absorption_tf, phase_tf : (n, H, W) array_like
        Transfer functions on the unshifted grid, e.g. from `transfer_functions`.

    Returns
    -------
    (n, H, W) ndarray
        Background-normalized DPC frames ``I / I_background - 1``; float64 if `absorption`
        or `phase` is float64, else float32.
    """
    absorption_tf = np.asarray(absorption_tf)
    phase_tf = np.asarray(phase_tf)
    if absorption_tf.ndim != 3:
        raise ValueError(
            f"absorption_tf: expected a 3D array (frames, H, W), got shape {absorption_tf.shape}"
        )
    if phase_tf.shape != absorption_tf.shape:
        raise ValueError(
            f"phase_tf: expected shape (frames, H, W) = {absorption_tf.shape} matching "
            f"absorption_tf, got {phase_tf.shape}"
        )
    n, height, width = absorption_tf.shape
    maps = {"absorption": np.asarray(absorption), "phase": np.asarray(phase)}
    for name, value in maps.items():
        if value.shape not in ((height, width), (n, height, width)):
            raise ValueError(
                f"{name}: expected shape (H, W) = {(height, width)} or (frames, H, W) = "
                f"{(n, height, width)} matching the transfer functions, got {value.shape}"
            )
        if np.iscomplexobj(value):
            raise TypeError(f"{name}: expected real values, got dtype {value.dtype}")
    dtype = np.result_type(maps["absorption"], maps["phase"], np.float32)
    complex_dtype = np.result_type(dtype, np.complex64)
    spectrum = absorption_tf.astype(complex_dtype) * scipy.fft.fft2(
        maps["absorption"].astype(dtype), workers=-1
    )
    spectrum += phase_tf.astype(complex_dtype) * scipy.fft.fft2(
        maps["phase"].astype(dtype), workers=-1
    )
    return scipy.fft.ifft2(spectrum, workers=-1).real.astype(dtype, copy=False)
