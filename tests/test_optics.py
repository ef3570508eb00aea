"""Tests for nstm.fourier, nstm.optics and nstm.systems.dpc.optics: grids, pupil, DPC sources
and weak-object transfer functions."""

import numpy as np
import pytest

from nstm.fourier import frequency_grid
from nstm.optics import pupil
from nstm.systems.dpc.optics import (
    apply_transfer_functions,
    dpc_sources,
    half_disc_source,
    illumination_spectrum,
    transfer_functions,
)

WAVELENGTH_UM = 0.525
NA = 0.25
PIXEL_UM = 0.454
OPTICS = dict(wavelength_um=WAVELENGTH_UM, pixel_size_um=PIXEL_UM)
SHAPES = [(63, 80), (64, 64), (31, 97), (16, 20)]
ANGLES = [0, 180, 90, 270, 30, 210, 45, 137.5]


def flip(array):
    """``array[..., -ky mod H, -kx mod W]``, the value at the negated frequency."""
    return np.roll(np.flip(array, axis=(-2, -1)), 1, axis=(-2, -1))


def dpc_transfer_functions(shape, angles=ANGLES, na_illum=NA):
    sources = dpc_sources(shape, na_illum=na_illum, angles_deg=angles, **OPTICS)
    return transfer_functions(sources, pupil(shape, na=NA, **OPTICS))


# --------------------------------------------------------------------------------------------
# grids, pupil, sources
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES + [(1, 5)])
def test_frequency_grid_is_unshifted_fftfreq(shape):
    fy, fx = frequency_grid(shape, PIXEL_UM)
    assert fy.shape == fx.shape == shape
    np.testing.assert_array_equal(fy[:, 0], np.fft.fftfreq(shape[0], d=PIXEL_UM))
    np.testing.assert_array_equal(fx[0, :], np.fft.fftfreq(shape[1], d=PIXEL_UM))
    assert np.all(fy == fy[:, :1]) and np.all(fx == fx[:1, :])


@pytest.mark.parametrize("shape", SHAPES)
def test_pupil_radius_in_pixels_matches_cutoff(shape):
    pup = pupil(shape, na=NA, **OPTICS)
    assert pup.dtype == np.float32 and pup.shape == shape
    assert set(np.unique(pup)) <= {0.0, 1.0}
    cutoff = NA / WAVELENGTH_UM  # cycles/µm
    for axis, n in enumerate(shape):
        spacing = 1.0 / (n * PIXEL_UM)
        line = pup[:, 0] if axis == 0 else pup[0, :]
        # Radius along each axis in pixels: floor(cutoff / spacing) on both sides of DC.
        radius_px = int(np.floor(cutoff / spacing))
        assert line[: radius_px + 1].all() and not line[radius_px + 1 : n - radius_px].any()
        assert line[n - radius_px :].all()
    # Area in pixels ~ pi r^2 / (dfy dfx); the discretized disc is within a few pixels.
    area = np.pi * cutoff**2 * (shape[0] * PIXEL_UM) * (shape[1] * PIXEL_UM)
    assert abs(pup.sum() - area) < 0.1 * area + 4


def test_pupil_warns_when_clipped_by_grid():
    with pytest.warns(UserWarning, match="Nyquist"):
        pupil((32, 32), wavelength_um=0.5, na=0.8, pixel_size_um=0.5)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("angle", [0, 30, 45, 90, 137.5, -60, 1000])
def test_opposite_half_discs_sum_exactly_to_full_disc(shape, angle):
    kwargs = dict(na_illum=0.2, **OPTICS)
    half = half_disc_source(shape, angle_deg=angle, **kwargs)
    opposite = half_disc_source(shape, angle_deg=angle + 180, **kwargs)
    disc = pupil(shape, na=0.2, **OPTICS)
    np.testing.assert_array_equal(half + opposite, disc)
    assert set(np.unique(half)) <= {0.0, 0.5, 1.0}


