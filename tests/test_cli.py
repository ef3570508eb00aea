"""The command line end to end on a tiny sample: simulate, reconstruct, resume, render."""

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import tifffile

from nstm.cli.main import main
from nstm.runs import load_run_config
from nstm.systems.dpc import DPC, DPCConfig
from nstm.systems.dpc.data import load_dpc

TINY = ["--model.scene.mlp-width", "16", "--model.scene.log2-table-size", "12"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    args = [
        "simulate",
        "dpc",
        "--out",
        str(out),
        "--sim.shape",
        "32",
        "40",
        "--sim.canvas-margin-px",
        "8",
        "--sim.phantom",
        "cells",
    ]
    assert main(args) == 0
    return out


def test_simulate_writes_the_input_layout_and_ground_truth(data):
    loaded = load_dpc(data / "data.npz")  # the layout the reader accepts
    assert loaded.images.shape == loaded.sources.shape == (4, 32, 40)
    np.testing.assert_array_equal(loaded.times, np.linspace(-1, 1, 4, dtype=np.float32))
    t = np.load(data / "truth.npz")
    assert t["phase"].shape == (4, 32, 40) and t["motion"].shape == (4, 32, 40, 2)
    assert np.abs(t["motion"]).max() > 1.0  # a moving sample
    assert not np.array_equal(t["phase"][0], t["phase"][-1])
    settings = (data / "simulation.yaml").read_text()
    assert "phantom: cells" in settings.splitlines()


def test_reconstruct_writes_every_output_then_resume_and_render(data, tmp_path):
    run = tmp_path / "run"
    args = [
        "reconstruct",
        "dpc",
        str(data / "data.npz"),
        "--out",
        str(run),
        "--steps",
        "6",
        "--quiet",
        "--train.checkpoint-every",
        "3",
        *TINY,
    ]
    assert main(args) == 0
    rec = np.load(run / "reconstruction.npz")
    assert rec["phase"].shape == (4, 32, 40) and rec["absorption"].shape == (4, 32, 40)
    assert rec["motion"].shape == (4, 32, 40, 2) and rec["times"].shape == (4,)
    base = np.load(run / "baseline.npz")
    assert base["phase"].shape == (32, 40)
    for name in (
        "comparison.png",
        "motion.png",
        "loss.png",
        "video_phase.gif",
        "config.yaml",
        "loss.csv",
        "checkpoint.eqx",
        "reconstruction_phase.ome.tif",
        "baseline_phase.ome.tif",
        "motion.ome.tif",
    ):
        assert (run / name).is_file(), name
    # What Fiji/napari read: the OME metadata, with the data's pixel size in micrometres.
    with tifffile.TiffFile(run / "reconstruction_phase.ome.tif") as tif:
        assert tif.series[0].shape == (4, 32, 40) and tif.series[0].axes == "TYX"
        pixels = ET.fromstring(tif.ome_metadata).find(".//{*}Pixels").attrib
    pixel_um = float(np.load(data / "data.npz")["pixel_size"])
    for axis in "XY":
        assert float(pixels[f"PhysicalSize{axis}"]) == pytest.approx(pixel_um)
        assert pixels[f"PhysicalSize{axis}Unit"] == "µm"
    with tifffile.TiffFile(run / "motion.ome.tif") as tif:
        assert tif.series[0].axes == "TCYX" and tif.series[0].shape == (4, 2, 32, 40)
    timing = json.loads((run / "timing.json").read_text())
    assert timing["steps"] == 6 and timing["train_s"] > 0 and timing["outputs_s"] > 0
    # A second run into the same folder without --resume is refused...
    assert main(args) == 2
    # ...and --resume continues it: nothing left to do, the same 6 steps and results.
    before = np.load(run / "reconstruction.npz")["phase"]
    assert (
        main(
            ["reconstruct", "dpc", str(data / "data.npz"), "--out", str(run), "--resume", "--quiet"]
        )
        == 0
    )
    assert json.loads((run / "timing.json").read_text())["steps"] == 6
    assert (run / "loss.csv").read_text().splitlines()[-1].startswith("6,")
    np.testing.assert_array_equal(np.load(run / "reconstruction.npz")["phase"], before)
    assert main(["render", str(run), "--frames", "5"]) == 0
    assert np.load(run / "interpolated.npz")["phase"].shape == (5, 32, 40)


def test_run_from_before_the_source_convention_fix_is_refused_untouched(data, tmp_path, capsys):
    # nstm 0.1 read DPC source maps with the other sign convention (checkpoint format 2): its
    # models have the opposite phase sign, so neither --resume nor render may use them.
    run = tmp_path / "run"
    args = ["reconstruct", "dpc", str(data / "data.npz"), "--out", str(run), "--steps", "2"]
    assert main([*args, "--quiet", *TINY]) == 0
    checkpoint = run / "checkpoint.eqx"
    header, _, rest = checkpoint.read_bytes().partition(b"\n")
    checkpoint.write_bytes(json.dumps(json.loads(header) | {"format": 2}).encode() + b"\n" + rest)
    before = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in run.iterdir()}
    capsys.readouterr()
    assert main([*args[:5], "--resume", "--quiet"]) == 2
    assert main(["render", str(run), "--frames", "3"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2
    for line in errors:
        assert "checkpoint format 2 cannot be resumed" in line and "LED convention" in line
        assert "opposite phase sign" in line and "start the run again" in line
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in run.iterdir()} == before


def test_config_file_and_flags_precedence(data, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  steps: 3\n  scene_lr: 0.5\nsystem:\n  pad_px: 4\n")
    run = tmp_path / "run"
    args = [
        "reconstruct",
        "dpc",
        str(data / "data.npz"),
        "--out",
        str(run),
        "--config",
        str(cfg),
        "--train.scene-lr",
        "0.01",
        "--quiet",
        *TINY,
    ]
    assert main(args) == 0
    saved = load_run_config(run / "config.yaml", DPCConfig)
    assert saved.train.steps == 3 and saved.train.scene_lr == 0.01 and saved.system.pad_px == 4
    assert json.loads((run / "timing.json").read_text())["steps"] == 3


def test_baseline_command(data, tmp_path):
    assert main(["baseline", "dpc", str(data / "data.npz"), "--out", str(tmp_path)]) == 0
    expected = DPC.from_data(load_dpc(data / "data.npz")).reconstruct_static()
    with np.load(tmp_path / "baseline.npz") as written:
        for name in ("absorption", "phase"):
            np.testing.assert_allclose(written[name], expected[name], rtol=1e-6, atol=1e-7)


def test_clear_errors(data, tmp_path, capsys):
    assert main(["reconstruct", "dpc", str(tmp_path / "missing.npz"), "--out", str(tmp_path)]) == 2
    assert "missing.npz" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert main(["reconstruct", "sted", "x", "--out", str(tmp_path)]) == 2
    assert "unknown system 'sted'" in capsys.readouterr().err
    assert main(["simulate"]) == 2
    assert "usage: nstm simulate SYSTEM" in capsys.readouterr().err


def printed_rows(out: str, title: str) -> list[tuple[str, list[float]]]:
    """(label, trailing numbers) of the indented rows printed under ``title``."""
    lines = out.splitlines()
    rows = []
    for line in lines[lines.index(title) + 1 :]:
        if not line.startswith("  "):
            break
        tokens, values = line.split(), []
        while tokens and re.fullmatch(r"-?\d+\.\d+", tokens[-1]):
            values.insert(0, float(tokens.pop()))
        rows.append((" ".join(tokens), values))
    return rows


def test_demo_runs_end_to_end_and_reports_psnr_and_motion_error(tmp_path, capsys):
    # 32 px: the scoring border shrinks to fit (16 px would leave nothing to score).
    assert main(["demo", "--out", str(tmp_path), "--size", "32", "--steps", "4", "--quiet"]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["border_px"] == 4
    phase = printed_rows(out, "phase PSNR per frame (dB)")
    assert [label.split(",")[0].split(" at")[0] for label, _ in phase] == [
        "NSTM",
        "conventional",
        "conventional",
    ]
    assert f"weight {metrics['baseline_reg']:.1e} chosen from the data by GCV" in phase[1][0]
    assert f"best weight, {metrics['tuned_baseline_reg']:.1e} (found with the truth)" in phase[2][0]
    for (_, printed), key in zip(
        phase, ("nstm_phase_psnr", "baseline_phase_psnr", "tuned_baseline_phase_psnr"), strict=True
    ):
        np.testing.assert_allclose(printed, metrics[key], atol=0.0051)
    # The oracle weight is the best of its candidates, so at least as good as the chosen one.
    tuned, chosen = metrics["tuned_baseline_phase_psnr"], metrics["baseline_phase_psnr"]
    assert np.mean(tuned) >= np.mean(chosen) - 0.05
    motion = printed_rows(out, "motion error per frame (px)")
    for (_, printed), key in zip(motion, ("nstm_motion_epe_px", "no_motion_epe_px"), strict=True):
        np.testing.assert_allclose(printed, metrics[key], atol=0.0051)
    # Assuming no motion errs by the true motion's size relative to its mean over frames (the
    # metric's definition), computed here from the truth in the scored region.
    true_motion = np.load(tmp_path / "data" / "truth.npz")["motion"][:, 4:-4, 4:-4]
    relative = true_motion - true_motion.mean(axis=0, keepdims=True)
    np.testing.assert_allclose(
        metrics["no_motion_epe_px"], np.linalg.norm(relative, axis=-1).mean(axis=(1, 2)),
        rtol=1e-5,
    )  # fmt: skip
    info = json.loads((tmp_path / "run" / "baseline.json").read_text())
    assert info["chosen_by"] == "gcv" and info["reg_phase"] == metrics["baseline_reg"]
    assert (tmp_path / "run" / "comparison.png").is_file()


def test_demo_rejects_unknown_phantom(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--phantom", "unicorn", "--quiet"]) == 2
    assert "unicorn" in capsys.readouterr().err


def test_resume_into_an_unwritable_run_is_refused_before_compiling(data, tmp_path, monkeypatch,
                                                                    capsys):  # fmt: skip
    # Root writes anywhere, so the folder's refusal is simulated where the check makes it.
    import nstm.runs

    run = tmp_path / "run"
    args = ["reconstruct", "dpc", str(data / "data.npz"), "--out", str(run), "--quiet"]
    assert main([*args, "--steps", "2", *TINY]) == 0

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    def no_training(*args, **kwargs):
        raise AssertionError("trained (compiled) before checking the folder")

    monkeypatch.setattr(nstm.runs.tempfile, "NamedTemporaryFile", denied)
    monkeypatch.setattr(nstm.runs, "fit", no_training)
    capsys.readouterr()
    assert main([*args, "--resume", "--steps", "4"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: --out: cannot write in {run} (permission denied)"
    )


def test_an_internal_error_exits_1_with_its_traceback(monkeypatch, capsys):
    import nstm.cli.main as cli

    def broken(argv):
        raise RuntimeError("an invariant broke")

    monkeypatch.setitem(cli.COMMANDS, "render", broken)
    assert main(["render", "somewhere"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: an invariant broke" in err
    assert err.strip().splitlines()[-1].startswith("internal error: RuntimeError: an invariant")
