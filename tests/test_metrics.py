import numpy as np
import pytest

from nstm.metrics import motion_error, psnr, psnr_per_frame, ssim


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
    # Kept, the offset is an error of 0.7 everywhere: 10 log10(range^2 / 0.49), with the range
    # of the truth over the default 16 px crop.
    data_range = np.ptp(truth[16:-16, 16:-16])
    expected = 10 * np.log10(data_range**2 / 0.49)
    assert psnr(truth + 0.7, truth, remove_mean=False) == pytest.approx(expected, rel=1e-12)
    assert ssim(truth + 0.7, truth, remove_mean=False) < 0.9


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
    # border=2 keeps 60 rows, the first of them off by 5: after mean removal the error is
    # 5 (1 - p) on that row and -5 p elsewhere (p = 1 / 60), MSE = 25 p (1 - p).
    p = 1 / 60
    expected = 10 * np.log10(np.ptp(truth[2:-2, 2:-2]) ** 2 / (25 * p * (1 - p)))
    assert psnr(estimate, truth, border=2) == pytest.approx(expected, rel=1e-12)


def checkerboard(shape):
    """+-1 in a checkerboard: zero mean over any even-sided crop."""
    return np.where(np.add.outer(np.arange(shape[0]), np.arange(shape[1])) % 2 == 0, 1.0, -1.0)


def test_stack_and_per_frame():
    truth = np.stack([_image(seed=s) for s in range(4)])
    truth[:, 20, 20], truth[:, 30, 40] = 0.0, 2.0  # every frame spans exactly 2 in the crop
    amplitude = 0.02 * np.arange(1, 5)  # frame k: an RMS error of 0.02 (k + 1)
    estimate = truth + amplitude[:, None, None] * checkerboard((64, 64))
    per_frame = psnr_per_frame(estimate, truth)
    assert per_frame.shape == (4,)
    np.testing.assert_allclose(per_frame, 20 * np.log10(2.0 / amplitude), rtol=1e-12)
    # The stack's PSNR: the MSE over every frame (the mean of the squared amplitudes).
    whole = psnr(estimate, truth)
    assert whole == pytest.approx(10 * np.log10(4.0 / np.mean(amplitude**2)), rel=1e-12)
    # The stack's SSIM is the mean of its frames' SSIMs (each with the stack's data range),
    # which fall as the error grows.
    frames = [ssim(e, t, data_range=2.0) for e, t in zip(estimate, truth, strict=True)]
    assert ssim(estimate, truth) == pytest.approx(np.mean(frames), rel=1e-12)
    assert all(a > b for a, b in zip(frames, frames[1:], strict=False)) and frames[0] < 1


def test_per_frame_mean_removal_for_stacks():
    truth = np.stack([_image(seed=s) for s in range(3)])
    offsets = np.array([0.0, 0.5, -1.0])[:, None, None]
    assert psnr(truth + offsets, truth) == np.inf
    np.testing.assert_array_equal(psnr_per_frame(truth + offsets, truth), [np.inf] * 3)
    # Kept, the offsets are the error: MSE = (0 + 0.25 + 1) / 3 over the stack's data range.
    expected = 10 * np.log10(np.ptp(truth[:, 16:-16, 16:-16]) ** 2 / (1.25 / 3))
    assert psnr(truth + offsets, truth, remove_mean=False) == pytest.approx(expected, rel=1e-12)


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


# --------------------------------------------------------------------------- motion_error
def _translations(frames=4, shape=(40, 40), step=(3.0, 4.0)):
    """Uniform translations: frame k is displaced by k * step (px, (dy, dx))."""
    motion = np.zeros((frames, *shape, 2))
    motion[...] = np.arange(frames)[:, None, None, None] * np.asarray(step)
    return motion


