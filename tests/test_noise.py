import numpy as np
import pytest

from nstm.simulation.noise import shot_noise


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
