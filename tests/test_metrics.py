import numpy as np
import pytest

from nstm.metrics import psnr, psnr_per_frame, ssim


def _image(shape=(64, 64), seed=0):
    return np.random.default_rng(seed).uniform(0.0, 2.0, shape)


def test_identical_is_inf():
    truth = _image()
    assert psnr(truth, truth) == np.inf
    assert ssim(truth, truth) == pytest.approx(1.0)


def test_constant_offset_is_ignored_only_with_remove_mean():
    truth = _image()
    assert psnr(truth + 0.7, truth) == np.inf
    assert ssim(truth + 0.7, truth) == pytest.approx(1.0)
    assert np.isfinite(psnr(truth + 0.7, truth, remove_mean=False))


def test_known_mse_gives_known_db():
    truth = np.broadcast_to(np.linspace(0.0, 1.0, 40), (40, 40))  # ptp 1 over any row crop
    estimate = truth.copy()
    estimate[::2] += 0.1
    estimate[1::2] -= 0.1  # zero-mean error of magnitude 0.1 -> MSE = 0.01
    assert psnr(estimate, truth, border=0, data_range=1.0) == pytest.approx(20.0)
    assert psnr(estimate, truth, border=0, remove_mean=False) == pytest.approx(20.0)
    assert psnr(estimate, truth, border=0, data_range=2.0) == pytest.approx(20.0 + 20 * np.log10(2))
    # Default data range = ptp of the truth over the crop: columns 5..34 of 0..39 -> 29 / 39.
    expected = 10 * np.log10((29 / 39) ** 2 / 0.01)
    assert psnr(estimate, truth, border=5) == pytest.approx(expected)


def test_border_crop_excludes_edges():
    truth = _image()
    estimate = truth.copy()
    estimate[:3] += 5.0
    assert psnr(estimate, truth, border=3) == np.inf
    assert np.isfinite(psnr(estimate, truth, border=2))


def test_stack_and_per_frame():
    truth = np.stack([_image(seed=s) for s in range(4)])
    rng = np.random.default_rng(1)
    noise = np.stack([s * 0.02 * rng.standard_normal((64, 64)) for s in range(1, 5)])
    estimate = truth + noise
    per_frame = psnr_per_frame(estimate, truth)
    assert per_frame.shape == (4,)
    assert np.all(np.diff(per_frame) < 0)  # noisier frames score lower
    whole = psnr(estimate, truth)
    assert per_frame.min() < whole < per_frame.max()
    assert 0 < ssim(estimate, truth) < 1


def test_per_frame_mean_removal_for_stacks():
    truth = np.stack([_image(seed=s) for s in range(3)])
    offsets = np.array([0.0, 0.5, -1.0])[:, None, None]
    assert psnr(truth + offsets, truth) == np.inf


@pytest.mark.parametrize("func", [psnr, ssim, psnr_per_frame])
def test_shape_mismatch_names_both_shapes(func):
    with pytest.raises(ValueError, match=r"\(3, 32, 32\).*\(3, 32, 31\)"):
        func(np.zeros((3, 32, 32)), np.zeros((3, 32, 31)))


@pytest.mark.parametrize("border", [16, 20, -1])
def test_border_too_large_or_negative(border):
    with pytest.raises(ValueError, match="border"):
        psnr(_image((32, 40)), _image((32, 40)), border=border)


def test_constant_truth_needs_data_range():
    with pytest.raises(ValueError, match="data_range"):
        psnr(_image((40, 40)), np.ones((40, 40)), border=0)


def test_ssim_small_crop_raises():
    with pytest.raises(ValueError, match="7 x 7"):
        ssim(_image((20, 20)), _image((20, 20)), border=8)