def _smooth_motion(frames=4, shape=(40, 48), seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    amp = rng.uniform(-2, 2, (frames, 2))
    field = np.stack([np.sin(y / 7.0 + 0.3) * np.cos(x / 9.0), np.cos(y / 5.0) + x / 48.0], -1)
    return amp[:, None, None, :] * field


def test_motion_error_identical_is_zero():
    truth = _smooth_motion()
    np.testing.assert_array_equal(motion_error(truth, truth, border=4), np.zeros(4))


def test_motion_error_ignores_the_canonical_frame():
    # Another canonical frame shifted by a constant: the same offset in every estimated frame.
    truth = _smooth_motion()
    error = motion_error(truth + np.array([2.5, -7.0]), truth, border=4)
    np.testing.assert_allclose(error, 0.0, atol=1e-12)


def test_motion_error_known_per_frame_errors():
    truth = _smooth_motion(shape=(40, 40))
    error = np.zeros_like(truth)
    error[0, ..., 1] = 1.0  # frame 0: 1 px too far along x everywhere ...
    error[1, ..., 1] = -1.0  # ... frame 1: 1 px short (the error has zero mean over frames)
    error[2, ::2] = (3.0, 4.0)  # frames 2 and 3: a 5 px error on every other row
    error[3, ::2] = (-3.0, -4.0)
    result = motion_error(truth + error, truth, border=4)  # 32 rows kept, half of them even
    np.testing.assert_allclose(result, [1.0, 1.0, 2.5, 2.5])


def test_motion_error_error_relative_to_mean_over_frames():
    # An error in one frame only also shifts the mean over frames: frame 0 off by 4 px along y
    # of 4 frames -> relative errors 3, 1, 1, 1 px.
    truth = _translations()
    estimate = truth.copy()
    estimate[0, ..., 0] += 4.0
    np.testing.assert_allclose(motion_error(estimate, truth, border=0), [3.0, 1.0, 1.0, 1.0])


def test_no_motion_reference_for_translations():
    # Frame k translated by k * (3, 4) px: relative to the mean (1.5 frames), |k - 1.5| * 5 px.
    truth = _translations()
    expected = np.abs(np.arange(4) - 1.5) * 5.0
    np.testing.assert_allclose(motion_error(np.zeros_like(truth), truth), expected)
    np.testing.assert_allclose(motion_error(np.zeros_like(truth), truth, border=0), expected)


def test_motion_error_border_crop_and_volumes():
    truth = np.zeros((3, 5, 20, 24, 3))  # (frames, Z, H, W, (dz, dy, dx))
    estimate = truth.copy()
    estimate[0, :, :2] = (0.0, 0.0, 1.0)  # an error in the top two rows of frame 0 only
    np.testing.assert_array_equal(motion_error(estimate, truth, border=2), np.zeros(3))
    # border=1 keeps rows 1..18 (one of them in error) of every Z plane (Z is not cropped):
    # relative to the mean over frames, frame 0 is off by 2/3 px there and frames 1, 2 by 1/3.
    np.testing.assert_allclose(
        motion_error(estimate, truth, border=1), [2 / 3 / 18, 1 / 3 / 18, 1 / 3 / 18]
    )
    # An error in the first Z plane only counts at 1 / 5 of the weight (Z is averaged, not cut).
    estimate = truth.copy()
    estimate[0, 0, 5:15, 5:15] = (3.0, 0.0, 0.0)  # along z, inside the H, W crop
    np.testing.assert_allclose(
        motion_error(estimate, truth, border=2), np.array([2.0, 1.0, 1.0]) * 100 / (5 * 16 * 20)
    )


@pytest.mark.parametrize(
    ("estimate_shape", "truth_shape", "match"),
    [
        ((4, 32, 32, 2), (4, 32, 30, 2), r"\(4, 32, 32, 2\).*\(4, 32, 30, 2\)"),
        ((4, 32, 32, 3), (4, 32, 32, 3), r"estimate.*\(frames, H, W, 2\)"),
        ((4, 32, 32, 2), (4, 32, 32), r"truth.*\(frames, H, W, 2\)"),
        ((32, 32, 2), (32, 32, 2), r"estimate.*\(frames, H, W, 2\) or \(frames, Z, H, W, 3\)"),
    ],
)
def test_motion_error_bad_shapes(estimate_shape, truth_shape, match):
    with pytest.raises(ValueError, match=match):
        motion_error(np.zeros(estimate_shape), np.zeros(truth_shape))


@pytest.mark.parametrize("name", ["estimate", "truth"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_motion_error_non_finite_names_the_argument(name, bad):
    arrays = {"estimate": np.zeros((2, 8, 8, 2)), "truth": np.zeros((2, 8, 8, 2))}
    arrays[name][1, 3, 3, 0] = bad
    with pytest.raises(ValueError, match=f"{name} must be finite"):
        motion_error(**arrays, border=0)


def test_motion_error_complex_names_the_argument():
    with pytest.raises(ValueError, match="truth must be real"):
        motion_error(np.zeros((2, 8, 8, 2)), np.zeros((2, 8, 8, 2), complex), border=0)


@pytest.mark.parametrize("border", [-1, 16, 20, 1.5, True])
def test_motion_error_bad_border(border):
    with pytest.raises(ValueError, match="border"):
        motion_error(np.zeros((2, 32, 40, 2)), np.zeros((2, 32, 40, 2)), border=border)


def test_psnr_per_frame_of_volumes_is_each_volume_psnr():
    rng = np.random.default_rng(3)
    truth = rng.normal(size=(3, 4, 20, 20))
    estimate = truth + 0.1 * rng.normal(size=truth.shape)
    per_frame = psnr_per_frame(estimate, truth, border=2)
    np.testing.assert_allclose(
        per_frame, [psnr(e, t, border=2) for e, t in zip(estimate, truth, strict=True)]
    )
    with pytest.raises(ValueError, match=r"\(frames, Z, H, W\)"):
        psnr_per_frame(estimate[None], truth[None], border=2)
