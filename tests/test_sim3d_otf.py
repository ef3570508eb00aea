"""The widefield PSF, OTF support and measured-OTF reading of 3D SIM (nstm.systems.sim3d.otf).

Pinned to things we did not write: the convention file's ``gt_psf`` and ``gt_kz0`` (simulated by
code that is not ours, ``shared/data/sim3d-convention-check.npz``), the Debye integral by
quadrature and the Airy pattern, the published high-NA FWHM formulas, a brute-force
autocorrelation of the pupil cap, and cudasirecon's ``makeotf`` file layout as its source
(``otf/radialft.cpp``) describes it.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
import tifffile
from scipy.special import j0, j1
from sim3d_check import CHECK

from nstm.systems.sim3d.bands import band_otfs_from_psf
from nstm.systems.sim3d.otf import (
    RadialOTF,
    axial_cutoff,
    computed_band_otfs,
    expand_radial_otf,
    kz0_three_beam,
    lateral_cutoff,
    load_radial_otf,
    max_axial_frequency,
    otf_support,
    radial_average,
    save_radial_otf,
    widefield_psf,
)

# The convention file's microscope: oil NA 1.4, emission 0.515 µm, pixel 0.08 µm, z step 0.125.
NA, N_IMM, WL_EM, WL_EX, PIXEL, DZ = 1.4, 1.515, 0.515, 0.488, 0.08, 0.125
OPTICS = dict(na=NA, n_immersion=N_IMM, wavelength_um=WL_EM)


@pytest.fixture(scope="module")
def check() -> dict[str, np.ndarray]:
    with np.load(CHECK) as data:
        return {key: data[key] for key in data.files}


def _fwhm(profile: np.ndarray, spacing: float) -> float:
    """Full width at half maximum of a single-peaked profile, crossings linearly interpolated."""
    peak = int(np.argmax(profile))
    half = profile[peak] / 2
    right = peak + int(np.argmax(profile[peak:] < half))
    left = peak - int(np.argmax(profile[peak::-1] < half))
    x_right = right - 1 + (profile[right - 1] - half) / (profile[right - 1] - profile[right])
    x_left = left + 1 - (profile[left + 1] - half) / (profile[left + 1] - profile[left])
    return float((x_right - x_left) * spacing)


def _lateral_fwhm(plane: np.ndarray, pixel: float, factor: int = 16) -> float:
    """FWHM along x through the centre of a focal plane, band-limited (Fourier) interpolation."""
    ny, nx = plane.shape
    spectrum = np.fft.fft2(np.fft.ifftshift(plane))
    big = np.zeros((ny * factor, nx * factor), complex)
    iy, ix = np.fft.fftfreq(ny, 1 / ny).astype(int), np.fft.fftfreq(nx, 1 / nx).astype(int)
    big[np.ix_(iy % (ny * factor), ix % (nx * factor))] = spectrum
    fine = np.fft.fftshift(np.fft.ifft2(big).real)
    return _fwhm(fine[ny * factor // 2], pixel / factor)


def _axial_fwhm(psf: np.ndarray, dz: float) -> float:
    from scipy.interpolate import CubicSpline

    profile = psf[:, psf.shape[1] // 2, psf.shape[2] // 2]
    z = np.arange(len(profile)) * dz
    zz = np.linspace(z[0], z[-1], 4001)
    return _fwhm(CubicSpline(z, profile)(zz), zz[1] - zz[0])


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def _debye_quadrature(shape, pixel, dz, *, aplanatic=True):
    """The scalar Debye integral E(r, z) = 2 pi int_0^{NA/lambda} A(k) J0(2 pi k r)
    exp(i 2 pi kz z) k dk by composite Gauss-Legendre quadrature: an independent evaluation of
    the angular spectrum (no lateral grid, no FFT)."""
    nodes, weights = np.polynomial.legendre.leggauss(32)
    edges = np.linspace(0, NA / WL_EM, 65)
    half = np.diff(edges)[:, None] / 2
    k = ((edges[:-1, None] + half) + half * nodes).ravel()
    w = (half * weights).ravel()
    kz = np.sqrt((N_IMM / WL_EM) ** 2 - k**2)
    amplitude = (kz * WL_EM / N_IMM) ** -0.5 if aplanatic else np.ones_like(k)
    nz, ny, nx = shape
    yy, xx = np.meshgrid((np.arange(ny) - ny // 2) * pixel, (np.arange(nx) - nx // 2) * pixel)
    radii, inverse = np.unique(np.hypot(yy, xx).T, return_inverse=True)
    bessel = j0(2 * np.pi * np.outer(radii, k))
    psf = np.empty(shape)
    for i, z in enumerate((np.arange(nz) - nz // 2) * dz):
        field = bessel @ (w * amplitude * k * np.exp(2j * np.pi * kz * z))
        psf[i] = (np.abs(field) ** 2)[inverse.ravel()].reshape(ny, nx)
    return psf


# --- the widefield PSF ----------------------------------------------------------------------


def test_psf_reproduces_the_convention_file_psf(check):
    # gt_psf is the scalar angular spectrum with the (cos theta)^(-1/2) emission apodization,
    # computed on its own 64 x 64 grid (periodic) and integrated over the 80 nm pixel: with
    # the same options we reproduce it to float32 rounding. This pins the apodization's
    # exponent, the n^2 in kz, the centring and the sign conventions to code not ours.
    gt = check["gt_psf"].astype(np.float64)
    ours = widefield_psf(
        gt.shape, pixel_size_um=PIXEL, z_step_um=DZ, **OPTICS, periodic=True, integrate_pixel=True
    )
    assert np.abs(ours - gt).max() < 1e-6 * gt.max()
    for variant in (dict(aplanatic=False), dict(vectorial=True)):
        other = widefield_psf(
            gt.shape,
            pixel_size_um=PIXEL,
            z_step_um=DZ,
            **OPTICS,
            periodic=True,
            integrate_pixel=True,
            **variant,
        )
        assert np.abs(other - gt).max() > 0.02 * gt.max()


def test_psf_default_agrees_with_the_convention_file_psf(check):
    # The default (a lateral margin instead of wrapping, point samples) against gt_psf:
    # NCC 0.9982, lateral FWHM 182 vs 189 nm (-3.7 %: gt_psf integrates over the pixel),
    # axial 494 vs 506 nm (-2.4 %: gt_psf's wrapped tails); with the pixel integration NCC
    # 0.9997, lateral 188 nm (-0.6 %), axial 494 nm (-2.2 %).
    gt = check["gt_psf"].astype(np.float64)
    gt_lateral, gt_axial = _lateral_fwhm(gt[4], PIXEL), _axial_fwhm(gt, DZ)
    assert gt_lateral == pytest.approx(0.1893, abs=5e-4)
    assert gt_axial == pytest.approx(0.5056, abs=5e-4)
    for integrate, ncc_min, lateral_rtol in ((False, 0.995, 0.05), (True, 0.999, 0.015)):
        ours = widefield_psf(
            gt.shape, pixel_size_um=PIXEL, z_step_um=DZ, **OPTICS, integrate_pixel=integrate
        )
        assert _ncc(ours, gt) > ncc_min
        assert _lateral_fwhm(ours[4], PIXEL) == pytest.approx(gt_lateral, rel=lateral_rtol)
        assert _axial_fwhm(ours, DZ) == pytest.approx(gt_axial, rel=0.035)


@pytest.mark.parametrize("vectorial", [False, True])
@pytest.mark.parametrize("shape", [(9, 33, 32), (8, 32, 33)])
def test_psf_normalized_centred_and_symmetric_in_z(shape, vectorial):
    psf = widefield_psf(shape, pixel_size_um=PIXEL, z_step_um=DZ, **OPTICS, vectorial=vectorial)
    nz, ny, nx = shape
    assert psf.shape == shape and psf.dtype == np.float64
    assert psf.sum() == pytest.approx(1.0, abs=1e-12)
    assert psf.min() >= 0
    assert np.unravel_index(np.argmax(psf), shape) == (nz // 2, ny // 2, nx // 2)
    # No aberration: the plane at +z is the plane at -z.
    for j in range(1, (nz - 1) // 2 + 1):
        np.testing.assert_allclose(psf[nz // 2 + j], psf[nz // 2 - j], rtol=0, atol=1e-12)
    # Rotational symmetry of the focal plane: x and y profiles agree where both exist.
    c = min(ny, nx) // 2
    row, col = psf[nz // 2, ny // 2, nx // 2 - c + 1 :], psf[nz // 2, ny // 2 - c + 1 :, nx // 2]
    np.testing.assert_allclose(row[: 2 * c - 1], col[: 2 * c - 1], rtol=1e-9, atol=1e-15)


def test_psf_matches_the_debye_integral_by_quadrature():
    # The FFT on a grid with a margin against a Hankel-transform quadrature of the same
    # integral: within 2e-3 of the peak everywhere (the margin's wrapped tails). Without the
    # margin (periodic) the error is several percent. Measured: 5e-4 and 3 %.
    shape = (5, 40, 40)
    reference = _debye_quadrature(shape, PIXEL, 0.2)
    reference /= reference.sum()
    ours = widefield_psf(shape, pixel_size_um=PIXEL, z_step_um=0.2, **OPTICS)
    assert np.abs(ours - reference).max() < 2e-3 * reference.max()
    wrapped = widefield_psf(shape, pixel_size_um=PIXEL, z_step_um=0.2, **OPTICS, periodic=True)
    assert np.abs(wrapped - reference).max() > 0.01 * reference.max()


def test_focal_plane_without_apodization_is_the_airy_pattern():
    # A pupil uniform in lateral frequency: the in-focus field is the 2D Fourier transform of
    # a disc, I(r) = (2 J1(v) / v)^2 with v = 2 pi NA r / lambda, whatever the NA.
    shape, pixel = (1, 41, 41), 0.02
    psf = widefield_psf(shape, pixel_size_um=pixel, z_step_um=DZ, **OPTICS, aplanatic=False)[0]
    yy, xx = np.meshgrid(*(2 * [(np.arange(41) - 20) * pixel]), indexing="ij")
    v = 2 * np.pi * NA * np.hypot(yy, xx) / WL_EM
    airy = np.where(v > 0, (2 * j1(v) / np.where(v > 0, v, 1)) ** 2, 1.0)
    np.testing.assert_allclose(psf / psf.max(), airy, atol=2e-3)
    # FWHM of the Airy pattern: 0.5145 lambda / NA.
    assert _fwhm(psf[20], pixel) == pytest.approx(0.5145 * WL_EM / NA, rel=0.01)


def test_fwhm_near_the_high_na_formulas():
    # Lateral: 0.51 lambda / NA = 188 nm; the aplanatic factor weights the pupil's rim and
    # narrows the focus to 182 nm (-2.8 %). Axial, widefield fluorescence at high NA:
    # 0.88 lambda / (n - sqrt(n^2 - NA^2)) = 484 nm; we get 494 nm (+2 %); the paraxial
    # 2 n lambda / NA^2 = 796 nm is far off at NA 1.4.
    lateral = widefield_psf((1, 41, 41), pixel_size_um=0.02, z_step_um=DZ, **OPTICS)[0, 20]
    assert _fwhm(lateral, 0.02) == pytest.approx(0.51 * WL_EM / NA, rel=0.04)
    assert _fwhm(lateral, 0.02) < 0.5145 * WL_EM / NA
    axial = widefield_psf((81, 5, 5), pixel_size_um=PIXEL, z_step_um=0.02, **OPTICS)[:, 2, 2]
    formula = 0.88 * WL_EM / (N_IMM - np.sqrt(N_IMM**2 - NA**2))
    assert _fwhm(axial, 0.02) == pytest.approx(formula, rel=0.04)
    assert _fwhm(axial, 0.02) < 0.7 * 2 * N_IMM * WL_EM / NA**2


def test_vectorial_model_widens_the_psf():
    # Freely rotating dipoles at NA 1.4: the axial dipoles' ring widens the focus, 182 ->
    # 208 nm laterally (+14 %), the axial FWHM by about 2 %.
    kwargs = dict(pixel_size_um=0.02, z_step_um=DZ, **OPTICS)
    scalar = widefield_psf((1, 41, 41), **kwargs)[0, 20]
    vector = widefield_psf((1, 41, 41), **kwargs, vectorial=True)[0, 20]
    ratio = _fwhm(vector, 0.02) / _fwhm(scalar, 0.02)
    assert 1.08 < ratio < 1.2


def test_coarse_pixels_are_point_samples_of_the_fine_psf():
    # 0.2 µm pixels cannot hold the pupil (NA / lambda > 1 / (2 * 0.2)): the PSF is computed on
    # a finer grid. It must be the 0.05 µm PSF sampled at every fourth pixel.
    kwargs = dict(z_step_um=DZ, **OPTICS)
    coarse = widefield_psf((3, 16, 16), pixel_size_um=0.2, **kwargs)
    fine = widefield_psf((3, 64, 64), pixel_size_um=0.05, **kwargs)[:, ::4, ::4]
    np.testing.assert_allclose(coarse / coarse[1, 8, 8], fine / fine[1, 8, 8], atol=1e-6)
    # The pixel integration of a coarse pixel is the fine PSF's mean over it: Simpson's rule
    # over 9 x 9 samples of 0.025 µm spanning the 0.2 µm pixel (3e-5 of the peak off; 2e-6
    # with 17 x 17).
    box = widefield_psf((3, 16, 16), pixel_size_um=0.2, **kwargs, integrate_pixel=True)
    fine = widefield_psf((3, 128, 128), pixel_size_um=0.025, **kwargs)
    weights = np.array([1, 4, 2, 4, 2, 4, 2, 4, 1]) / 24
    centres = 64 + (np.arange(1, 16) - 8) * 8  # coarse pixels 1..15 on the fine grid
    window = centres[:, None] + np.arange(-4, 5)  # (15, 9) fine indices
    mean = np.einsum("zabcd,b,d->zac", fine[:, window][:, :, :, window], weights, weights)
    np.testing.assert_allclose(box[:, 1:, 1:] / box[1, 8, 8], mean / mean[1, 7, 7], atol=1e-4)


@pytest.mark.parametrize(
    "field, value",
    [("na", 1.6), ("na", -1), ("wavelength_um", 0), ("n_immersion", float("nan"))],
)
def test_psf_rejects_bad_optics(field, value):
    kwargs = dict(pixel_size_um=PIXEL, z_step_um=DZ, **OPTICS)
    kwargs[field] = value
    with pytest.raises(ValueError, match=field):
        widefield_psf((3, 8, 8), **kwargs)
    with pytest.raises(ValueError, match="shape"):
        widefield_psf((8, 8), pixel_size_um=PIXEL, z_step_um=DZ, **OPTICS)


# --- OTF support and cutoffs --------------------------------------------------------------


def test_cutoff_values_and_limits():
    rho = NA / WL_EM
    assert lateral_cutoff(na=NA, wavelength_um=WL_EM) == pytest.approx(2 * rho)
    top = max_axial_frequency(**OPTICS)
    assert top == pytest.approx((N_IMM - np.sqrt(N_IMM**2 - NA**2)) / WL_EM)
    kr = np.linspace(0, 2 * rho, 2001)
    kz_max = axial_cutoff(kr, **OPTICS)
    assert kz_max[0] == pytest.approx(0, abs=1e-12)  # the missing cone
    assert kz_max[-1] == pytest.approx(0, abs=1e-9)  # the lateral cutoff
    assert kz_max.max() == pytest.approx(top, rel=1e-12)
    assert kr[np.argmax(kz_max)] == pytest.approx(rho, abs=2 * rho / 2000)
    assert np.isnan(axial_cutoff(2.01 * rho, **OPTICS))
    # Paraxial limit (small NA): kz_max = kr (2 rho - kr) / (2 K).
    small = dict(na=0.05, n_immersion=1.0, wavelength_um=0.5)
    kr = np.linspace(0, 0.2, 9)
    np.testing.assert_allclose(axial_cutoff(kr, **small), kr * (0.2 - kr) / 4, rtol=2e-3)
    # The original's axial cutoff, (1 - cos(NA / n)) / lambda, misses this by a factor 2.3.
    assert top / ((1 - np.cos(NA / N_IMM)) / WL_EM) > 2


def test_axial_cutoff_is_the_extent_of_the_cap_autocorrelation():
    # Brute force: the difference set of two points of the pupil cap (|k3| = K, lateral
    # radius <= rho), maximized over a dense sampling of the lateral disc.
    rho, k = NA / WL_EM, N_IMM / WL_EM
    g = np.linspace(-rho, rho, 401)
    uy, ux = np.meshgrid(g, g, indexing="ij")
    disc = uy**2 + ux**2 <= rho**2
    uy, ux = uy[disc], ux[disc]
    w = np.sqrt(k**2 - uy**2 - ux**2)
    for kr in (0.3, 1.0, rho, 3.5, 5.0):
        qx = ux + kr  # the second point: u + q with q = (0, kr)
        ok = uy**2 + qx**2 <= rho**2
        extent = (np.sqrt(k**2 - uy[ok] ** 2 - qx[ok] ** 2) - w[ok]).max()
        assert axial_cutoff(kr, **OPTICS) == pytest.approx(extent, rel=5e-3, abs=2e-3)


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    """Periodic dilation by a (2 steps + 1)^3 cube (the spectrum's grid is periodic)."""
    out = mask.copy()
    for dz in range(-steps, steps + 1):
        for dy in range(-steps, steps + 1):
            for dx in range(-steps, steps + 1):
                out |= np.roll(mask, (dz, dy, dx), axis=(0, 1, 2))
    return out


def test_otf_from_the_psf_lives_on_the_support():
    # The 3D OTF of a computed PSF (64 planes over 6.4 µm, Hann-windowed in z against the
    # truncation): outside the support, grown by one voxel, below 0.3 % of DC (measured 0.15 %,
    # in the missing cone); inside, shrunk by one voxel, above 0.6 % (measured 0.97 %, near the
    # lateral cutoff).
    shape, dz = (64, 64, 64), 0.1
    psf = widefield_psf(shape, pixel_size_um=PIXEL, z_step_um=dz, **OPTICS)
    window = np.hanning(shape[0] + 2)[1:-1, None, None]
    otf = np.abs(np.fft.fftn(np.fft.ifftshift(psf * window)))
    otf /= otf[0, 0, 0]
    support = otf_support(shape, pixel_size_um=PIXEL, z_step_um=dz, **OPTICS)
    assert otf[~_dilate(support, 1)].max() < 3e-3
    assert otf[~_dilate(~support, 1)].min() > 6e-3
    # The original's axial cutoff would cut away most of the measured OTF.
    kz = np.abs(np.fft.fftfreq(shape[0], dz))[:, None, None]
    wrong = np.broadcast_to(kz <= (1 - np.cos(NA / N_IMM)) / WL_EM, shape)
    assert otf[~_dilate(wrong, 1)].max() > 0.05


def test_band_one_support_is_shifted_by_kz0(check):
    kz0 = float(check["gt_kz0"])
    shape, dz = (64, 64, 64), 0.1
    bands = computed_band_otfs(
        shape,
        pixel_size_um=PIXEL,
        z_step_um=dz,
        na=NA,
        n_immersion=N_IMM,
        wavelength_em_um=WL_EM,
        kz0=kz0,
    )
    assert bands.shape == (3, *shape) and bands[0, 0, 0, 0] == pytest.approx(1)
    support = otf_support(shape, pixel_size_um=PIXEL, z_step_um=dz, **OPTICS, kz0=kz0)
    band = np.abs(bands[1])
    # Truncation in z (no window here) leaks along kz; two voxels of margin hold it (0.8 % of
    # the band's peak outside), while the unshifted support misses 29 % of it.
    assert band[~_dilate(support, 2)].max() < 0.02 * band.max()
    widefield = otf_support(shape, pixel_size_um=PIXEL, z_step_um=dz, **OPTICS)
    assert band[~_dilate(widefield, 2)].max() > 0.1 * band.max()


def test_otf_support_includes_aliases_on_coarse_grids():
    # z step 0.5 µm: Nyquist 1 cycle/µm, below the OTF's axial reach 1.82 (+ kz0). The coarse
    # grid's mask is the fine grid's (z step 0.5 / 3) folded onto it.
    coarse_shape, fine_shape, dz = (10, 16, 16), (30, 16, 16), 0.5
    for kz0 in (0.0, 1.1):
        coarse = otf_support(coarse_shape, pixel_size_um=PIXEL, z_step_um=dz, **OPTICS, kz0=kz0)
        fine = otf_support(fine_shape, pixel_size_um=PIXEL, z_step_um=dz / 3, **OPTICS, kz0=kz0)
        signed = np.rint(np.fft.fftfreq(30, dz / 3) * 10 * dz).astype(int)  # in coarse steps
        folded = np.zeros(coarse_shape, bool)
        for j in range(30):
            folded[signed[j] % 10] |= fine[j]
        np.testing.assert_array_equal(coarse, folded)
    # Some of the shifted band's support arrives only through an alias: the fine mask at the
    # coarse grid's own frequencies lacks it.
    own = fine[np.rint(np.fft.fftfreq(10, dz) * 10 * dz).astype(int) % 30]
    assert (coarse & ~own).sum() > 0


def test_kz0_from_the_pattern_geometry_matches_the_convention_file(check):
    # kz0 = n / lambda_ex - sqrt((n / lambda_ex)^2 - |k0|^2) for each orientation's k0.
    k0 = np.linalg.norm(check["gt_k0"], axis=-1)
    kz0 = kz0_three_beam(k0, n_immersion=N_IMM, wavelength_ex_um=WL_EX)
    np.testing.assert_allclose(kz0, float(check["gt_kz0"]), rtol=1e-6)
    assert float(kz0_three_beam(0.0, n_immersion=N_IMM, wavelength_ex_um=WL_EX)) == 0
    # Side beams at the rim of a 1.4 NA illumination: kz0 is the widefield OTF's top.
    rim = kz0_three_beam(NA / WL_EX, n_immersion=N_IMM, wavelength_ex_um=WL_EX)
    assert rim == pytest.approx(max_axial_frequency(na=NA, n_immersion=N_IMM, wavelength_um=WL_EX))
    with pytest.raises(ValueError, match="k0"):
        kz0_three_beam(3.2, n_immersion=N_IMM, wavelength_ex_um=WL_EX)


# --- measured OTFs in makeotf's layout ----------------------------------------------------


def _radial_from_check(check) -> tuple[np.ndarray, RadialOTF]:
    psf = check["gt_psf"].astype(np.float64)
    bands = band_otfs_from_psf(psf, kz0=float(check["gt_kz0"]), z_step_um=DZ)
    return bands, radial_average(bands, pixel_size_um=PIXEL, z_step_um=DZ)


def test_tiff_layout_is_makeotfs(check, tmp_path):
    # radialft.cpp's outputdata: a CImg (width 2 nz, height nx/2 + 1, depth norders) saved as
    # TIFF: one float32 page per order, rows kr, columns (re, im) interleaved along kz.
    _, radial = _radial_from_check(check)
    assert radial.values.shape == (3, 33, 8)
    assert radial.dkr == pytest.approx(1 / (64 * PIXEL))
    assert radial.dkz == pytest.approx(1 / (8 * DZ))
    path = tmp_path / "otf.tif"
    save_radial_otf(path, radial)
    with tifffile.TiffFile(path) as tif:
        pages = [page.asarray() for page in tif.pages]
    assert len(pages) == 3
    assert all(p.shape == (33, 16) and p.dtype == np.float32 for p in pages)
    np.testing.assert_array_equal(pages[1][5, 6], np.float32(radial.values[1, 5, 3].real))
    np.testing.assert_array_equal(pages[1][5, 7], np.float32(radial.values[1, 5, 3].imag))
    # radialft's Hermitian symmetry in kz and rescale's order-0 DC of 1.
    np.testing.assert_allclose(radial.values[:, :, 1:], np.conj(radial.values[:, :, :0:-1]))
    assert radial.values[0, 0, 0] == pytest.approx(1)
    loaded = load_radial_otf(path, pixel_size_um=PIXEL, z_step_um=DZ)
    np.testing.assert_allclose(loaded.values, radial.values, rtol=1e-6, atol=1e-7)
    assert loaded.dkr == pytest.approx(radial.dkr) and loaded.dkz == pytest.approx(radial.dkz)
    with pytest.raises(ValueError, match="pixel_size_um"):
        load_radial_otf(path, z_step_um=DZ)


def test_mrc_layout_is_makeotfs(tmp_path):
    # radialft.cpp's MRC branch: nx = nz_psf (kz), ny = nx_psf/2 + 1 (kr), nz = norders,
    # mode 4 (complex), xlen = dkz, ylen = dkr (bytes 40 and 44), sections = orders.
    rng = np.random.default_rng(0)
    values = (rng.normal(size=(3, 17, 10)) + 1j * rng.normal(size=(3, 17, 10))).astype("c8")
    header = bytearray(1024)
    header[0:16] = struct.pack("<4i", 10, 17, 3, 4)
    header[40:48] = struct.pack("<2f", 1 / (10 * 0.1), 1 / (32 * 0.1))
    path = tmp_path / "otf.otf"
    path.write_bytes(bytes(header) + values.astype("<c8").tobytes())
    loaded = load_radial_otf(path)
    np.testing.assert_array_equal(loaded.values, values)
    assert loaded.dkz == pytest.approx(1.0) and loaded.dkr == pytest.approx(1 / 3.2)
    assert load_radial_otf(path, pixel_size_um=0.1, z_step_um=0.1).n_kr == 17
    with pytest.raises(ValueError, match="z_step_um"):
        load_radial_otf(path, z_step_um=0.125)


def test_expansion_returns_the_table_at_its_own_samples(check):
    _, radial = _radial_from_check(check)
    grid = expand_radial_otf(radial, (8, 64, 64), pixel_size_um=PIXEL, z_step_um=DZ)
    # On the kx axis (ky = 0) the grid's frequencies are the table's: i dkr, j dkz.
    np.testing.assert_allclose(grid[:, :, 0, :33].transpose(0, 2, 1), radial.values, atol=1e-12)
    # A radially symmetric table gives a radially symmetric grid: (ky, kx) and (kx, ky) agree.
    np.testing.assert_allclose(grid, grid.transpose(0, 1, 3, 2), atol=1e-12)


def test_expansion_is_zero_beyond_the_measured_range_not_clamped():
    # A table that is 1 everywhere, expanded onto a grid with half the pixel and half the z
    # step (a zoom-2 grid): inside the measured range 1, outside exactly 0. The original's
    # clamped indices would give 1 on the whole grid.
    radial = RadialOTF(np.ones((1, 17, 8), complex), dkr=1 / (32 * 0.1), dkz=1 / (8 * 0.2))
    grid = expand_radial_otf(radial, (16, 64, 64), pixel_size_um=0.05, z_step_um=0.1)[0]
    ky, kx = np.meshgrid(*(2 * [np.fft.fftfreq(64, 0.05)]), indexing="ij")
    kz = np.fft.fftfreq(16, 0.1)[:, None, None]
    measured = (np.hypot(ky, kx) <= 16 * radial.dkr + 1e-9) & (np.abs(kz) <= 4 * radial.dkz + 1e-9)
    np.testing.assert_allclose(grid[measured], 1, atol=1e-12)
    np.testing.assert_array_equal(grid[~measured], 0)
    assert (~measured).sum() > measured.sum()


def test_radial_otf_round_trip_reproduces_the_direct_otf(check, tmp_path):
    # gt_psf -> band OTFs -> radial average -> makeotf TIFF -> load -> expand, against the
    # band OTFs computed directly: relative L2 error 2.1 % (the rings' rint binning near the
    # missing cone), median relative error 2 % where the OTF exceeds 1 % of its peak.
    bands, radial = _radial_from_check(check)
    path = tmp_path / "otf.tif"
    save_radial_otf(path, radial)
    loaded = load_radial_otf(path, pixel_size_um=PIXEL, z_step_um=DZ)
    grid = expand_radial_otf(loaded, bands.shape[1:], pixel_size_um=PIXEL, z_step_um=DZ)
    for direct, expanded in zip(bands, grid, strict=True):
        assert np.linalg.norm(expanded - direct) < 0.03 * np.linalg.norm(direct)
        strong = np.abs(direct) > 0.01 * np.abs(direct).max()
        relative = np.abs(expanded - direct)[strong] / np.abs(direct)[strong]
        assert np.median(relative) < 0.03
    # Onto a zoom-2 grid (the reconstruction's): the same OTF where measured, zero beyond.
    zoomed = expand_radial_otf(loaded, (8, 128, 128), pixel_size_um=PIXEL / 2, z_step_um=DZ)
    # Indices below 32 are the same frequencies m / (64 * 80 nm) on both grids.
    np.testing.assert_allclose(zoomed[..., :32, :32], grid[..., :32, :32], atol=1e-12)
    ky, kx = np.meshgrid(*(2 * [np.fft.fftfreq(128, PIXEL / 2)]), indexing="ij")
    assert np.all(zoomed[:, :, np.hypot(ky, kx) > 32 * radial.dkr + 1e-9] == 0)
