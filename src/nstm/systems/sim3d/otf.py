r"""Widefield PSF and OTFs of a fluorescence microscope for 3D SIM: computed from the optics, or
read from a measured, radially averaged OTF in the layout of cudasirecon's ``makeotf``.

Units: lengths in µm, spatial frequencies in cycles/µm, arrays ``(z, y, x)`` and spectra on the
unshifted FFT grid (``docs/conventions.md``).

Widefield PSF (Debye, angular spectrum)
    With ``K = n / lambda`` the wavenumber in the immersion medium and ``k = (ky, kx)`` a
    lateral frequency, the emission field at lateral position ``r`` and height ``z`` (the image
    plane's height minus the emitter's, µm) is the angular spectrum

        E(r, z) = integral_{|k| <= NA / lambda} A(k) exp(i 2 pi (k . r + kz(k) z)) d^2k,
        kz(k) = sqrt(K^2 - |k|^2)

    (``n`` squared: the original's ``sqrt(n - lambda^2 f^2)`` is dimensionally wrong), and the
    intensity PSF is ``|E|^2``, normalized to sum 1 over the returned volume. ``A`` is the
    aplanatic apodization of emission, ``A = (cos theta)^(-1/2)`` with ``cos theta = kz / K``:
    an isotropic point source sends equal power into equal solid angles, an aplanatic
    objective (Abbe's sine condition) maps the direction ``theta`` to pupil radius
    ``|k| = K sin theta``, so the power per pupil area goes as ``dOmega / d^2k = 1 /
    (K^2 cos theta)`` and the amplitude as its square root. (In the angle form of Richards and
    Wolf this is their ``sqrt(cos theta)`` factor times the ``d^2k = K^2 cos theta dOmega``
    Jacobian; the same factor describes focusing by reciprocity.) ``aplanatic=False`` drops it:
    the pupil is then uniform in ``k`` and the focal plane is exactly the Airy pattern.

    ``vectorial=True`` replaces the scalar field by the sum of the intensities of the two
    transverse pupil components for three orthogonal dipoles (freely rotating fluorophores):
    a dipole ``p`` radiates ``(p . e_theta) e_rho + (p . e_phi) e_phi`` into the pupil
    (meridional and sagittal components, the objective turning ``e_theta`` into the radial
    ``e_rho``), each of the six (dipole, component) pairs is one angular spectrum as above, and
    their intensities add. At NA 1.4 (n 1.515, 0.515 µm) this widens the lateral FWHM by about
    14 % (0.208 against 0.182 µm) and the axial by about 2 %; the convention file
    ``sim3d-convention-check.npz`` was simulated with the scalar model, which is the default.

    Sampling: the field is computed plane by plane on a lateral grid that is finer than the
    requested pixel when the pupil ``NA / lambda`` would not fit below its Nyquist frequency
    (the pupil must not be clipped or aliased), and larger than the requested field by a
    margin of 8 µm plus the defocus blur ``|z|_max tan(alpha)`` on each side (the periodic
    FFT then wraps only negligible tails, below 1e-3 of the peak); the intensity is sampled at
    the pixel centres and cropped. ``integrate_pixel=True`` integrates it over the square
    camera pixel instead (its lateral spectrum times ``sinc(p kx) sinc(p ky)``, exact for the
    band-limited intensity). ``periodic=True`` computes on the requested lateral grid itself,
    without margin (the PSF of a circular convolution on that grid, its tails wrapped).

OTF support (the "missing cone" torus)
    The intensity OTF is the autocorrelation of the 3D coherent transfer function, the cap of
    the sphere ``|k3| = K`` with ``|k| <= rho = NA / lambda``. At lateral frequency ``kr`` the
    axial extent of the difference set of two cap points is maximal when one point lies on the
    rim (``kz = sqrt(K^2 - rho^2) = K cos alpha``) and the other at lateral distance ``|kr -
    rho|`` from the axis, on the same side:

        kz_max(kr) = sqrt(K^2 - (kr - rho)^2) - sqrt(K^2 - rho^2),   0 <= kr <= 2 rho,

    an arc of a circle of radius ``K`` centred at ``(rho, -K cos alpha)``. It is 0 at ``kr = 0``
    (the missing cone) and at the lateral cutoff ``kr = 2 NA / lambda``, and largest,
    ``(n - sqrt(n^2 - NA^2)) / lambda``, at ``kr = NA / lambda``. The support is
    ``{kr <= 2 NA / lambda, |kz| <= kz_max(kr)}``. (The original's cutoff
    ``ceil((1 - cos(NA / n)) / lambda)`` takes the cosine of a sine, omits ``n`` and rounds.)

Axial frequency of the first orders
    Three coherent beams of excitation wavelength ``lambda_ex``: the centre one along the axis
    and two side beams with lateral wave-vectors ``+-k0`` (the first order's lateral
    frequency; the side beams' interference gives the second order, ``2 k0``). All three have
    ``|k3| = n / lambda_ex``, so the first orders, the interference of the centre beam with one
    side beam, have axial frequency

        kz0 = n / lambda_ex - sqrt((n / lambda_ex)^2 - |k0|^2),

    and the second orders (side beams with each other) none.

Measured OTFs: cudasirecon's ``makeotf`` layout
    Read from its source (github.com/scopetools/cudasirecon, ``otf/radialft.cpp``:
    ``radialft``, ``outputdata``; read back in ``cudaSirecon/cudaSirecon.cpp``:
    ``determine_otf_dimensions``, ``loadOTFs``; interpolated in ``dev_otfinterpolate``):

    * ``radialft`` averages the band-separated 3D OTF (FFTW's forward transform, numpy's sign,
      the bead moved to the origin) over rings of integer index radius ``rint(sqrt(kx^2 +
      ky^2))`` for ``kr`` indices ``0 .. nx/2``, keeps ``kz`` in FFT order (negative ``kz``
      wrapped to the top, index ``nz - j``), and enforces ``OTF(kr, -kz) = conj OTF(kr, kz)``.
      All orders are divided by the order-0 value at the origin (``rescale``); order 1 is the
      combination of the cosine and sine bands (``combine_reim``).
    * TIFF: ``outputdata`` saves a CImg of width ``2 nz``, height ``nx/2 + 1``, depth
      ``norders`` with ``save_tiff``, so one float32 page per order (3 for 5 phases; 5 with
      ``-5bands``), ``nx/2 + 1`` rows of ``kr`` and ``2 nz`` columns with ``(re, im)``
      interleaved along ``kz``. The file carries no sampling: ``dkr = 1 / (ny dr)`` and ``dkz =
      1 / (nz dz)`` (``dr``, ``dz`` the PSF's pixel size and z step); cudasirecon reads it
      back as ``dkrotf = 1 / (2 (nkr - 1) xyres)`` and ``dkzotf = 1 / (nkz zresPSF)``, the
      same for a square, even PSF.
    * MRC (priism/IVE, e.g. ``otf.otf``): ``nx = nz_psf`` (kz), ``ny = nx_psf/2 + 1`` (kr),
      ``nz = norders``, mode 4 (complex float32), and the header's ``xlen``, ``ylen`` (bytes
      40, 44) hold ``dkz`` and ``dkr``.
    * cudasirecon's reconstruction interpolates the table bilinearly in ``(kr, kz)``
      (``dev_otfinterpolate`` in ``cudaSirecon/gpuFunctionsImpl.cu``), negative ``kz`` wrapped
      by ``+ nzotf`` and the last ``kz`` index interpolated towards index 0 (periodic).
      :func:`expand_radial_otf` interpolates the same way but sets every frequency outside the
      measured range to zero (``kr > (n_kr - 1) dkr`` or ``|kz|`` beyond the table's Nyquist
      frequency): the original NSTM clamped the indices, which extends the edge values over
      the whole of a finer or larger grid.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft

from ...fourier import frequency_grid, signed_indices
from ...validation import check_positive, check_shape
from .bands import band_otfs_from_psf

__all__ = [
    "RadialOTF",
    "axial_cutoff",
    "computed_band_otfs",
    "expand_radial_otf",
    "kz0_three_beam",
    "lateral_cutoff",
    "load_radial_otf",
    "max_axial_frequency",
    "otf_support",
    "radial_average",
    "save_radial_otf",
    "widefield_psf",
]

# Lateral margin around the requested field (µm, each side) before the defocus blur: the
# in-focus amplitude falls as r^-3/2, so the periodic FFT's wrapped tails stay below 1e-3 of
# the peak (measured against the Debye integral by quadrature in tests/test_sim3d_otf.py).
_MARGIN_UM = 8.0
# Relative slack for "inside the support": grid frequencies on the boundary stay inside.
_RTOL = 1e-9


def _check_optics(na: float, n_immersion: float, wavelength_um: float, wl_name: str) -> tuple:
    na = check_positive("na", na, "units of NA")
    n_immersion = check_positive("n_immersion", n_immersion, "refractive index units")
    wavelength_um = check_positive(wl_name, wavelength_um, "µm")
    if na >= n_immersion:
        raise ValueError(
            f"na: expected a numerical aperture below the immersion index n_immersion="
            f"{n_immersion}, got {na}"
        )
    return na, n_immersion, wavelength_um


def widefield_psf(
    shape: Sequence[int],
    *,
    pixel_size_um: float,
    z_step_um: float,
    na: float,
    n_immersion: float,
    wavelength_um: float,
    aplanatic: bool = True,
    vectorial: bool = False,
    integrate_pixel: bool = False,
    periodic: bool = False,
) -> np.ndarray:
    """Widefield fluorescence intensity PSF, Debye / angular-spectrum model (module docstring).

    Parameters
    ----------
    shape : (Z, Y, X) tuple of int
        Grid of the PSF; its focus sits at the centre index ``(Z // 2, Y // 2, X // 2)``, plane
        ``j`` at height ``(j - Z // 2) * z_step_um`` (image plane minus emitter).
    pixel_size_um : float
        Lateral sample spacing at the sample, µm.
    z_step_um : float
        Plane spacing, µm.
    na : float
        Detection numerical aperture, below ``n_immersion``.
    n_immersion : float
        Refractive index of the immersion (and, index-matched, the sample) medium.
    wavelength_um : float
        Emission wavelength in vacuum, µm.
    aplanatic : bool
        Apply the aplanatic emission apodization ``(cos theta)^(-1/2)`` (default); False gives
        a pupil uniform in lateral frequency.
    vectorial : bool
        Freely rotating dipole emitters with the pupil's polarization (default: scalar).
    integrate_pixel : bool
        Integrate over the square pixel instead of sampling at its centre.
    periodic : bool
        Compute on the requested lateral grid itself (tails wrap around) instead of on a grid
        with a margin, cropped.

    Returns
    -------
    (Z, Y, X) ndarray of float64
        The intensity PSF, non-negative, sum 1.
    """
    nz, ny, nx = check_shape("shape", shape, ndim=3)
    pixel = check_positive("pixel_size_um", pixel_size_um, "µm")
    dz = check_positive("z_step_um", z_step_um, "µm")
    na, n_imm, wavelength = _check_optics(na, n_immersion, wavelength_um, "wavelength_um")
    k_medium = n_imm / wavelength
    k_pupil = na / wavelength
    # The pupil (the field's band) must lie strictly inside the fine grid's Nyquist band, and for
    # the pixel integration the intensity's band 2 NA / lambda too.
    reach = (4 if integrate_pixel else 2) * pixel * k_pupil
    sub = math.floor(reach * (1 + 1e-9)) + 1
    z = (np.arange(nz) - nz // 2) * dz
    if periodic:
        size_y, size_x = ny * sub, nx * sub
    else:
        tan_alpha = na / math.sqrt(n_imm**2 - na**2)
        margin = math.ceil((_MARGIN_UM + np.abs(z).max() * tan_alpha) / pixel)
        # Square, so that the sampled pupil keeps the x <-> y symmetry of the optics.
        size_y = size_x = scipy.fft.next_fast_len((max(ny, nx) + 2 * margin) * sub)
    fine = pixel / sub
    ky, kx = frequency_grid((size_y, size_x), fine)
    kr2 = ky**2 + kx**2
    inside = kr2 <= k_pupil**2 * (1 + _RTOL)
    kz = np.sqrt(np.maximum(k_medium**2 - kr2, 0.0))
    cos_t = kz / k_medium
    apodization = np.where(inside, cos_t, 1.0) ** -0.5 if aplanatic else 1.0
    amplitude = np.where(inside, apodization, 0.0)
    if vectorial:
        sin_t = np.sqrt(kr2) / k_medium
        phi = np.arctan2(ky, kx)
        c, s = np.cos(phi), np.sin(phi)
        # Pupil field per dipole axis (x, y, z) and transverse component (x, y).
        components = [
            c * c * cos_t + s * s,
            c * s * (cos_t - 1),
            c * s * (cos_t - 1),
            s * s * cos_t + c * c,
            -sin_t * c,
            -sin_t * s,
        ]
    else:
        components = [1.0]
    if integrate_pixel:
        # The camera pixel's box, applied to the band-limited intensity on the fine grid.
        box = np.sinc(ky * pixel) * np.sinc(kx * pixel)
    # Fine-grid indices of the requested pixel centres, the fftshifted origin at size // 2.
    rows = size_y // 2 + (np.arange(ny) - ny // 2) * sub
    cols = size_x // 2 + (np.arange(nx) - nx // 2) * sub
    psf = np.empty((nz, ny, nx))
    for j, height in enumerate(z):
        spectrum = amplitude * np.exp(2j * np.pi * kz * height)
        intensity = sum(np.abs(scipy.fft.ifft2(spectrum * m)) ** 2 for m in components)
        if integrate_pixel:
            intensity = scipy.fft.ifft2(scipy.fft.fft2(intensity) * box).real
        psf[j] = np.fft.fftshift(intensity)[np.ix_(rows, cols)]
    np.maximum(psf, 0.0, out=psf)  # the pixel integration's rounding can dip below 0
    return psf / psf.sum()


def lateral_cutoff(*, na: float, wavelength_um: float) -> float:
    """Lateral cutoff ``2 NA / lambda`` of the widefield OTF, cycles/µm."""
    na = check_positive("na", na, "units of NA")
    return 2 * na / check_positive("wavelength_um", wavelength_um, "µm")


def max_axial_frequency(*, na: float, n_immersion: float, wavelength_um: float) -> float:
    """Largest axial frequency ``(n - sqrt(n^2 - NA^2)) / lambda`` of the widefield OTF (reached at
    ``kr = NA / lambda``), cycles/µm."""
    na, n_imm, wavelength = _check_optics(na, n_immersion, wavelength_um, "wavelength_um")
    return (n_imm - math.sqrt(n_imm**2 - na**2)) / wavelength


def axial_cutoff(
    kr: float | np.ndarray, *, na: float, n_immersion: float, wavelength_um: float
) -> np.ndarray:
    """Axial extent of the widefield OTF's support at lateral frequency ``kr``.

    Parameters
    ----------
    kr : float or ndarray
        Lateral frequency magnitude(s), cycles/µm, ``>= 0``.
    na, n_immersion, wavelength_um : float
        Detection NA, immersion index and emission wavelength (µm).

    Returns
    -------
    ndarray of float64, the shape of ``kr``
        ``kz_max(kr) = sqrt(K^2 - (kr - rho)^2) - sqrt(K^2 - rho^2)`` cycles/µm with ``K = n /
        lambda`` and ``rho = NA / lambda``: the support is ``|kz| <= kz_max``. NaN beyond the
        lateral cutoff ``2 rho``, where there is no support (so ``|kz| <= kz_max`` is False).
    """
    na, n_imm, wavelength = _check_optics(na, n_immersion, wavelength_um, "wavelength_um")
    kr = np.asarray(kr, dtype=np.float64)
    if np.any(kr < 0) or not np.all(np.isfinite(kr)):
        raise ValueError("kr: expected finite lateral frequencies >= 0 in cycles/µm")
    return _kz_max(kr, k_medium=n_imm / wavelength, rho=na / wavelength)


def _kz_max(kr: np.ndarray, *, k_medium: float, rho: float) -> np.ndarray:
    """:func:`axial_cutoff` without the checks: NaN beyond ``2 rho`` (cycles/µm)."""
    within = kr <= 2 * rho * (1 + _RTOL)
    d = np.minimum(np.abs(kr - rho), rho)
    kz_max = np.sqrt(k_medium**2 - d**2) - math.sqrt(k_medium**2 - rho**2)
    return np.where(within, np.maximum(kz_max, 0.0), np.nan)


def otf_support(
    shape: Sequence[int],
    *,
    pixel_size_um: float,
    z_step_um: float,
    na: float,
    n_immersion: float,
    wavelength_um: float,
    kz0: float = 0.0,
) -> np.ndarray:
    """Support of the widefield OTF (or of a band shifted axially by ``+-kz0``) on the FFT grid.

    Parameters
    ----------
    shape : (Z, Y, X) tuple of int
        Grid of the spectrum (unshifted, ``numpy.fft`` order).
    pixel_size_um, z_step_um : float
        Lateral and axial sample spacings, µm.
    na, n_immersion, wavelength_um : float
        Detection NA, immersion index and emission wavelength (µm).
    kz0 : float
        Axial shift in cycles/µm: the support is the union of the widefield support shifted by
        ``+kz0`` and ``-kz0`` (band ``|m| = 1`` of 3D SIM, :func:`kz0_three_beam`); 0 for the
        widefield band.

    Returns
    -------
    (Z, Y, X) ndarray of bool
        True where the continuous OTF can be non-zero: ``kr <= 2 NA / lambda`` and ``|kz -+ kz0|
        <= kz_max(kr)`` (:func:`axial_cutoff`), boundary included. Frequencies beyond a grid
        axis's Nyquist frequency alias onto it, so the mask includes the aliases of the
        support when the sampling is coarser than the OTF.
    """
    nz, ny, nx = check_shape("shape", shape, ndim=3)
    pixel = check_positive("pixel_size_um", pixel_size_um, "µm")
    dz = check_positive("z_step_um", z_step_um, "µm")
    na, n_imm, wavelength = _check_optics(na, n_immersion, wavelength_um, "wavelength_um")
    if not np.isfinite(kz0) or kz0 < 0:
        raise ValueError(f"kz0: expected a finite axial frequency >= 0 in cycles/µm, got {kz0!r}")
    cutoff = 2 * na / wavelength
    kz_reach = max_axial_frequency(na=na, n_immersion=n_imm, wavelength_um=wavelength) + kz0
    fz = np.fft.fftfreq(nz, dz)[:, None, None]
    fy = np.fft.fftfreq(ny, pixel)[None, :, None]
    fx = np.fft.fftfreq(nx, pixel)[None, None, :]
    mask = np.zeros((nz, ny, nx), dtype=bool)
    # Aliases m / spacing of the support that reach the grid's band [-1/2, 1/2] / spacing: the
    # alias m reaches it when (|m| - 1/2) / spacing <= the support's extent.
    mz, mr = math.floor(kz_reach * dz + 0.5), math.floor(cutoff * pixel + 0.5)
    alias_z, alias_r = range(-mz, mz + 1), range(-mr, mr + 1)
    slack = _RTOL * cutoff
    for ay in alias_r:
        for ax in alias_r:
            kr = np.sqrt((fy + ay / pixel) ** 2 + (fx + ax / pixel) ** 2)
            kz_max = _kz_max(kr, k_medium=n_imm / wavelength, rho=na / wavelength)
            for az in alias_z:
                for shift in {kz0, -kz0}:
                    # NaN (no support) compares False.
                    mask |= np.abs(fz + az / dz - shift) <= kz_max + slack
    return mask


def kz0_three_beam(
    k0: float | np.ndarray, *, n_immersion: float, wavelength_ex_um: float
) -> np.ndarray:
    """Axial frequency of the first orders of three-beam SIM from the pattern's geometry.

    Parameters
    ----------
    k0 : float or ndarray
        Magnitude(s) ``|k0|`` of the first order's lateral frequency, cycles/µm (the lateral
        wave-vector of a side beam; for ``(ky, kx)`` vectors pass ``np.linalg.norm(k0,
        axis=-1)``).
    n_immersion : float
        Refractive index of the medium the beams interfere in.
    wavelength_ex_um : float
        Excitation wavelength in vacuum, µm.

    Returns
    -------
    ndarray of float64, the shape of ``k0``
        ``kz0 = n / lambda_ex - sqrt((n / lambda_ex)^2 - |k0|^2)`` cycles/µm.
    """
    n_imm = check_positive("n_immersion", n_immersion, "refractive index units")
    wavelength = check_positive("wavelength_ex_um", wavelength_ex_um, "µm")
    k0 = np.asarray(k0, dtype=np.float64)
    k_medium = n_imm / wavelength
    if not np.all(np.isfinite(k0)) or np.any(k0 < 0) or np.any(k0 > k_medium):
        raise ValueError(
            f"k0: expected lateral frequency magnitudes in [0, n / wavelength_ex] = "
            f"[0, {k_medium:.6g}] cycles/µm (a propagating side beam), got {k0}"
        )
    return k_medium - np.sqrt(k_medium**2 - k0**2)


def computed_band_otfs(
    shape: Sequence[int],
    *,
    pixel_size_um: float,
    z_step_um: float,
    na: float,
    n_immersion: float,
    wavelength_em_um: float,
    kz0: float,
    **psf_options: bool,
) -> np.ndarray:
    """Band OTFs ``|m| = 0, 1, 2`` of three-beam SIM from the microscope's optics.

    The widefield PSF of :func:`widefield_psf` on ``shape`` (options passed through), made into
    band OTFs by :func:`nstm.systems.sim3d.bands.band_otfs_from_psf`; ``kz0`` in cycles/µm
    (:func:`kz0_three_beam`). Returns ``(3, Z, Y, X)`` complex128 on the unshifted grid,
    ``OTF_0`` 1 at DC. The PSF's z range must cover its axial reach: a short stack truncates
    it and blurs the OTFs along ``kz``.
    """
    psf = widefield_psf(
        shape,
        pixel_size_um=pixel_size_um,
        z_step_um=z_step_um,
        na=na,
        n_immersion=n_immersion,
        wavelength_um=wavelength_em_um,
        **psf_options,
    )
    return band_otfs_from_psf(psf, kz0=kz0, z_step_um=z_step_um)


@dataclass(frozen=True)
class RadialOTF:
    """A radially averaged OTF per order, as ``makeotf`` writes it.

    Attributes
    ----------
    values : (orders, n_kr, n_kz) ndarray of complex128
        ``values[o, i, j]`` is order ``o``'s OTF at ``kr = i * dkr`` and at the ``j``-th
        frequency of an unshifted length-``n_kz`` FFT axis, ``kz = signed_indices(n_kz)[j] *
        dkz`` (negative ``kz`` wrapped to the top).
    dkr : float
        Radial sample spacing, cycles/µm.
    dkz : float
        Axial sample spacing, cycles/µm.
    """

    values: np.ndarray
    dkr: float
    dkz: float

    def __post_init__(self) -> None:
        values = np.asarray(self.values)
        if values.ndim != 3 or values.shape[1] < 2 or values.shape[2] < 1:
            raise ValueError(
                f"values: expected a complex array (orders, n_kr >= 2, n_kz), got shape "
                f"{values.shape}"
            )
        if not np.all(np.isfinite(values)):
            raise ValueError("values: expected finite OTF values, got NaN or inf")
        object.__setattr__(self, "values", values.astype(np.complex128))
        object.__setattr__(self, "dkr", check_positive("dkr", self.dkr, "cycles/µm"))
        object.__setattr__(self, "dkz", check_positive("dkz", self.dkz, "cycles/µm"))

    @property
    def orders(self) -> int:
        """Number of orders (pages)."""
        return self.values.shape[0]

    @property
    def n_kr(self) -> int:
        """Number of radial samples (``nx/2 + 1`` of the PSF)."""
        return self.values.shape[1]

    @property
    def n_kz(self) -> int:
        """Number of axial samples (the PSF's planes)."""
        return self.values.shape[2]


def radial_average(otf: np.ndarray, *, pixel_size_um: float, z_step_um: float) -> RadialOTF:
    """Radially average 3D OTFs the way ``makeotf``'s ``radialft`` does.

    Parameters
    ----------
    otf : (orders, Z, Y, X) ndarray of complex
        OTFs on the unshifted 3D FFT grid of a PSF with lateral pixel ``pixel_size_um`` and
        plane spacing ``z_step_um`` (µm), e.g. from ``band_otfs_from_psf``.
    pixel_size_um, z_step_um : float
        The PSF's sampling, µm.

    Returns
    -------
    RadialOTF
        ``n_kr = X // 2 + 1`` rings of width ``dkr = 1 / (2 (n_kr - 1) pixel_size_um)`` (the
        ring of a frequency is ``rint(kr / dkr)``), ``n_kz = Z`` at ``dkz = 1 / (Z z_step_um)``,
        Hermitian in ``kz`` (``OTF(kr, -kz) = conj OTF(kr, kz)``). Unlike ``makeotf`` this does
        not replace the ``kr = 0`` line, clean up beyond the support or rescale.
    """
    otf = np.asarray(otf)
    if otf.ndim != 4:
        raise ValueError(f"otf: expected an array (orders, Z, Y, X), got shape {otf.shape}")
    pixel = check_positive("pixel_size_um", pixel_size_um, "µm")
    dz = check_positive("z_step_um", z_step_um, "µm")
    orders, nz, ny, nx = otf.shape
    if nx < 2:
        raise ValueError(f"otf: expected X >= 2 lateral samples, got shape {otf.shape}")
    n_kr = nx // 2 + 1
    dkr = 1.0 / (2 * (n_kr - 1) * pixel)
    ky, kx = frequency_grid((ny, nx), pixel)
    ring = np.rint(np.hypot(ky, kx) / dkr).astype(np.int64).ravel()
    keep = ring < n_kr
    counts = np.bincount(ring[keep], minlength=n_kr).astype(np.float64)
    flat = otf.reshape(orders, nz, ny * nx)[:, :, keep]
    values = np.zeros((orders, n_kr, nz), dtype=np.complex128)
    for o in range(orders):
        for j in range(nz):
            re = np.bincount(ring[keep], weights=flat[o, j].real, minlength=n_kr)
            im = np.bincount(ring[keep], weights=flat[o, j].imag, minlength=n_kr)
            values[o, :, j] = (re + 1j * im) / np.maximum(counts, 1)
    # Hermitian in kz, as radialft enforces: the average of OTF(kz) and conj OTF(-kz).
    negated = values[:, :, (-np.arange(nz)) % nz]
    values = (values + np.conj(negated)) / 2
    return RadialOTF(values, dkr=dkr, dkz=1.0 / (nz * dz))


def save_radial_otf(path: str | os.PathLike[str], radial: RadialOTF) -> None:
    """Write a radial OTF as ``makeotf`` writes its TIFF: one float32 page per order, ``n_kr``
    rows, ``2 n_kz`` columns with ``(re, im)`` interleaved along ``kz``. The sampling is not
    stored (``makeotf`` does not store it either): read it back with the PSF's pixel size and
    z step, ``1 / (2 (n_kr - 1) dkr)`` and ``1 / (n_kz dkz)``."""
    import tifffile

    interleaved = np.empty((radial.orders, radial.n_kr, 2 * radial.n_kz), dtype=np.float32)
    interleaved[..., 0::2] = radial.values.real
    interleaved[..., 1::2] = radial.values.imag
    tifffile.imwrite(Path(path), interleaved, photometric="minisblack", metadata=None)


def load_radial_otf(
    path: str | os.PathLike[str],
    *,
    pixel_size_um: float | None = None,
    z_step_um: float | None = None,
) -> RadialOTF:
    """Read a radially averaged OTF written by cudasirecon's ``makeotf`` (TIFF or MRC).

    Parameters
    ----------
    path : path
        A TIFF (``.tif``, ``.tiff``: float32 pages, one per order, ``n_kr`` rows by ``2 n_kz``
        interleaved real/imaginary columns) or a priism/IVE MRC (``.otf``, ``.mrc``, ``.dv``:
        complex mode 4, ``nx = n_kz``, ``ny = n_kr``, ``nz`` orders, ``dkz`` and ``dkr`` in the
        header's ``xlen``, ``ylen``).
    pixel_size_um : float, optional
        Lateral pixel size of the PSF the OTF was made from, µm: required for a TIFF, which
        holds no sampling (``dkr = 1 / (2 (n_kr - 1) pixel_size_um)``, cudasirecon's
        ``xyres``); for an MRC, checked against the header.
    z_step_um : float, optional
        Plane spacing of that PSF, µm: required for a TIFF (``dkz = 1 / (n_kz z_step_um)``,
        cudasirecon's ``zresPSF``); for an MRC, checked against the header.

    Returns
    -------
    RadialOTF
        ``values`` of shape ``(orders, n_kr, n_kz)``, ``dkr`` and ``dkz`` in cycles/µm.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        values = _read_tiff_otf(path)
        if pixel_size_um is None or z_step_um is None:
            missing = "pixel_size_um" if pixel_size_um is None else "z_step_um"
            raise ValueError(
                f"{missing}: a makeotf TIFF stores no sampling; give the PSF's lateral pixel "
                f"size and z step in µm (cudasirecon's xyres and zresPSF) for {path}"
            )
        pixel = check_positive("pixel_size_um", pixel_size_um, "µm")
        dz = check_positive("z_step_um", z_step_um, "µm")
        n_kr, n_kz = values.shape[1:]
        return RadialOTF(values, dkr=1.0 / (2 * (n_kr - 1) * pixel), dkz=1.0 / (n_kz * dz))
    values, dkr, dkz = _read_mrc_otf(path)
    radial = RadialOTF(values, dkr=dkr, dkz=dkz)
    for name, given, stored in (
        ("pixel_size_um", pixel_size_um, 1.0 / (2 * (radial.n_kr - 1) * dkr)),
        ("z_step_um", z_step_um, 1.0 / (radial.n_kz * dkz)),
    ):
        if given is not None and not math.isclose(
            check_positive(name, given, "µm"), stored, rel_tol=1e-3
        ):
            raise ValueError(
                f"{name}: {given} µm disagrees with the OTF file {path}, whose sampling "
                f"implies {stored:.6g} µm"
            )
    return radial


def _read_tiff_otf(path: Path) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        pages = [page.asarray() for page in tif.pages]
    shapes = {p.shape for p in pages}
    if len(shapes) != 1 or len(pages[0].shape) != 2 or pages[0].shape[1] % 2:
        raise ValueError(
            f"{path}: expected makeotf's layout, pages of equal shape (n_kr, 2 n_kz) with "
            f"interleaved real and imaginary columns, got page shapes {sorted(shapes)}"
        )
    data = np.stack(pages).astype(np.float64)
    return data[..., 0::2] + 1j * data[..., 1::2]


def _read_mrc_otf(path: Path) -> tuple[np.ndarray, float, float]:
    raw = path.read_bytes()
    if len(raw) < 1024:
        raise ValueError(f"{path}: neither a TIFF nor an MRC file (shorter than an MRC header)")
    for order in "<>":
        nx, ny, nz, mode = struct.unpack(order + "4i", raw[:16])
        if 0 < nx < 2**20 and 0 < ny < 2**20 and 0 < nz < 2**16 and 0 <= mode < 2**16:
            break
    else:
        raise ValueError(f"{path}: neither a TIFF nor an MRC file (unreadable header)")
    if mode != 4:
        raise ValueError(
            f"{path}: expected an MRC of complex float32 (mode 4) as makeotf writes, got mode "
            f"{mode}"
        )
    dkz, dkr = struct.unpack(order + "2f", raw[40:48])
    (extended,) = struct.unpack(order + "i", raw[92:96])
    start = 1024 + max(extended, 0)
    count = nx * ny * nz
    if len(raw) < start + 8 * count:
        raise ValueError(f"{path}: the MRC holds fewer than {count} complex samples")
    data = np.frombuffer(raw, dtype=np.dtype(order + "c8"), count=count, offset=start)
    return data.reshape(nz, ny, nx).astype(np.complex128), float(dkr), float(dkz)


def expand_radial_otf(
    radial: RadialOTF, shape: Sequence[int], *, pixel_size_um: float, z_step_um: float
) -> np.ndarray:
    """Radially averaged OTFs expanded onto a 3D FFT grid by bilinear interpolation in (kr, kz).

    Parameters
    ----------
    radial : RadialOTF
        The OTFs and their sampling (:func:`load_radial_otf`).
    shape : (Z, Y, X) tuple of int
        Grid of the spectrum to fill (unshifted).
    pixel_size_um, z_step_um : float
        That grid's lateral and axial sample spacings, µm.

    Returns
    -------
    (orders, Z, Y, X) ndarray of complex128
        Each order's OTF at ``kr = sqrt(ky^2 + kx^2)``, ``kz`` of the grid; zero wherever the
        frequency lies outside the measured range (``kr > (n_kr - 1) dkr`` or ``|kz| > n_kz dkz /
        2``), not clamped to the table's edge.
    """
    nz, ny, nx = check_shape("shape", shape, ndim=3)
    pixel = check_positive("pixel_size_um", pixel_size_um, "µm")
    dz = check_positive("z_step_um", z_step_um, "µm")
    values = radial.values
    # The kz axis in increasing order; an even table's Nyquist sample (real, by the Hermitian
    # symmetry) stands for both +-n_kz/2.
    order = np.argsort(signed_indices(radial.n_kz))
    table = values[:, :, order]
    lowest = signed_indices(radial.n_kz)[order[0]]
    if radial.n_kz % 2 == 0:
        table = np.concatenate([table, table[:, :, :1]], axis=2)
    ky, kx = frequency_grid((ny, nx), pixel)
    u = np.hypot(ky, kx) / radial.dkr  # fractional kr index, (Y, X)
    v = np.fft.fftfreq(nz, dz) / radial.dkz - lowest  # fractional index on the sorted kz axis
    u_ok = u <= (radial.n_kr - 1) * (1 + _RTOL)
    v_ok = (v >= -_RTOL) & (v <= (table.shape[2] - 1) + _RTOL)
    u = np.clip(u, 0, radial.n_kr - 1)
    v = np.clip(v, 0, table.shape[2] - 1)
    i0 = np.minimum(np.floor(u).astype(np.int64), radial.n_kr - 2)
    j0 = np.minimum(np.floor(v).astype(np.int64), max(table.shape[2] - 2, 0))
    a = (u - i0)[None, None]  # (1, 1, Y, X)
    b = (v - j0)[None, :, None, None] if table.shape[2] > 1 else np.zeros((1, nz, 1, 1))
    j1 = np.minimum(j0 + 1, table.shape[2] - 1)

    def at(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return table[:, i[None], j[:, None, None]]  # (orders, Z, Y, X)

    out = (1 - a) * ((1 - b) * at(i0, j0) + b * at(i0, j1)) + a * (
        (1 - b) * at(i0 + 1, j0) + b * at(i0 + 1, j1)
    )
    out *= (u_ok[None] & v_ok[:, None, None])[None]
    return out
