"""The conventions of three-beam 3D SIM shared by the forward model, the parameter estimation
and the Wiener reconstruction (Gustafsson et al. 2008, Biophys J 94:4957).

Coordinates
    Raw voxel ``(z, y, x)`` (plane, row, column) sits at ``(z * z_step, y * pixel_size,
    x * pixel_size)`` µm: raw voxel (0, 0, 0) is the origin. A lateral position is ``r = (y, x)``
    in µm; frequencies ``k = (ky, kx)`` are in cycles/µm.
Illumination
    For orientation ``d`` and phase step ``j`` the excitation is

        I(r, z) = sum_{m=-2..2} c_m(z) exp(i m (2 pi k0_d . r + phi_{d,j})),

    ``k0_d`` the first order's lateral frequency and ``phi_{d,j}`` its phase at raw voxel
    (0, 0, 0). The axial structure of the orders ``m = +-1`` (their beams' interference with
    the central one, ``cos(2 pi kz0 dz)``) moves with the objective, so it acts in the
    detection: it belongs in the band OTFs below, not in the pattern.
Bands
    A raw plane is ``sum_m  amp_m exp(i m phi) * [OTF_|m| conv (rho exp(i m 2 pi k0 . r))]`` over
    ``m = -2..2``, where ``amp_m`` (``amp_0 = 1``, ``amp_-m = conj(amp_m)``) are the orders'
    relative strengths (modulation) and ``OTF_|m|`` the band OTFs: ``OTF_0 = OTF_2 =`` the
    widefield OTF, ``OTF_1`` the OTF of ``psf(dz) * cos(2 pi kz0 dz)``, i.e. the widefield OTF
    shifted by ``+-kz0`` axially and averaged. ``dz`` is the image plane's height minus the
    emitter's.
Amplitudes
    Three beams of equal amplitude give ``I ~ 3 + 4 cos(phase) cos(axial) + 2 cos(2 phase)``,
    so ``amp_1 = 2/3`` and ``amp_2 = 1/3`` at full contrast; a modulation depth ``d`` (the
    convention file's ``gt_modulation``) scales both: ``amp = d * (2/3, 1/3)``
    (:func:`three_beam_amplitudes`; fitted to the convention file, ``d = 0.8`` gives
    ``(0.53333, 0.26667)`` to 1e-5).
Output grid and camera pixels
    The reconstruction's grid is ``zoom`` times finer laterally, the same planes: output voxel
    ``(z, j, i)`` sits at ``(z * z_step, j * pixel / zoom, i * pixel / zoom)`` µm, so raw pixel
    ``i`` is output pixel ``zoom * i``. A camera pixel records the mean of the image over its
    square area centred on it, i.e. the image convolved with a centred box of side ``pixel``
    (transfer function :func:`pixel_transfer`) and sampled at the pixel's centre. A PSF recorded
    on the camera (and the convention file's ``gt_psf``) already holds that box; a computed,
    point-sampled PSF does not (:func:`band_otfs_on_grid`, ``pixel_integrated``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...fourier import frequency_grid, signed_indices
from ...validation import check_positive, check_shape

ORDERS = (-2, -1, 0, 1, 2)
"""The illumination orders of three-beam SIM."""
BANDS = 3
"""Band OTFs by order magnitude |m| = 0, 1, 2."""
FULL_CONTRAST_AMPLITUDES = (2.0 / 3.0, 1.0 / 3.0)
"""``(amp_1, amp_2)`` of three equal beams at full contrast (module docstring)."""


def band_otfs_from_psf(psf: np.ndarray, *, kz0: float, z_step_um: float) -> np.ndarray:
    """Band OTFs of the three orders' magnitudes from a widefield intensity PSF.

    Parameters
    ----------
    psf : (Z, Y, X) ndarray
        Widefield intensity PSF on a grid of raw voxels, its peak (the focus) at the centre
        index ``(Z // 2, Y // 2, X // 2)``; any normalization.
    kz0 : float
        Axial frequency of the first orders' interference, cycles/µm.
    z_step_um : float
        Plane spacing of ``psf`` in µm.

    Returns
    -------
    (3, Z, Y, X) ndarray of complex128
        ``OTF_|m|`` on the unshifted 3D FFT grid (DC at [0, 0, 0]) for |m| = 0, 1, 2, scaled so
        that ``OTF_0`` is 1 at DC. Convolving with band ``|m|`` is multiplying the spectrum by
        it (numpy's FFT convention, the PSF's centre taken as the origin).
    """
    psf = np.asarray(psf, np.float64)
    if psf.ndim != 3:
        raise ValueError(f"psf: expected a 3D array (Z, Y, X), got shape {psf.shape}")
    if not np.all(np.isfinite(psf)) or psf.sum() <= 0:
        raise ValueError("psf: expected finite values with a positive sum")
    check_positive("z_step_um", z_step_um, "µm")
    if not np.isfinite(kz0) or kz0 < 0:
        raise ValueError(f"kz0: expected a finite axial frequency >= 0 in cycles/µm, got {kz0!r}")
    nz = psf.shape[0]
    dz = (np.arange(nz) - nz // 2) * z_step_um  # image plane minus emitter, µm
    axial = np.cos(2 * np.pi * kz0 * dz)[:, None, None]
    centred = [psf, psf * axial, psf]
    otfs = np.stack([np.fft.fftn(np.fft.ifftshift(p)) for p in centred])
    return otfs / otfs[0, 0, 0, 0].real


def three_beam_amplitudes(depth: Any, orientations: int | None = None) -> np.ndarray:
    """Relative amplitudes ``(amp_1, amp_2)`` of the orders from a modulation depth.

    Parameters
    ----------
    depth : float, (orientations,) or (orientations, 2) array_like
        Modulation depth, 1 for three equal beams at full contrast: one for all, one per
        orientation, or one per orientation and order ``(d_1, d_2)``.
    orientations : int, optional
        Number of orientations to broadcast a scalar or per-order depth to.

    Returns
    -------
    (2,) or (orientations, 2) ndarray of float64
        ``depth * (2/3, 1/3)``: order ``m``'s strength relative to order 0 (``amp_m`` of the
        module docstring); ``(2,)`` for a scalar depth without ``orientations``.
    """
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim == 1:
        d = d[:, None]  # one per orientation, the same for both orders
    if d.ndim > 2 or (d.ndim == 2 and d.shape[1] not in (1, 2)):
        raise ValueError(
            "modulation: expected a depth (scalar), one per orientation (orientations,) or one "
            f"per orientation and order (orientations, 2), got shape {np.shape(depth)}"
        )
    if not np.all(np.isfinite(d)) or np.any(d < 0):
        raise ValueError(f"modulation: expected finite depths >= 0, got {depth!r}")
    amplitudes = d * np.array(FULL_CONTRAST_AMPLITUDES)
    if orientations is not None:
        if amplitudes.ndim == 2 and amplitudes.shape[0] != orientations:
            raise ValueError(
                f"modulation: expected {orientations} orientations, got shape {np.shape(depth)}"
            )
        amplitudes = np.broadcast_to(amplitudes, (orientations, 2)).copy()
    return amplitudes


def pixel_transfer(shape: Sequence[int], *, zoom: int, pixel_size_um: float) -> np.ndarray:
    """Transfer function of the camera pixel's integration on the output grid.

    Parameters
    ----------
    shape : (Y, X) tuple of int
        Lateral size of the output grid, whose spacing is ``pixel_size_um / zoom``.
    zoom : int
        Output pixels per raw pixel along each lateral axis.
    pixel_size_um : float
        Raw camera pixel at the sample, µm.

    Returns
    -------
    (Y, X) ndarray of float64
        ``sinc(ky p) sinc(kx p)`` (numpy's ``sinc``, ``p = pixel_size_um``) on the unshifted
        grid: the mean over a square of side ``p`` centred on each point. For an image
        band-limited below the output grid's Nyquist frequency, multiplying its spectrum by it
        and sampling at output pixel ``zoom * i`` is exactly the camera pixel ``i``'s mean.
    """
    height, width = check_shape("shape", shape, ndim=2)
    zoom = check_zoom(zoom)
    pixel = check_positive("pixel_size_um", pixel_size_um, "µm")
    ky, kx = frequency_grid((height, width), pixel / zoom)
    return np.sinc(ky * pixel) * np.sinc(kx * pixel)


def check_zoom(zoom: Any) -> int:
    """``zoom`` as an int, or a ValueError unless it is an integer >= 1."""
    try:
        integral = not isinstance(zoom, bool) and int(zoom) == zoom and int(zoom) >= 1
    except (TypeError, ValueError, OverflowError):
        integral = False
    if not integral:
        raise ValueError(
            f"zoom: expected an integer number of output pixels per raw pixel >= 1, got {zoom!r}"
        )
    return int(zoom)


def _resize_centered(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """An unshifted array (its centre at index 0 of every axis) on a grid of ``shape``: each
    sample at its own signed index, zero-padded or cropped symmetrically."""
    out = np.zeros(tuple(shape), dtype=array.dtype)
    source, target = [], []
    for n, m in zip(array.shape, shape, strict=True):
        signed = signed_indices(min(n, m))  # the signed indices both grids hold
        source.append(signed % n)
        target.append(signed % m)
    out[np.ix_(*target)] = array[np.ix_(*source)]
    return out


def band_otfs_on_grid(
    psf: np.ndarray,
    shape: Sequence[int],
    *,
    zoom: int,
    kz0: float,
    z_step_um: float,
    pixel_size_um: float,
    pixel_integrated: bool,
) -> np.ndarray:
    """Band OTFs on a (padded) output grid from a widefield PSF sampled on the camera grid.

    The PSF is interpolated ``zoom`` times finer laterally (Fourier interpolation: exact for a
    PSF band-limited below the camera's Nyquist frequency, ``2 NA / lambda_em < 1 / (2
    pixel)``, and periodic over its field), placed centred on ``shape`` (zero-padded, or
    cropped symmetrically where it is larger) and made into band OTFs by
    :func:`band_otfs_from_psf`. A circular convolution on the grid is the linear one on the
    measured region when the padding on each side covers the PSF's reach (what the PSF holds
    beyond it wraps around).

    Parameters
    ----------
    psf : (Z, Y, X) ndarray
        Widefield intensity PSF on the camera grid (``pixel_size_um``, ``z_step_um``), its focus
        at the centre index ``(Z // 2, Y // 2, X // 2)``; any normalization.
    shape : (Zp, Yp, Xp) tuple of int
        The output grid: ``z_step_um`` between planes, ``pixel_size_um / zoom`` laterally.
    zoom : int
        Output pixels per raw pixel along each lateral axis.
    kz0 : float
        Axial frequency of the first orders, cycles/µm.
    z_step_um, pixel_size_um : float
        Plane spacing and raw camera pixel at the sample, µm.
    pixel_integrated : bool
        Whether ``psf`` already holds the camera pixel's integration (a PSF recorded on the
        camera, or ``widefield_psf(..., integrate_pixel=True)``); if not, the returned OTFs are
        multiplied by :func:`pixel_transfer`.

    Returns
    -------
    (3, Zp, Yp, Xp) ndarray of complex128
        ``OTF_|m|`` for ``|m| = 0, 1, 2`` on the unshifted grid, ``OTF_0`` 1 at DC (before the
        pixel transfer, which is 1 at DC too).
    """
    psf = np.asarray(psf, dtype=np.float64)
    if psf.ndim != 3:
        raise ValueError(f"psf: expected a 3D array (Z, Y, X), got shape {psf.shape}")
    grid = check_shape("shape", shape, ndim=3)
    zoom = check_zoom(zoom)
    pixel = check_positive("pixel_size_um", pixel_size_um, "µm")
    if not np.all(np.isfinite(psf)) or psf.sum() <= 0:
        raise ValueError("psf: expected finite values with a positive sum")
    nz, ny, nx = psf.shape
    centred = np.fft.ifftshift(psf)
    if zoom > 1:
        spectrum = np.fft.fft2(centred)
        fine = np.zeros((nz, ny * zoom, nx * zoom), dtype=complex)
        index = np.ix_(np.arange(nz), *(signed_indices(n) % (n * zoom) for n in (ny, nx)))
        fine[index] = spectrum
        centred = np.fft.ifft2(fine).real * zoom**2
    placed = np.fft.fftshift(_resize_centered(centred, grid))
    otfs = band_otfs_from_psf(placed, kz0=kz0, z_step_um=z_step_um)
    if not pixel_integrated:
        otfs = otfs * pixel_transfer(grid[1:], zoom=zoom, pixel_size_um=pixel)
    return otfs