def test_half_disc_orientation_and_dividing_line():
    shape = (33, 40)
    fy, fx = frequency_grid(shape, PIXEL_UM)
    disc = pupil(shape, na=NA, **OPTICS) > 0
    right = half_disc_source(shape, angle_deg=0, na_illum=NA, **OPTICS)
    down = half_disc_source(shape, angle_deg=90, na_illum=NA, **OPTICS)
    # theta = 0 lights +fx, theta = 90 lights +fy; the line through DC gets 0.5.
    np.testing.assert_array_equal(right, np.where(fx > 0, 1.0, np.where(fx == 0, 0.5, 0.0)) * disc)
    np.testing.assert_array_equal(down, np.where(fy > 0, 1.0, np.where(fy == 0, 0.5, 0.0)) * disc)
    assert right[0, 0] == down[0, 0] == 0.5
    # Angles are periodic.
    np.testing.assert_array_equal(
        half_disc_source(shape, angle_deg=-90, na_illum=NA, **OPTICS),
        half_disc_source(shape, angle_deg=270, na_illum=NA, **OPTICS),
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_dpc_sources_shapes_and_symmetry(shape):
    sources = dpc_sources(shape, na_illum=NA, **OPTICS)
    assert sources.shape == (4,) + shape and sources.dtype == np.float32
    # Left/right and top/bottom pairs are mirror images through DC and carry equal weight.
    np.testing.assert_array_equal(sources[1], flip(sources[0]))
    np.testing.assert_array_equal(sources[3], flip(sources[2]))
    np.testing.assert_array_equal(sources[0] + sources[1], sources[2] + sources[3])


# --------------------------------------------------------------------------------------------
# transfer functions
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("na_illum", [NA, 0.15])
def test_transfer_function_identities(shape, na_illum):
    absorption_tf, phase_tf = dpc_transfer_functions(shape, na_illum=na_illum)
    assert absorption_tf.shape == phase_tf.shape == (len(ANGLES),) + shape
    assert absorption_tf.dtype == phase_tf.dtype == np.complex64
    np.testing.assert_array_equal(absorption_tf[:, 0, 0], 2.0)  # Hu(0) = 2 exactly
    np.testing.assert_array_equal(phase_tf[:, 0, 0], 0.0)
    np.testing.assert_array_equal(absorption_tf.imag, 0.0)  # real
    np.testing.assert_array_equal(phase_tf.real, 0.0)  # purely imaginary
    np.testing.assert_array_equal(absorption_tf, flip(absorption_tf))  # even
    np.testing.assert_array_equal(phase_tf, -flip(phase_tf))  # odd


def test_transfer_functions_vanish_outside_passband():
    shape = (63, 80)
    absorption_tf, phase_tf = dpc_transfer_functions(shape, na_illum=0.15)
    fy, fx = frequency_grid(shape, PIXEL_UM)
    # Exactly zero beyond (na + na_illum) / wavelength (plus half a pixel for the grid).
    outside = np.hypot(fy, fx) > (NA + 0.15) / WAVELENGTH_UM + 0.5 / (63 * PIXEL_UM)
    assert not np.any(absorption_tf[:, outside]) and not np.any(phase_tf[:, outside])


def test_opposite_sources_have_equal_absorption_and_opposite_phase_transfer():
    absorption_tf, phase_tf = dpc_transfer_functions((31, 97))
    np.testing.assert_allclose(absorption_tf[0], absorption_tf[1], atol=1e-6)
    np.testing.assert_allclose(phase_tf[0], -phase_tf[1], atol=1e-6)


def signed_indices(n):
    return np.fft.fftfreq(n, 1 / n).round().astype(int)


def brute_force_transfer_functions(waves, pupil_amplitude):
    """Direct sums over illuminating plane waves ``exp(+i 2 pi f . r)`` of weight ``waves``,
    with the pupil zero outside the sampled grid (any real pupil, even or not)."""
    n, height, width = waves.shape
    rows, cols = signed_indices(height), signed_indices(width)

    def pupil_at(ky, kx):  # signed indices, possibly beyond the grid
        inside = (ky >= rows.min()) & (ky <= rows.max()) & (kx >= cols.min()) & (kx <= cols.max())
        return np.where(inside, pupil_amplitude[ky % height, kx % width], 0.0)

    hu = np.zeros((n, height, width))
    hp = np.zeros((n, height, width), dtype=complex)
    vy, vx = np.meshgrid(rows, cols, indexing="ij")
    for j in range(n):
        background = np.sum(waves[j] * pupil_amplitude**2)
        for iy, ix in zip(*np.nonzero(waves[j]), strict=True):
            sy, sx = rows[iy], cols[ix]
            weight = waves[j, iy, ix] * pupil_amplitude[iy, ix]
            plus, minus = pupil_at(sy + vy, sx + vx), pupil_at(sy - vy, sx - vx)
            hu[j] += weight * (plus + minus) / background
            hp[j] += 1j * weight * (plus - minus) / background
    # Documented convention on the Nyquist bins of even axes: the average of +F and -F.
    return 0.5 * (hu + flip(hu)), 0.5 * (hp - flip(hp))


@pytest.mark.parametrize("shape", [(16, 20), (15, 21)])
@pytest.mark.parametrize("na", [NA, 0.45])  # 0.45 reaches close to the grid Nyquist frequency
def test_transfer_functions_match_brute_force(shape, na):
    rng = np.random.default_rng(0)
    pup = pupil(shape, na=na, wavelength_um=WAVELENGTH_UM, pixel_size_um=PIXEL_UM)
    pup = pup * rng.uniform(0.5, 1.0, shape)  # an apodized (non-binary, not even) pupil
    sources = np.stack(
        [
            half_disc_source(shape, angle_deg=30, na_illum=na, **OPTICS),
            rng.uniform(0, 1, shape) * (pup > 0),  # an arbitrary asymmetric source
        ]
    )
    # "wavevector" maps are the plane waves' weights; "led" maps light exp(-i 2 pi u . r).
    hu, hp = brute_force_transfer_functions(sources.astype(float), pup.astype(float))
    absorption_tf, phase_tf = transfer_functions(sources, pup, source_convention="wavevector")
    np.testing.assert_allclose(absorption_tf, hu, atol=1e-6)
    np.testing.assert_allclose(phase_tf, hp, atol=1e-6)
    hu, hp = brute_force_transfer_functions(flip(sources).astype(float), pup.astype(float))
    absorption_tf, phase_tf = transfer_functions(sources, pup)  # "led", the default
    np.testing.assert_allclose(absorption_tf, hu, atol=1e-6)
    np.testing.assert_allclose(phase_tf, hp, atol=1e-6)


def reference_transfer_functions(sources, pupil_amplitude):
    """The original implementation's formula (reference section 4.1), summed directly:
    ``C_j(u) = sum_k S_j(k+u) P(k+u) P(k)``, ``Hu = (C(u) + C(-u)) / C(0)``,
    ``Hp = i (C(u) - C(-u)) / C(0)``, without its 1/wavelength; frequencies beyond the grid
    hold nothing, and the Nyquist bins of even axes average +F and -F (our documented rule)."""
    n, height, width = sources.shape
    rows, cols = signed_indices(height), signed_indices(width)

    def at(array, ky, kx):  # array at signed indices, zero beyond the grid
        inside = (ky >= rows.min()) & (ky <= rows.max()) & (kx >= cols.min()) & (kx <= cols.max())
        return np.where(inside, array[..., ky % height, kx % width], 0.0)

    uy, ux = np.meshgrid(rows, cols, indexing="ij")
    hu = np.zeros((n, height, width))
    hp = np.zeros((n, height, width), dtype=complex)
    for j in range(n):
        correlation = {+1: np.zeros((height, width)), -1: np.zeros((height, width))}
        for iy, ix in zip(*np.nonzero(pupil_amplitude), strict=True):  # k
            ky, kx = rows[iy], cols[ix]
            for sign, c in correlation.items():  # C(sign * u)
                y, x = ky + sign * uy, kx + sign * ux
                c += at(sources[j], y, x) * at(pupil_amplitude, y, x) * pupil_amplitude[iy, ix]
        dc = correlation[1][0, 0]
        hu[j] = (correlation[1] + correlation[-1]) / dc
        hp[j] = 1j * (correlation[1] - correlation[-1]) / dc
    return 0.5 * (hu + flip(hu)), 0.5 * (hp - flip(hp))


@pytest.mark.parametrize("shape", [(24, 32), (27, 41)])  # even, and odd non-square
def test_transfer_functions_are_the_reference_formula(shape):
    pup = pupil(shape, na=NA, **OPTICS)
    point = np.zeros(shape, np.float32)
    point[3, -5] = 1.0  # one off-axis LED at signed index (3, -5), inside the pupil
    assert pup[3, -5] == 1.0
    sources = np.concatenate(
        [
            dpc_sources(shape, na_illum=NA, angles_deg=(0, 180, 90, 270, 30), **OPTICS),
            point[None],
        ]
    )
    absorption_tf, phase_tf = transfer_functions(sources, pup)
    hu, hp = reference_transfer_functions(sources.astype(float), pup.astype(float))
    np.testing.assert_allclose(absorption_tf, hu, atol=1e-6)
    np.testing.assert_allclose(phase_tf, hp, atol=1e-6)
    assert np.abs(phase_tf).max() > 0.5  # not a comparison of zeros
    # The other convention reads every map mirrored through DC: the phase TFs change sign.
    other_absorption, other_phase = transfer_functions(sources, pup, source_convention="wavevector")
    np.testing.assert_allclose(other_absorption, absorption_tf, atol=1e-6)
    np.testing.assert_allclose(other_phase, -phase_tf, atol=1e-6)


def test_led_convention_is_the_wavevector_convention_of_the_mirrored_map():
    shape = (31, 44)
    sources = dpc_sources(shape, na_illum=NA, angles_deg=(0, 90, 30), **OPTICS)
    np.testing.assert_array_equal(illumination_spectrum(sources), flip(sources))
    np.testing.assert_array_equal(illumination_spectrum(sources, "wavevector"), sources)
    pup = pupil(shape, na=NA, **OPTICS)
    for led, wave in zip(
        transfer_functions(sources, pup),
        transfer_functions(flip(sources), pup, source_convention="wavevector"),
        strict=True,
    ):
        np.testing.assert_array_equal(led, wave)


@pytest.mark.parametrize("shape", [(63, 80), (31, 97)])
def test_apply_transfer_functions_is_the_fourier_linear_model(shape):
    rng = np.random.default_rng(1)
    absorption_tf, phase_tf = dpc_transfer_functions(shape)
    mu, phi = rng.standard_normal((2,) + shape)
    frames = apply_transfer_functions(mu, phi, absorption_tf, phase_tf)
    assert frames.shape == (len(ANGLES),) + shape and frames.dtype == np.float64
    expected = np.fft.ifft2(absorption_tf * np.fft.fft2(mu) + phase_tf * np.fft.fft2(phi)).real
    np.testing.assert_allclose(frames, expected, atol=1e-5)
    # A constant absorption mu gives 2 mu in every frame; a constant phase is invisible.
    np.testing.assert_allclose(
        apply_transfer_functions(np.full(shape, 0.1), np.ones(shape), absorption_tf, phase_tf),
        0.2,
        atol=1e-6,
    )
    # A per-frame stack equals frame-by-frame application.
    stack = rng.standard_normal((len(ANGLES),) + shape).astype(np.float32)
    per_frame = apply_transfer_functions(stack, phi, absorption_tf, phase_tf)
    assert per_frame.dtype == np.float64  # phi is float64
    for j in range(len(ANGLES)):
        single = apply_transfer_functions(
            stack[j], phi, absorption_tf[j : j + 1], phase_tf[j : j + 1]
        )
        np.testing.assert_allclose(per_frame[j], single[0], atol=1e-5)


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------
def test_transfer_functions_reject_bad_inputs():
    shape = (32, 40)
    sources = dpc_sources(shape, na_illum=NA, **OPTICS)
    pup = pupil(shape, na=NA, **OPTICS)
    with pytest.raises(ValueError, match=r"pupil: expected shape \(H, W\) = \(32, 40\)"):
        transfer_functions(sources, pup[:, :-1])
    with pytest.raises(ValueError, match=r"sources: expected a 3D array"):
        transfer_functions(sources[0], pup)
    with pytest.raises(ValueError, match="non-negative"):
        transfer_functions(-sources, pup)
    with pytest.raises(ValueError, match="finite"):
        transfer_functions(np.where(sources > 0, np.nan, 0.0), pup)
    # A centred (fftshifted) source lies outside the pupil of the unshifted grid.
    with pytest.raises(ValueError, match=r"sources: sources \[0, 1, 2, 3\] have zero background"):
        transfer_functions(np.fft.fftshift(sources, axes=(-2, -1)), pup)
    with pytest.raises(TypeError, match="real"):
        transfer_functions(sources, pup.astype(complex))
    with pytest.raises(ValueError, match=r"source_convention: expected one of \['led', "):
        transfer_functions(sources, pup, source_convention="centred")


def test_frequency_grid_3d_matches_fftfreq_per_axis():
    fz, fy, fx = frequency_grid((3, 4, 5), PIXEL_UM)
    assert fz.shape == fy.shape == fx.shape == (3, 4, 5)
    np.testing.assert_array_equal(fz[:, 0, 0], np.fft.fftfreq(3, PIXEL_UM))
    np.testing.assert_array_equal(fy[0, :, 0], np.fft.fftfreq(4, PIXEL_UM))
    np.testing.assert_array_equal(fx[0, 0, :], np.fft.fftfreq(5, PIXEL_UM))


def test_grid_functions_reject_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        frequency_grid((0, 4), PIXEL_UM)
    with pytest.raises(ValueError, match="shape"):
        frequency_grid((4, 4, 4, 4), PIXEL_UM)  # 1 to 3 axes
    with pytest.raises(ValueError, match="pixel_size_um"):
        frequency_grid((4, 4), -1.0)
    with pytest.raises(ValueError, match="wavelength_um"):
        pupil((8, 8), wavelength_um=0.0, na=NA, pixel_size_um=PIXEL_UM)
    with pytest.raises(ValueError, match="angle_deg"):
        half_disc_source((8, 8), angle_deg=np.nan, na_illum=NA, **OPTICS)
    with pytest.raises(ValueError, match="angles_deg"):
        dpc_sources((8, 8), na_illum=NA, angles_deg=(), **OPTICS)


def test_apply_transfer_functions_rejects_bad_shapes():
    absorption_tf, phase_tf = dpc_transfer_functions((16, 20), angles=(0, 180))
    with pytest.raises(ValueError, match=r"absorption: expected shape \(H, W\) = \(16, 20\)"):
        apply_transfer_functions(np.zeros((16, 21)), np.zeros((16, 20)), absorption_tf, phase_tf)
    with pytest.raises(ValueError, match="phase_tf"):
        apply_transfer_functions(
            np.zeros((16, 20)), np.zeros((16, 20)), absorption_tf, phase_tf[:1]
        )
