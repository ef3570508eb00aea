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
"""

from __future__ import annotations

import numpy as np

from ...validation import check_positive

ORDERS = (-2, -1, 0, 1, 2)
"""The illumination orders of three-beam SIM."""
BANDS = 3
"""Band OTFs by order magnitude |m| = 0, 1, 2."""


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
