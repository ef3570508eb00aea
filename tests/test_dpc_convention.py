"""The DPC source-map convention, pinned to an acquisition that nstm did not write.

`tests/data/dpc-convention-check.npz` (see the README beside it) is a static DPC acquisition in
the original NSTM implementation's npz layout, with its true phase and absorption, simulated by
code outside nstm with the original's convention for ``s``: an LED at +u lights the sample with
``exp(-i 2 pi u . r)``. Our own simulator and reconstructor share one convention, so only data
like these can tell when that convention is the wrong one (the phase comes out negated).
"""

import dataclasses
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from nstm.metrics import psnr
from nstm.model import render_scenes
from nstm.optics import pupil
from nstm.presets import preset
from nstm.runs import build_model
from nstm.systems.dpc import DPC, DPCConfig
from nstm.systems.dpc.abbe import abbe_dpc_images
from nstm.systems.dpc.data import load_dpc
from nstm.systems.dpc.simulation import DPCSimulationConfig, simulate_dpc
from nstm.training import fit

DATA = Path(__file__).parent / "data" / "dpc-convention-check.npz"
BORDER = 8  # the data README scores with an 8 px border left out
# The field of view is periodic (see the README), so the periodic model (no padding) is the
# right one here; the tuned regularization of the conventional reconstruction on it.
PERIODIC = DPCConfig(pad_px=0, tikhonov_reg_absorption=1e-4, tikhonov_reg_phase=1e-4)


@pytest.fixture(scope="module")
def reference():
    with np.load(DATA) as archive:
        return {key: archive[key] for key in archive.files}


@pytest.fixture(scope="module")
def data():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "dpc-convention-check.npz: ignoring keys")  # gt_*
        return load_dpc(DATA)


def correlation(estimate, truth):
    crop = (slice(BORDER, -BORDER),) * 2
    return float(np.corrcoef(estimate[crop].ravel(), truth[crop].ravel())[0, 1])


@pytest.mark.parametrize("convention, matches", [("led", True), ("wavevector", False)])
def test_abbe_model_reproduces_the_recorded_frames(reference, convention, matches):
    # Exact image formation from the true sample: the LED convention gives the recorded frames
    # to float32 rounding (they are normalized by their mean, I / mean(I) - 1); the other one
    # gives images of the sample with its phase negated.
    shape = reference["img"].shape[1:]
    pup = pupil(
        shape,
        wavelength_um=float(reference["wavelength"]),
        na=float(reference["na"]),
        pixel_size_um=float(reference["pixel_size"]),
    )
    sample = np.exp(reference["gt_absorption"] + 1j * reference["gt_phase"].astype(np.float64))
    frames = abbe_dpc_images(
        sample, reference["s"], pup, precision="double", source_convention=convention
    )
    intensity = 1.0 + frames.astype(np.float64)
    normalized = intensity / intensity.mean(axis=(1, 2), keepdims=True) - 1.0
    error = np.abs(normalized - reference["img"]).max() / np.abs(reference["img"]).max()
    if matches:
        assert error < 1e-6
    else:
        assert error > 0.5


def test_conventional_reconstruction_matches_both_truths(data, reference):
    recon = DPC.from_data(data, PERIODIC).reconstruct_static()
    for channel in ("phase", "absorption"):
        truth = reference[f"gt_{channel}"]
        assert correlation(recon[channel], truth) > 0.999, channel
        # The data README: about 43-44 dB for the tuned conventional reconstruction.
        assert psnr(recon[channel], truth, border=BORDER) > 42.0, channel


def test_wavevector_convention_negates_the_phase_only(data, reference):
    config = dataclasses.replace(PERIODIC, source_convention="wavevector")
    recon = DPC.from_data(data, config).reconstruct_static()
    assert correlation(recon["phase"], reference["gt_phase"]) < -0.99
    assert correlation(recon["absorption"], reference["gt_absorption"]) > 0.999


def test_unknown_convention_is_refused_naming_the_field(data):
    with pytest.raises(ValueError, match="source_convention: expected one of"):
        DPC.from_data(data, dataclasses.replace(PERIODIC, source_convention="centred"))


@pytest.mark.parametrize("written", ["led", "wavevector"])
def test_simulated_data_read_in_their_own_convention_have_the_true_phase_sign(written):
    sim = DPCSimulationConfig(
        shape=(40, 48), phantom="cells", motion="none", max_displacement_px=0.0,
        photons_per_pixel=None, canvas_margin_px=16, source_convention=written,
    )  # fmt: skip
    data, truth = simulate_dpc(sim)
    for read in ("led", "wavevector"):
        config = DPCConfig(
            source_convention=read, tikhonov_reg_phase=1e-3, tikhonov_reg_absorption=1e-3
        )
        phase = DPC.from_data(data, config).reconstruct_static()["phase"]
        sign = 1 if read == written else -1
        assert sign * correlation(phase, truth["phase"][0]) > 0.9, (written, read)


def test_nstm_matches_both_truths(data, reference):
    config = preset("default")
    config = dataclasses.replace(
        config, system=PERIODIC, train=dataclasses.replace(config.train, steps=200)
    )
    system = DPC.from_data(data, config.system)
    model = build_model(system, config.model, config.train.seed)
    result = fit(model, system, config.train, progress=False)
    recon = system.outputs(render_scenes(result.model, np.asarray(system.measurement_times)))
    for channel in ("phase", "absorption"):
        truth = reference[f"gt_{channel}"]
        for frame in recon[channel]:  # a static sample: every frame is the truth
            assert correlation(frame, truth) > 0.999, channel
            # 46.3 dB phase and 44.6-44.7 dB absorption measured (200 steps, float32).
            assert psnr(frame, truth, border=BORDER) > 42.0, channel


@pytest.mark.parametrize("convention, sign", [("led", 1), ("wavevector", -1)])
def test_cli_option_sets_the_convention(tmp_path, reference, convention, sign):
    out = tmp_path / convention
    command = [sys.executable, "-m", "nstm.cli", "baseline", "dpc", str(DATA), "--out", str(out)]
    command += ["--system.pad-px", "0", "--system.source-convention", convention]
    command += ["--system.tikhonov-reg-phase", "1e-4", "--system.tikhonov-reg-absorption", "1e-4"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with np.load(out / "baseline.npz") as baseline:
        assert sign * correlation(baseline["phase"], reference["gt_phase"]) > 0.999
