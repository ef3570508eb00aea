"""Tests for nstm.systems.dpc.abbe: exact identities and agreement with the weak-object model."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from nstm.optics import pupil
from nstm.systems.dpc.abbe import abbe_dpc_images
from nstm.systems.dpc.optics import apply_transfer_functions, dpc_sources, transfer_functions

OPTICS = dict(wavelength_um=0.525, pixel_size_um=0.454)
NA = 0.25


def dpc_setup(shape, na_illum=NA):
    return dpc_sources(shape, na_illum=na_illum, **OPTICS), pupil(shape, na=NA, **OPTICS)


def smooth_random(shape, seed, sigma=2.0):
    """Periodic smooth random map with max |value| = 1."""
    field = gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma, mode="wrap")
    return field / np.abs(field).max()


@pytest.mark.parametrize("shape", [(48, 48), (37, 52)])
@pytest.mark.parametrize("precision, atol", [("single", 1e-5), ("double", 1e-12)])
def test_clear_sample_gives_zero_frames(shape, precision, atol):
    sources, pup = dpc_setup(shape)
    frames = abbe_dpc_images(np.ones(shape), sources, pup, precision=precision)
    assert frames.shape == (4,) + shape and frames.dtype == np.float32
    np.testing.assert_allclose(frames, 0.0, atol=atol)


def test_all_pass_pupil_images_squared_modulus():
    # With a pupil that passes every grid frequency each source point images |o|^2, whatever
    # the source: a pure-phase object is invisible and absorption gives exp(2 mu) - 1. This
    # holds for strong objects too (no linearization).
    shape = (24, 30)
    sources, _ = dpc_setup(shape)
    mu = 0.3 * smooth_random(shape, 0)
    phi = 2.5 * smooth_random(shape, 1)
    everything = np.ones(shape)
    pure_phase = abbe_dpc_images(np.exp(1j * phi), sources, everything, precision="double")
    np.testing.assert_allclose(pure_phase, 0.0, atol=1e-6)
    frames = abbe_dpc_images(np.exp(mu + 1j * phi), sources, everything, precision="double")
    np.testing.assert_allclose(frames, np.broadcast_to(np.exp(2 * mu) - 1, frames.shape), atol=1e-6)


def test_absorption_only_sample_looks_the_same_from_opposite_sides():
    # For a real transmittance |u_{-s}| = |u_s| (symmetric pupil), so mirrored sources give
    # identical images even for a strong object: DPC differences see phase only.
    shape = (40, 44)
    sources, pup = dpc_setup(shape)
    frames = abbe_dpc_images(
        np.exp(0.5 * smooth_random(shape, 2)), sources, pup, precision="double"
    )
    np.testing.assert_allclose(frames[0], frames[1], atol=1e-6)
    np.testing.assert_allclose(frames[2], frames[3], atol=1e-6)
    assert np.abs(frames).max() > 0.1


def test_symmetric_source_shows_weak_phase_only_at_second_order():
    # A full disc source is symmetric, so Hp = 0: a weak phase object's contrast is O(phi^2).
    shape = (40, 48)
    sources, pup = dpc_setup(shape)
    full_disc = sources[:1] + sources[1:2]
    phi = smooth_random(shape, 9)
    contrast = [
        np.abs(abbe_dpc_images(np.exp(1j * a * phi), full_disc, pup, precision="double")).max()
        for a in (1e-1, 1e-2)
    ]
    assert contrast[0] < 0.005  # a half disc gives ~0.04 here (first order)
    assert 80 < contrast[0] / contrast[1] < 120  # quadratic in the amplitude


@pytest.mark.parametrize("convention, direction", [("led", -1), ("wavevector", +1)])
def test_one_source_point_lights_the_sample_with_its_documented_plane_wave(convention, direction):
    # An LED at +u in the map lights the sample with exp(-i 2 pi u . r) (the original NSTM's
    # convention); a "wavevector" map's point is exp(+i 2 pi u . r). The image is computed here
    # from the tilted wave in real space, independently of the simulator's spectral shifts.
    shape = (30, 42)
    _, pup = dpc_setup(shape)
    source = np.zeros((1,) + shape)
    source[0, 2, -3] = 1.0  # signed index (2, -3), inside the pupil
    assert pup[2, -3] == 1.0
    sample = np.exp(0.2 * smooth_random(shape, 11) + 1j * smooth_random(shape, 12))
    fy, fx = np.fft.fftfreq(shape[0])[2], np.fft.fftfreq(shape[1])[-3]  # cycles per pixel
    y, x = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    wave = np.exp(direction * 2j * np.pi * (fy * y + fx * x))
    field = np.fft.ifft2(pup * np.fft.fft2(sample * wave))
    expected = np.abs(field) ** 2 / pup[2, -3] ** 2 - 1.0
    frames = abbe_dpc_images(sample, source, pup, precision="double", source_convention=convention)
    np.testing.assert_allclose(frames[0], expected, atol=1e-6)
    other = "wavevector" if convention == "led" else "led"
    mirrored = abbe_dpc_images(sample, source, pup, precision="double", source_convention=other)
    assert np.abs(mirrored[0] - expected).max() > 0.05  # the two conventions differ here


def test_shifting_the_sample_shifts_the_images():
    shape = (36, 50)
    sources, pup = dpc_setup(shape)
    sample = np.exp(0.2 * smooth_random(shape, 3) + 1j * smooth_random(shape, 4))
    frames = abbe_dpc_images(sample, sources, pup)
    shifted = abbe_dpc_images(np.roll(sample, (5, -7), axis=(0, 1)), sources, pup)
    np.testing.assert_allclose(shifted, np.roll(frames, (5, -7), axis=(1, 2)), atol=1e-5)


def test_moving_sample_uses_one_transmittance_per_frame():
    shape = (32, 40)
    sources, pup = dpc_setup(shape)
    stack = np.exp(1j * 0.5 * np.stack([smooth_random(shape, 10 + j) for j in range(4)]))
    frames = abbe_dpc_images(stack, sources, pup, precision="double")
    for j in range(4):
        single = abbe_dpc_images(stack[j], sources[j : j + 1], pup, precision="double")
        np.testing.assert_allclose(frames[j], single[0], atol=1e-6)
    # A stack of identical frames takes the per-frame path and matches the static one.
    static = abbe_dpc_images(stack[0], sources, pup, precision="double")
    repeated = abbe_dpc_images(np.repeat(stack[:1], 4, axis=0), sources, pup, precision="double")
    np.testing.assert_allclose(repeated, static, atol=1e-6)


def test_batch_size_does_not_change_the_result():
    shape = (30, 34)
    sources, pup = dpc_setup(shape)
    sample = np.exp(0.1 * smooth_random(shape, 5) + 1j * smooth_random(shape, 6))
    reference = abbe_dpc_images(sample, sources, pup, precision="double")
    np.testing.assert_allclose(
        abbe_dpc_images(sample, sources, pup, precision="double", batch_size=7),
        reference,
        atol=1e-7,
    )


@pytest.mark.parametrize("shape", [(64, 64), (45, 70)])
def test_weak_object_agrees_with_linear_model(shape):
    """The linearization error is O(amplitude); the sign of Hp is the one that passes."""
    sources, pup = dpc_setup(shape)
    absorption_tf, phase_tf = transfer_functions(sources, pup)
    mu0, phi0 = smooth_random(shape, 7), smooth_random(shape, 8)

    def relative_error(amplitude, phase_sign=1.0):
        mu, phi = amplitude * mu0, amplitude * phi0
        exact = abbe_dpc_images(np.exp(mu + 1j * phi), sources, pup, precision="double")
        linear = apply_transfer_functions(mu, phase_sign * phi, absorption_tf, phase_tf)
        return np.linalg.norm(exact - linear) / np.linalg.norm(linear)

    coarse, fine = relative_error(1e-2), relative_error(1e-3)
    assert coarse < 0.02  # 1% of a 0.01 rad object
    assert 7 < coarse / fine < 13  # error shrinks linearly with the amplitude
    assert relative_error(1e-3, phase_sign=-1.0) > 0.1  # the opposite Hp sign is plainly wrong


def test_rejects_bad_inputs():
    shape = (16, 20)
    sources, pup = dpc_setup(shape)
    sample = np.ones(shape, dtype=complex)
    with pytest.raises(ValueError, match=r"transmittance: expected shape \(H, W\) = \(16, 20\)"):
        abbe_dpc_images(sample[:, :-1], sources, pup)
    with pytest.raises(ValueError, match=r"transmittance: .* \(frames, H, W\) = \(4, 16, 20\)"):
        abbe_dpc_images(np.ones((3,) + shape), sources, pup)
    with pytest.raises(ValueError, match=r"pupil: expected shape \(H, W\) = \(16, 20\)"):
        abbe_dpc_images(sample, sources, pup.T)
    with pytest.raises(ValueError, match="sources: expected a 3D array"):
        abbe_dpc_images(sample, sources[0], pup)
    with pytest.raises(ValueError, match="zero background"):
        abbe_dpc_images(sample, np.fft.fftshift(sources, axes=(-2, -1)), pup)
    with pytest.raises(ValueError, match="finite"):
        abbe_dpc_images(np.full(shape, np.nan), sources, pup)
    with pytest.raises(ValueError, match="precision"):
        abbe_dpc_images(sample, sources, pup, precision="half")
    with pytest.raises(ValueError, match="batch_size"):
        abbe_dpc_images(sample, sources, pup, batch_size=0)
    with pytest.raises(ValueError, match="source_convention"):
        abbe_dpc_images(sample, sources, pup, source_convention="centred")
