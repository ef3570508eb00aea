"""Scores of the quality cases against the simulator's ground truth (the ``_evaluate`` worker).

PSNR per frame with the mean removed and SSIM, a border left out (`nstm.metrics`); the
conventional reconstruction tuned against the truth by `nstm.systems.dpc.best_tikhonov_reg`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from nstm.metrics import psnr_per_frame, ssim
from nstm.systems.dpc import DPC, DPCConfig, best_tikhonov_reg, load_system


def score(estimate: Any, truth: Any, border: int) -> dict[str, list[float]]:
    """Per-frame PSNR and SSIM of a (frames, H, W) estimate, or an (H, W) one for every frame."""
    est = np.broadcast_to(estimate, truth.shape)
    return {
        "psnr": psnr_per_frame(est, truth, border=border).tolist(),
        "ssim": [ssim(e, t, border=border) for e, t in zip(est, truth, strict=True)],
    }


def tuned_tikhonov(system: DPC, truth: dict[str, Any], border: int) -> dict[str, Any]:
    """Tikhonov at the weight (the same for both channels) with the best mean phase PSNR against
    ground truth, over `best_tikhonov_reg`'s default weights.

    Returns
    -------
    dict
        ``reg``, per-frame ``phase_psnr`` and ``absorption_psnr`` at that weight, and
        ``seconds`` for the whole search.
    """
    start = time.perf_counter()
    reg, phase_psnr = best_tikhonov_reg(system, truth["phase"], border=border)
    # The oracle scores phase only: one more solve at its weight for the absorption.
    rec = dataclasses.replace(system, tikhonov_reg=(reg, reg)).reconstruct_static()
    absorption_psnr = psnr_per_frame(
        np.broadcast_to(rec["absorption"], truth["absorption"].shape),
        truth["absorption"],
        border=border,
    )
    return {
        "reg": reg,
        "phase_psnr": phase_psnr.tolist(),
        "absorption_psnr": absorption_psnr.tolist(),
        "seconds": time.perf_counter() - start,
    }


def evaluate_quality(sim_dir: Path, runs: dict[str, Path], border: int) -> dict[str, Any]:
    """Score each run's reconstruction and baseline, and a tuned Tikhonov.

    Parameters
    ----------
    sim_dir : Path
        Folder of ``nstm simulate dpc`` (``data.npz``, ``truth.npz``).
    runs : dict of str to Path
        Run folders of ``nstm reconstruct dpc`` by preset.
    border : int
        Pixels left out at each edge.

    Returns
    -------
    dict
        ``runs``: per preset, per-frame PSNR and SSIM of NSTM (``nstm_*``) and of the
        conventional reconstruction the run wrote (``baseline_*``) for each channel;
        ``tuned_tikhonov``: `tuned_tikhonov`'s figures.
    """
    truth = dict(np.load(sim_dir / "truth.npz"))
    scores: dict[str, Any] = {}
    for preset_name, run_dir in runs.items():
        figures: dict[str, Any] = {}
        for source, name in (("nstm", "reconstruction.npz"), ("baseline", "baseline.npz")):
            arrays = np.load(run_dir / name)
            for channel in ("phase", "absorption"):
                s = score(arrays[channel], truth[channel], border)
                figures[f"{source}_{channel}_psnr"] = s["psnr"]
                figures[f"{source}_{channel}_ssim"] = s["ssim"]
        scores[preset_name] = figures
    system = load_system(sim_dir / "data.npz", DPCConfig())
    return {"runs": scores, "tuned_tikhonov": tuned_tikhonov(system, truth, border)}
