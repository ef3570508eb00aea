"""End to end on small simulated DPC samples (Abbe image formation, non-periodic field of
view, shot noise): NSTM against the conventional Tikhonov reconstruction."""

import dataclasses

import numpy as np

from nstm.metrics import psnr_per_frame
from nstm.model import render_scenes
from nstm.presets import preset
from nstm.runs import build_model
from nstm.systems.dpc import DPC, best_tikhonov_reg
from nstm.systems.dpc.simulation import DPCSimulationConfig, simulate_dpc
from nstm.training import fit

SIZE, BORDER, STEPS = 64, 8, 150


def tuned_tikhonov_phase_psnr(system, truth_phase):
    """Per-frame phase PSNR of the Tikhonov reconstruction at its best weight (an oracle)."""
    return best_tikhonov_reg(system, truth_phase, border=BORDER)[1]


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
