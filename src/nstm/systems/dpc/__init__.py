"""Differential phase contrast (DPC) microscopy: everything specific to it.

* :mod:`.system`: the forward model (:class:`DPC`) and its config;
* :mod:`.optics`: LED source maps and the weak-object transfer functions;
* :mod:`.data`: the data layout, its loader and writer;
* :mod:`.tikhonov`, :mod:`.regularization`: the conventional reconstruction and its weight;
* :mod:`.abbe`, :mod:`.simulation`: a simulated moving sample with ground truth;
* :mod:`.presets`: the original publication's settings;
* ``SPEC``: how the command line uses all of these.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..registry import Demo, DemoReport, Simulation, SystemSpec, square_demo
from .data import save_dpc
from .presets import paper
from .simulation import DPCSimulationConfig, simulate_dpc
from .system import DPC as DPC
from .system import DPCConfig as DPCConfig
from .system import best_tikhonov_reg as best_tikhonov_reg
from .system import load_system as load_system
from .system import resample_sources as resample_sources


def _describe(sim: DPCSimulationConfig) -> str:
    h, w = sim.shape
    noise = "shot noise" if sim.photons_per_pixel is not None else "no noise"
    return (
        f"a {sim.frames} x {h} x {w} DPC sample ({sim.phantom}, {sim.motion} motion up to "
        f"{sim.max_displacement_px} px, {sim.image_model}, {noise})"
    )


def _demo_report(system: DPC, truth: dict[str, np.ndarray], border: int, run: Path) -> DemoReport:
    """The weight the baseline used and the conventional reconstruction at its best weight,
    found with the truth (an oracle a user does not have), beside it."""
    info = system.baseline_info()
    best_reg, best_phase = best_tikhonov_reg(system, truth["phase"], border=border)
    by = info["chosen_by"]
    origin = "the config" if by == "config" else f"the data by {str(by).upper()}"
    return DemoReport(
        metrics={
            "baseline_reg": info["reg_phase"],
            "baseline_reg_chosen_by": by,
            "tuned_baseline_reg": best_reg,
            "tuned_baseline_phase_psnr": best_phase.tolist(),
        },
        rows={
            "phase PSNR per frame (dB)": [
                (
                    f"conventional at its best weight, {best_reg:.1e} (found with the truth)",
                    best_phase,
                )
            ]
        },
        baseline_label=f"conventional, weight {info['reg_phase']:.1e} chosen from {origin}",
    )


SPEC = SystemSpec(
    name="dpc",
    config_cls=DPCConfig,
    load=load_system,
    description="differential phase contrast: absorption and phase (rad) from asymmetric "
    "illumination",
    data_help="measurements: .npz (keys img, s, [times, wavelength, pixel_size, na]) or a TIFF "
    "stack (frames, H, W) with --system.sources",
    resume_may_change=("tikhonov_reg_absorption", "tikhonov_reg_phase"),
    presets={"paper": paper},
    simulation=Simulation(
        config_cls=DPCSimulationConfig, simulate=simulate_dpc, save=save_dpc, describe=_describe
    ),
    demo=Demo(simulation=square_demo(DPCSimulationConfig), min_size=32, report=_demo_report),
)
