"""``nstm.runs.evaluate`` on a hand-written run folder (no training)."""

import json

import numpy as np
import pytest

from nstm.metrics import psnr_per_frame
from nstm.runs import evaluate

FRAMES, SIZE, BORDER = 4, 40, 4


def _truth(seed=0):
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0.0, 2.0, (FRAMES, SIZE, SIZE)).astype(np.float32)
    absorption = rng.uniform(-0.5, 0.5, (FRAMES, SIZE, SIZE)).astype(np.float32)
    motion = np.zeros((FRAMES, SIZE, SIZE, 2), np.float32)
    motion[...] = np.arange(FRAMES)[:, None, None, None] * np.float32([3.0, 4.0])
    return {"absorption": absorption, "phase": phase, "motion": motion}


def _write_run(path, truth, *, motion=True, baseline=True):
    """A run folder as ``write_outputs`` / ``write_baseline`` leave it."""
    rng = np.random.default_rng(1)
    recon = {
        "absorption": truth["absorption"] + 0.05 * rng.standard_normal(truth["phase"].shape),
        "phase": truth["phase"] + 0.1 * rng.standard_normal(truth["phase"].shape),
        "times": np.linspace(-1, 1, FRAMES, dtype=np.float32),
    }
    if motion:
        # Another canonical frame (+10 px everywhere) and a 1 px x error in frame 0 only:
        # relative to the mean over frames the errors are 0.75, 0.25, 0.25, 0.25 px.
        recon["motion"] = truth["motion"] + np.float32([10.0, 10.0])
        recon["motion"][0, ..., 1] += 1.0
    np.savez(path / "reconstruction.npz", **recon)
    if baseline:
        np.savez(path / "baseline.npz", absorption=truth["absorption"][0], phase=truth["phase"][0])
    return recon


def test_evaluate_writes_psnr_and_motion_errors(tmp_path):
    truth = _truth()
    recon = _write_run(tmp_path, truth)
    metrics = evaluate(tmp_path, truth, ("absorption", "phase"), border=BORDER)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert metrics["border_px"] == BORDER
    for name in ("absorption", "phase"):
        expected = psnr_per_frame(recon[name], truth[name], border=BORDER)
        np.testing.assert_allclose(metrics[f"nstm_{name}_psnr"], expected)
        assert len(metrics[f"baseline_{name}_psnr"]) == FRAMES
        assert metrics[f"baseline_{name}_psnr"][0] == np.inf  # the baseline is frame 0
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
    assert "nstm_motion_epe_px" not in metrics and "no_motion_epe_px" not in metrics
    assert "baseline_phase_psnr" not in metrics
    assert len(metrics["nstm_phase_psnr"]) == FRAMES


def test_evaluate_mismatched_motion_shape_raises(tmp_path):
    truth = _truth()
    _write_run(tmp_path, truth)
    truth["motion"] = truth["motion"][:, :-2]
    with pytest.raises(ValueError, match="same shape"):
        evaluate(tmp_path, truth, ("phase",), border=BORDER)
