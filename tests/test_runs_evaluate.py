"""``nstm.runs.evaluate`` on a hand-written run folder (no training)."""

import json

import numpy as np
import pytest

from nstm.runs import evaluate

FRAMES, SIZE, BORDER = 4, 40, 4
CROP = (slice(BORDER, SIZE - BORDER),) * 2  # 32 x 32 pixels, 16 even and 16 odd rows
ROWS = np.where(np.arange(SIZE) % 2 == 0, 1.0, -1.0)[:, None] * np.ones(SIZE)  # +-1 stripes
CHECKER = ROWS * np.where(np.arange(SIZE) % 2 == 0, 1.0, -1.0)  # +-1 checkerboard
# Both patterns have zero mean over the crop, so mean removal leaves them as they are.
BASE_RANGE = {"absorption": 1.0, "phase": 2.0}  # peak-to-peak of each channel's frame 0
STEP = {"absorption": 0.05, "phase": 0.1}  # the unit of each channel's errors


def _truth():
    """Frame k is frame 0 plus k * step * stripes; frame 0 spans exactly BASE_RANGE, with its
    extremes on rows where the stripes push them outward: frame k spans BASE_RANGE + 2 k step."""
    rng = np.random.default_rng(0)
    truth = {}
    for name, span in BASE_RANGE.items():
        base = rng.uniform(0.25 * span, 0.75 * span, (SIZE, SIZE))
        base[10, 10], base[11, 12] = span, 0.0  # the maximum on an even row, the minimum odd
        frames = base + STEP[name] * np.arange(FRAMES)[:, None, None] * ROWS
        truth[name] = frames.astype(np.float32) - np.float32(0.5 * span)
    motion = np.zeros((FRAMES, SIZE, SIZE, 2), np.float32)
    motion[...] = np.arange(FRAMES)[:, None, None, None] * np.float32([3.0, 4.0])
    truth["motion"] = motion
    return truth


def _expected_psnr(name):
    """The documented PSNR (mean removed, data range = the truth frame's peak-to-peak over the
    crop) of each reconstruction, from the errors _write_run makes."""
    k = np.arange(FRAMES)
    span = BASE_RANGE[name] + 2 * k * STEP[name]
    nstm = 20 * np.log10(span / (STEP[name] * (k + 1)))  # RMS error step * (k + 1)
    with np.errstate(divide="ignore"):
        baseline = 20 * np.log10(span / (STEP[name] * k))  # frame 0 against frame k
    return nstm, baseline


def _write_run(path, truth, *, motion=True, baseline=True):
    """A run folder as ``write_outputs`` / ``write_baseline`` leave it: frame k of each channel
    off by (k + 1) * step in a checkerboard, another constant offset per frame (unobservable,
    so not an error), and the baseline equal to truth frame 0."""
    recon = {"times": np.linspace(-1, 1, FRAMES, dtype=np.float32)}
    for name in BASE_RANGE:
        error = STEP[name] * (np.arange(FRAMES) + 1)[:, None, None] * CHECKER
        offset = np.float32([0.3, -0.2, 0.7, 0.0])[:, None, None]
        recon[name] = (truth[name] + error + offset).astype(np.float32)
    if motion:
        # Another canonical frame (+10 px everywhere) and a 1 px x error in frame 0 only:
        # relative to the mean over frames the errors are 0.75, 0.25, 0.25, 0.25 px.
        recon["motion"] = truth["motion"] + np.float32([10.0, 10.0])
        recon["motion"][0, ..., 1] += 1.0
    np.savez(path / "reconstruction.npz", **recon)
    if baseline:
        np.savez(path / "baseline.npz", absorption=truth["absorption"][0], phase=truth["phase"][0])
    return recon


def test_truth_and_errors_are_as_designed():
    # The expectations below rest on these: the spans, and errors of zero mean on the crop.
    truth = _truth()
    for name, span in BASE_RANGE.items():
        spans = np.ptp(truth[name][(slice(None), *CROP)], axis=(1, 2))
        np.testing.assert_allclose(spans, span + 2 * np.arange(FRAMES) * STEP[name], rtol=1e-6)
    assert ROWS[CROP].mean() == CHECKER[CROP].mean() == 0.0


def test_evaluate_writes_psnr_and_motion_errors(tmp_path):
    truth = _truth()
    _write_run(tmp_path, truth)
    metrics = evaluate(tmp_path, truth, ("absorption", "phase"), border=BORDER)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert metrics["border_px"] == BORDER
    for name in ("absorption", "phase"):
        nstm, baseline = _expected_psnr(name)
        # 26.02, 20.83, 18.06, 16.26 dB for both channels (frame 0's extremes lie inside the
        # 4 px crop, outside evaluate's default 16 px one)
        np.testing.assert_allclose(metrics[f"nstm_{name}_psnr"], nstm, rtol=1e-5)
        assert metrics[f"baseline_{name}_psnr"][0] == np.inf  # the baseline is frame 0
        np.testing.assert_allclose(metrics[f"baseline_{name}_psnr"][1:], baseline[1:], rtol=1e-5)
    np.testing.assert_allclose(metrics["nstm_motion_epe_px"], [0.75, 0.25, 0.25, 0.25], atol=1e-6)
    # Assuming no motion: frame k moved by k * (3, 4) px, 5 |k - 1.5| px from the mean.
    np.testing.assert_allclose(metrics["no_motion_epe_px"], [7.5, 2.5, 2.5, 7.5], atol=1e-6)


@pytest.mark.parametrize("where", ["truth", "reconstruction"])
def test_evaluate_without_motion_has_no_motion_keys(tmp_path, where):
    truth = _truth()
    _write_run(tmp_path, truth, motion=where != "reconstruction", baseline=False)
    if where == "truth":
        del truth["motion"]
    metrics = evaluate(tmp_path, truth, ("phase",), border=BORDER)
    assert set(metrics) == {"border_px", "nstm_phase_psnr"}
    np.testing.assert_allclose(metrics["nstm_phase_psnr"], _expected_psnr("phase")[0], rtol=1e-5)


def test_evaluate_mismatched_motion_shape_raises(tmp_path):
    truth = _truth()
    _write_run(tmp_path, truth)
    truth["motion"] = truth["motion"][:, :-2]
    with pytest.raises(ValueError, match="same shape"):
        evaluate(tmp_path, truth, ("phase",), border=BORDER)
