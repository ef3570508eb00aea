"""The motion-blur system: its data layout, padded and masked render counts, trainable gains,
and NSTM recovering sharp frames that the mean frame (the static reconstruction) smears."""

import dataclasses

import numpy as np
import pytest

from nstm.config import FieldConfig, ModelConfig, TrainConfig
from nstm.metrics import psnr_per_frame
from nstm.runs import build_model
from nstm.systems.motion_blur import (
    MotionBlur,
    MotionBlurConfig,
    MotionBlurData,
    MotionBlurSimulationConfig,
    load_motion_blur,
    save_motion_blur,
    simulate_motion_blur,
)
from nstm.systems.motion_blur.system import render_grid
from nstm.training import fit

COARSE = MotionBlurConfig(render_step=0.1)  # 6 renders per exposure of 0.5
MODEL = ModelConfig(scene=FieldConfig(log2_table_size=12, mlp_width=32))


def test_render_grid_pads_fewer_renders_with_zero_weight():
    centres = np.array([-0.5, 0.5])
    times, weights = render_grid(centres, np.array([0.2, 0.5]), render_step=0.1)
    # 0.2 / 0.1 + 1 = 3 renders and 0.5 / 0.1 + 1 = 6: the first row is padded to 6.
    assert times.shape == weights.shape == (2, 6)
    np.testing.assert_allclose(weights[0], [1 / 3] * 3 + [0] * 3, rtol=1e-6)
    np.testing.assert_allclose(weights[1], [1 / 6] * 6, rtol=1e-6)
    np.testing.assert_allclose(times[0, :3], [-0.6, -0.5, -0.4], atol=1e-6)
    np.testing.assert_allclose(times[1, [0, -1]], [0.25, 0.75], atol=1e-6)


def test_each_frame_averages_only_its_own_renders():
    data = MotionBlurData(np.zeros((2, 8, 8)), np.array([-0.5, 0.5]), np.array([0.2, 0.5]))
    system = MotionBlur.from_data(data, MotionBlurConfig(render_step=0.1))
    # Render r of the scene is the constant r: frame m is the mean of its renders' indices.
    scenes = np.broadcast_to(np.arange(6.0)[:, None, None, None], (6, 8, 8, 1))
    np.testing.assert_allclose(system.forward(scenes, 0), 1.0)  # mean of 0, 1, 2
    np.testing.assert_allclose(system.forward(scenes, 1), 2.5)  # mean of 0 ... 5
    np.testing.assert_allclose(system.output_times, [-0.5, 0.5])


def test_data_round_trip_and_clear_errors(tmp_path):
    data, _ = simulate_motion_blur(MotionBlurSimulationConfig(shape=(16, 16), frames=3))
    save_motion_blur(tmp_path / "d.npz", data)
    back = load_motion_blur(tmp_path / "d.npz")
    np.testing.assert_array_equal(back.frames, data.frames)
    np.testing.assert_array_equal(back.centres, data.centres)
    frames = np.zeros((2, 8, 8))
    with pytest.raises(ValueError, match="exposure: every window"):
        MotionBlurData(frames, np.array([-0.9, 0.5]), 0.4)
    with pytest.raises(ValueError, match=r"times: expected one centre per frame, shape \(2,\)"):
        MotionBlurData(frames, np.array([0.0]), 0.1)
    with pytest.raises(ValueError, match=r"exposure: expected one length or one per frame"):
        MotionBlurData(frames, np.array([-0.5, 0.5]), np.array([0.1, 0.1, 0.1]))
    np.savez(tmp_path / "bad.npz", frames=frames, times=np.array([-0.5, 0.5]))
    with pytest.raises(ValueError, match=r"bad.npz: missing keys \['exposure'\]"):
        load_motion_blur(tmp_path / "bad.npz")


@pytest.fixture(scope="module")
def moving():
    # 8 px over [-1, 1]: each exposure of 0.5 blurs the scene over 2 px.
    sim = MotionBlurSimulationConfig(
        shape=(48, 48), frames=4, exposure=0.5, max_displacement_px=8.0, photons=None
    )
    data, truth = simulate_motion_blur(sim)
    return data, truth


def test_nstm_recovers_sharp_frames_the_mean_frame_smears(moving):
    data, truth = moving
    system = MotionBlur.from_data(data, COARSE)
    model = build_model(system, MODEL, seed=0)
    result = fit(model, system, TrainConfig(steps=200), progress=False)
    sharp = np.asarray(result.model.render(system.output_times, alpha=1.0))[..., 0]
    nstm = psnr_per_frame(sharp, truth["intensity"], border=4)
    blurred = psnr_per_frame(data.frames, truth["intensity"], border=4)
    static = psnr_per_frame(
        np.broadcast_to(system.reconstruct_static()["intensity"], sharp.shape),
        truth["intensity"],
        border=4,
    )
    # Measured 40.0-40.8 dB against 36.1-37.6 (blurred) and about 20 (mean frame).
    assert np.all(nstm > blurred + 2.0), (nstm, blurred)
    assert np.all(nstm > static + 10.0), (nstm, static)


def test_trainable_gains_recover_frame_brightness_and_stay_frozen_by_default(moving):
    data, _ = moving
    gains = np.array([1.0, 1.3, 0.8, 1.1], np.float32)
    flickering = dataclasses.replace(data, frames=data.frames * gains[:, None, None])
    system = MotionBlur.from_data(flickering, COARSE)
    model = build_model(system, MODEL, seed=0)
    frozen = fit(model, system, TrainConfig(steps=5), progress=False)
    np.testing.assert_array_equal(np.asarray(frozen.system.gains), 1.0)
    trained = fit(model, system, TrainConfig(steps=200, system_lr=2e-2), progress=False)
    found = np.asarray(trained.system.gains)
    # The scene's brightness and the gains share one scale: compare relative gains.
    np.testing.assert_allclose(found / found.mean(), gains / gains.mean(), rtol=0.03)


def test_trained_gains_reach_the_run_folder(tmp_path):
    from nstm.config import RunConfig
    from nstm.runs import load_run, reconstruct

    data, _ = simulate_motion_blur(MotionBlurSimulationConfig(shape=(32, 32), photons=None))
    save_motion_blur(tmp_path / "d.npz", data)
    config = RunConfig(
        system=MotionBlurConfig(),
        model=MODEL,
        train=TrainConfig(steps=20, system_lr=1e-2),
    )
    _, system, _ = reconstruct(
        "motion-blur", tmp_path / "d.npz", tmp_path / "run", config, progress=False
    )
    with np.load(tmp_path / "run" / "system_parameters.npz") as saved:
        written = saved["gains"]
    np.testing.assert_array_equal(written, np.asarray(system.gains))
    assert not np.allclose(written, 1.0)  # they did train
    _, reloaded, _ = load_run(tmp_path / "run")
    np.testing.assert_array_equal(np.asarray(reloaded.gains), np.asarray(system.gains))
