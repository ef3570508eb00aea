"""End to end on small simulated DPC samples (Abbe image formation, non-periodic field of
view, shot noise): NSTM against the conventional Tikhonov reconstruction."""

import dataclasses
import warnings

import numpy as np

from nstm.metrics import psnr_per_frame
from nstm.model import render_scenes
from nstm.presets import preset
from nstm.runs import build_model
from nstm.simulation.dpc import DPCSimulationConfig, simulate_dpc
from nstm.systems.dpc import DPC
from nstm.training import fit

SIZE, BORDER, STEPS = 64, 8, 150


def tuned_tikhonov_phase_psnr(system, truth_phase):
    """Per-frame phase PSNR of the Tikhonov reconstruction with the best regularization."""
    best = None
    for reg in np.logspace(-5, -1, 5):
        s = dataclasses.replace(system, tikhonov_reg=(float(reg), float(reg)))
        with warnings.catch_warnings():
            # Only the sweep's weakest weight (1e-5) leaves conjugate gradients short of their
            # tolerance at max_iter; it scores 2-10 dB below the best weight (1e-3 on these
            # samples), so it never decides the baseline.
            warnings.filterwarnings("ignore", "tikhonov_dpc: conjugate gradients stopped")
            phase = np.broadcast_to(s.reconstruct_static()["phase"], truth_phase.shape)
        p = psnr_per_frame(phase, truth_phase, border=BORDER)
        if best is None or p.mean() > best.mean():
            best = p
    return best


def nstm_phase_psnr(data, truth_phase):
    config = preset("default")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=STEPS))
    system = DPC.from_data(data, config.system)
    model = build_model(system, config.model, config.train.seed)
    result = fit(model, system, config.train, progress=False)
    recon = system.outputs(render_scenes(result.model, np.asarray(system.measurement_times)))
    return system, psnr_per_frame(recon["phase"], truth_phase, border=BORDER)


def simulate_cells(**sim):
    """A SIZE x SIZE cells sample (Abbe, non-periodic) with the given simulation settings."""
    return simulate_dpc(
        DPCSimulationConfig(shape=(SIZE, SIZE), phantom="cells", canvas_margin_px=16, **sim)
    )


def test_moving_sample_nstm_beats_tikhonov_on_every_frame():
    data, truth = simulate_cells(motion="elastic", max_displacement_px=4.0, seed=3)
    system, nstm = nstm_phase_psnr(data, truth["phase"])
    tikhonov = tuned_tikhonov_phase_psnr(system, truth["phase"])
    assert np.all(nstm > tikhonov), (nstm, tikhonov)


def test_static_noisy_sample_nstm_within_1db_of_tuned_tikhonov():
    data, truth = simulate_cells(
        motion="none", max_displacement_px=0.0, photons_per_pixel=1e4, seed=4
    )
    system, nstm = nstm_phase_psnr(data, truth["phase"])
    tikhonov = tuned_tikhonov_phase_psnr(system, truth["phase"])
    assert np.all(nstm > tikhonov - 1.0), (nstm, tikhonov)
