import numpy as np
import pytest

from nstm.simulation.noise import camera, read_noise, shot_noise


def test_mean_and_variance_follow_poisson():
    levels = np.array([-0.5, 0.0, 1.0], dtype=np.float32)  # intensities 0.5, 1, 2 (x I0)
    images = np.broadcast_to(levels[:, None, None], (3, 200, 200)).copy()
    photons = 400.0
    noisy = shot_noise(images, photons, np.random.default_rng(0))
    assert noisy.shape == images.shape and noisy.dtype == np.float32
    mean = noisy.mean(axis=(1, 2))
    var = noisy.var(axis=(1, 2))
    np.testing.assert_allclose(mean, levels, atol=3e-3)
    np.testing.assert_allclose(var, (1 + levels) / photons, rtol=0.05)


def test_seeded_and_noiseless():
    images = np.zeros((2, 8, 8))
    a = shot_noise(images, 50.0, np.random.default_rng(3))
    b = shot_noise(images, 50.0, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)  # the same seed draws the same noise ...
    # ... and it is noise: Poisson(50) / 50 - 1, exactly 0 with probability 0.056 ...
    assert np.mean(a != images) > 0.8
    c = shot_noise(images, 50.0, np.random.default_rng(4))
    assert np.mean(a != c) > 0.8  # ... which another seed draws differently (same: p ~ 0.04)
    for photons in (None, np.inf):
        clean = shot_noise(images, photons)
        np.testing.assert_array_equal(clean, images)
        assert clean is not images


def test_negative_intensity_raises():
    with pytest.raises(ValueError, match="1 \\+ img >= 0"):
        shot_noise(np.full((1, 4, 4), -1.5), 100.0, np.random.default_rng(0))


@pytest.mark.parametrize("photons", [0.0, -3.0, np.nan])
def test_bad_photons(photons):
    with pytest.raises(ValueError, match="photons_per_pixel"):
        shot_noise(np.zeros((1, 4, 4)), photons, np.random.default_rng(0))


# --- read noise and camera counts --------------------------------------------------------------
def test_read_noise_is_zero_mean_gaussian_of_the_given_sigma():
    signal = np.full((400, 400), 50.0, dtype=np.float32)
    noisy = read_noise(signal, 3.0, np.random.default_rng(1))
    assert noisy.shape == signal.shape and noisy.dtype == np.float32
    residual = noisy.astype(np.float64) - 50.0
    assert residual.mean() == pytest.approx(0.0, abs=0.03)  # standard error 3 / 400
    assert residual.std() == pytest.approx(3.0, rel=0.01)
    # Gaussian: the fraction within one sigma is erf(1 / sqrt(2)) = 0.6827.
    assert np.mean(np.abs(residual) < 3.0) == pytest.approx(0.6827, abs=0.005)
    np.testing.assert_array_equal(read_noise(signal, 3.0, 1), noisy)  # seeded
    clean = read_noise(signal, 0.0)
    np.testing.assert_array_equal(clean, signal)
    assert clean is not signal


@pytest.mark.parametrize("sigma", [-1.0, np.nan, np.inf])
def test_read_noise_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma_e: expected a finite value >= 0"):
        read_noise(np.zeros(4), sigma)


def test_camera_mean_and_variance_follow_theory():
    levels = np.array([0.0, 0.25, 1.0])  # relative intensities
    image = np.broadcast_to(levels[:, None, None], (3, 300, 300))
    photons, sigma, background, offset, gain = 400.0, 3.0, 20.0, 100.0, 2.0
    counts = camera(
        image, photons, sigma, background, np.random.default_rng(0), offset=offset, gain=gain
    )
    assert counts.shape == image.shape and counts.dtype == np.float32
    electrons = photons * levels + background
    mean = gain * electrons + offset
    var = gain**2 * (electrons + sigma**2)
    # Standard error of the mean sqrt(var / 9e4) <= 0.14 counts; of the variance ~0.5 %.
    np.testing.assert_allclose(counts.mean(axis=(1, 2)), mean, atol=0.6)
    np.testing.assert_allclose(counts.var(axis=(1, 2)), var, rtol=0.03)


def test_camera_without_light_or_read_noise_is_the_offset():
    counts = camera(np.zeros((8, 8)), 1000.0, rng=0, offset=100.0)
    np.testing.assert_array_equal(counts, 100.0)  # Poisson(0) = 0 exactly


def test_camera_poisson_only_counts_are_integers_with_fano_factor_one():
    counts = camera(np.full((500, 500), 0.5), 30.0, rng=3)
    np.testing.assert_array_equal(counts, np.round(counts))
    assert counts.var() / counts.mean() == pytest.approx(1.0, rel=0.02)


def test_camera_bit_depth_rounds_and_saturates():
    image = np.concatenate([np.full((100, 100), 0.5), np.full((100, 100), 10.0)])
    counts = camera(image, 400.0, 2.5, rng=1, offset=10.0, gain=0.5, bit_depth=8)
    np.testing.assert_array_equal(counts, np.round(counts))
    assert counts.min() >= 0 and counts.max() == 255
    np.testing.assert_array_equal(counts[100:], 255)  # 0.5 * 4000 + 10 saturates 8 bits
    # Below saturation the mean is unchanged by rounding: 0.5 * 200 + 10 = 110 counts.
    assert counts[:100].mean() == pytest.approx(110.0, abs=0.2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"photons": 0.0}, "photons: expected a positive"),
        ({"read_noise_e": -1.0}, "read_noise_e: expected a finite value >= 0"),
        ({"background": np.nan}, "background: expected a finite value >= 0"),
        ({"gain": 0.0}, "gain: expected a positive"),
        ({"bit_depth": 0}, "bit_depth: expected an integer number of bits in 1..32"),
        ({"bit_depth": 12.0}, "bit_depth"),
        ({"image": -np.ones((2, 2))}, "image: expected a non-negative intensity"),
        ({"image": np.full((2, 2), np.nan)}, "image: expected finite values"),
    ],
)
def test_camera_errors(kwargs, match):
    args = {"image": np.ones((2, 2)), "photons": 10.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        camera(args.pop("image"), args.pop("photons"), **args)
