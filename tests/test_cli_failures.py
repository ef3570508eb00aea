"""Every way a command can fail ends in one clear line and the right exit status, and nothing a
user wrote is lost or overwritten: the real ``nstm`` command, run as a subprocess.

Exit status: 2 for a problem the user can fix (input, options, files), 130 when interrupted,
1 for an internal error (a bug).
"""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nstm.systems.dpc.data import save_dpc
from nstm.systems.dpc.simulation import DPCSimulationConfig, simulate_dpc

TINY = ["--model.scene.mlp-width", "16", "--model.scene.log2-table-size", "12"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("jax-cache")  # shared by this module's subprocesses
    return {**os.environ, "NSTM_CACHE_DIR": str(cache), "PYTHONWARNINGS": "ignore"}


def nstm(env, *args, timeout=300):
    command = [sys.executable, "-m", "nstm.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def assert_user_error(done, *fragments):
    """Exit 2 with one line on stderr, ``error: ...``, holding every fragment; no traceback."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    sim = DPCSimulationConfig(shape=(32, 40), canvas_margin_px=8)
    measured, _ = simulate_dpc(sim)
    save_dpc(folder / "data.npz", measured)
    other, _ = simulate_dpc(DPCSimulationConfig(shape=(32, 40), canvas_margin_px=8, seed=1))
    save_dpc(folder / "other.npz", other)
    return folder


# --------------------------------------------------------------------------------------------
# unreadable input
# --------------------------------------------------------------------------------------------
def bad_files(folder: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """Broken inputs and the words their error must contain."""
    with np.load(good) as archive:
        arrays = {key: archive[key] for key in archive.files}
    made = {}
    (folder / "empty.npz").write_bytes(b"")
    made["empty"] = (folder / "empty.npz", "the file is empty")
    (folder / "truncated.npz").write_bytes(good.read_bytes()[:300])
    made["truncated"] = (folder / "truncated.npz", "truncated or corrupt")
    np.save(folder / "single.npy", arrays["img"])
    (folder / "single.npy").rename(folder / "renamed.npz")
    made["npy renamed"] = (folder / "renamed.npz", "single .npy array")
    (folder / "text.npz").write_text("img,s\n1,2\n")
    made["text"] = (folder / "text.npz", "not a zip archive")
    (folder / "folder.npz").mkdir()
    made["folder"] = (folder / "folder.npz", "is a folder")
    np.savez(folder / "complex.npz", **{**arrays, "img": arrays["img"].astype(np.complex64)})
    made["complex img"] = (folder / "complex.npz", "img: expected a real-valued")
    np.savez(folder / "textwl.npz", **{**arrays, "wavelength": np.str_("0.525")})
    made["text wavelength"] = (folder / "textwl.npz", "wavelength: expected a number")
    return made


def test_unreadable_inputs_are_one_line_errors(env, data, tmp_path):
    for kind, (path, words) in bad_files(tmp_path, data / "data.npz").items():
        done = nstm(env, "baseline", "dpc", path, "--out", tmp_path / "out")
        assert_user_error(done, str(path.name), words)
        assert not (tmp_path / "out" / "baseline.npz").exists(), kind


def test_malformed_config_file_is_a_one_line_error(env, data, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  steps: [1\n")
    done = nstm(env, "reconstruct", "dpc", data / "data.npz", "--out", tmp_path / "run",
                "--config", config)  # fmt: skip
    assert_user_error(done, "c.yaml: not valid YAML at line 3")
    done = nstm(env, "reconstruct", "dpc", data / "data.npz", "--out", tmp_path / "run",
                "--config", tmp_path / "missing.yaml")  # fmt: skip
    assert_user_error(done, "--config: file not found")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "flag, value, field",
    [
        ("--steps", "0", "train.steps must be >= 1"),
        ("--train.anneal-fraction", "2", "train.anneal_fraction must be in [0, 1]"),
        ("--model.scene.mlp-width", "0", "model.scene.mlp_width must be an integer >= 1"),
    ],
)
def test_bad_configuration_is_refused_before_anything_is_written(env, data, tmp_path, flag,
                                                                  value, field):  # fmt: skip
    run = tmp_path / "run"
    done = nstm(env, "reconstruct", "dpc", data / "data.npz", "--out", run, *TINY, flag, value)
    assert_user_error(done, field)
    assert not run.exists()  # nothing written, not even the folder


# --------------------------------------------------------------------------------------------
# unwritable outputs
# --------------------------------------------------------------------------------------------
def unwritable_folder(tmp_path: Path) -> Path:
    """An existing folder in which nobody, root included, can create files."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    if sys.platform.startswith("linux") and Path("/sys/kernel").is_dir():
        return Path("/sys/kernel")  # sysfs: no regular files can be created, even by root
    pytest.skip("no folder that root cannot write to on this system")


def test_unwritable_output_folders_are_refused_before_any_work(env, data, tmp_path):
    regular = tmp_path / "a-file"
    regular.write_text("mine")
    locked = unwritable_folder(tmp_path)
    cases = [
        (regular / "run", "a-file is a file, not a folder"),
        (regular, "exists and is not a folder"),
        (locked, "permission denied"),
        (locked / "run", "--out"),
    ]
    for out, words in cases:
        done = nstm(env, "reconstruct", "dpc", data / "data.npz", "--out", out, *TINY)
        assert_user_error(done, words)
        assert "compiling" not in done.stderr  # refused before the step was built
    done = nstm(env, "simulate", "dpc", "--out", locked, "--sim.shape", "16", "16")
    assert_user_error(done, "permission denied")
    assert regular.read_text() == "mine"


# --------------------------------------------------------------------------------------------
# nothing overwritten without --overwrite
# --------------------------------------------------------------------------------------------
def test_simulate_and_baseline_refuse_to_overwrite(env, data, tmp_path):
    sim = ["simulate", "dpc", "--out", tmp_path, "--sim.shape", "16", "20"]
    assert nstm(env, *sim).returncode == 0
    before = (tmp_path / "data.npz").read_bytes()
    assert_user_error(nstm(env, *sim, "--sim.seed", "5"), "data.npz", "--overwrite")
    assert (tmp_path / "data.npz").read_bytes() == before
    assert nstm(env, *sim, "--sim.seed", "5", "--overwrite").returncode == 0
    assert (tmp_path / "data.npz").read_bytes() != before

    base = ["baseline", "dpc", data / "data.npz", "--out", tmp_path / "b"]
    assert nstm(env, *base).returncode == 0
    (tmp_path / "b" / "baseline.npz").write_bytes(b"the user's")
    assert_user_error(nstm(env, *base), "baseline.npz", "--overwrite")
    assert (tmp_path / "b" / "baseline.npz").read_bytes() == b"the user's"
    assert nstm(env, *base, "--overwrite").returncode == 0
    with np.load(tmp_path / "b" / "baseline.npz") as baseline:
        assert baseline["phase"].shape == (32, 40)


def test_demo_keeps_a_users_files_and_refuses_an_earlier_demo(env, tmp_path):
    demo = ["demo", "--out", tmp_path, "--size", "32", "--steps", "2", "--quiet"]
    (tmp_path / "run").mkdir(parents=True)
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert nstm(env, *demo).returncode == 0  # a user's own file alone is not an earlier demo
    with np.load(tmp_path / "run" / "reconstruction.npz") as first:
        first_phase = first["phase"]
    assert_user_error(nstm(env, *demo), "--overwrite")
    done = nstm(env, *demo[:-3], "--steps", "3", "--quiet", "--overwrite")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"
    assert json.loads((tmp_path / "run" / "timing.json").read_text())["steps"] == 3
    with np.load(tmp_path / "run" / "reconstruction.npz") as second:
        assert not np.array_equal(second["phase"], first_phase)


# --------------------------------------------------------------------------------------------
# resume: the same data and model, more steps or other learning rates
# --------------------------------------------------------------------------------------------
def test_resume_checks_what_it_cannot_change_and_trains_more(env, data, tmp_path):
    run = tmp_path / "run"
    args = ["reconstruct", "dpc", data / "data.npz", "--out", run, "--quiet"]
    assert nstm(env, *args, "--steps", "4", *TINY).returncode == 0
    assert_user_error(
        nstm(env, *args[:2], data / "other.npz", *args[3:], "--resume"),
        "other.npz is not the data this run was trained on",
    )
    assert_user_error(nstm(env, *args, "--resume", "--preset", "paper"), "--preset")
    assert_user_error(
        nstm(env, *args, "--resume", "--model.scene.mlp-width", "32"),
        "model.scene.mlp_width (the run's 16, given 32)",
    )
    assert_user_error(nstm(env, *args, "--resume", "--steps", "2"), "already trained 4 steps")
    # Training more than planned: the schedules keep the first plan (4 steps).
    done = nstm(env, *args, "--resume", "--steps", "7", "--train.scene-lr", "0.01")
    assert done.returncode == 0, done.stderr
    assert re.search(r"trained steps 4-7 in [\d.]+ s \(7 steps in [\d.]+ s", done.stdout)
    saved = (run / "config.yaml").read_text()
    assert "steps: 7" in saved and "schedule_steps: 4" in saved and "scene_lr: 0.01" in saved
    timing = json.loads((run / "timing.json").read_text())
    assert timing["steps"] == 7 and timing["steps_this_call"] == 3
    assert timing["train_s"] > timing["train_s_this_call"] > 0
    assert (run / "loss.csv").read_text().splitlines()[-1].startswith("7,")


def test_divergence_advice_continues_the_run(env, data, tmp_path):
    run = tmp_path / "run"
    args = ["reconstruct", "dpc", data / "data.npz", "--out", run, "--quiet", *TINY]
    done = nstm(env, *args, "--steps", "30", "--train.scene-lr", "1e7", "--train.motion-lr", "1e7")
    assert_user_error(done, "training diverged", "--resume --train.scene-lr 1e+06")
    kept = int(re.search(r"lowest loss, step (\d+)", done.stderr).group(1))
    command = done.stderr.split("learning rates: ", 1)[1].split()
    assert command[:2] == ["nstm", "reconstruct"] and "--resume" in command
    # The advised command, with rates low enough for this sample, continues to the end.
    command = command[1:]  # without "nstm"
    command[command.index("--train.scene-lr") + 1] = "1e-2"
    command[command.index("--train.motion-lr") + 1] = "1e-3"
    done = nstm(env, *command)
    assert done.returncode == 0, done.stderr
    assert f"trained steps {kept}-30" in done.stdout
    with np.load(run / "reconstruction.npz") as recon:
        assert np.isfinite(recon["phase"]).all()


# --------------------------------------------------------------------------------------------
# Ctrl-C while the outputs are written
# --------------------------------------------------------------------------------------------
def test_ctrl_c_while_writing_outputs_leaves_no_partial_outputs(env, data, tmp_path):
    run = tmp_path / "run"
    args = ["reconstruct", "dpc", data / "data.npz", "--out", run, "--steps", "3", *TINY]
    # The real command, with its video writer made to announce itself and wait, so that the
    # signal lands inside the output writing however fast the machine (a timed wait was flaky).
    # Python leaves SIGINT ignored when it starts ignored (a job started with & by a
    # non-interactive shell, as CI scripts may be): restore Ctrl-C's handler, as a terminal has.
    held_writer = (
        "import signal, sys, time, nstm.runs\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "def held(*args, **kwargs):\n"
        "    print('HELD IN THE VIDEO WRITER', file=sys.stderr, flush=True)\n"
        "    time.sleep(120)\n"
        "nstm.runs.save_video = held\n"
        # In this process: the console entry point re-execs (allocator), dropping the patch.
        "from nstm.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    command = [sys.executable, "-c", held_writer, *map(str, args)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    seen = ""
    while "HELD IN THE VIDEO WRITER" not in seen:
        line = process.stderr.readline()
        assert line, f"the run ended before writing its video: {seen}"
        seen += line
    assert "writing the outputs" in seen
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(timeout=120) == 130, seen + rest
    assert "Traceback" not in rest
    assert "interrupted: Ctrl-C while the outputs were written" in rest
    assert "--resume" in rest
    names = {p.name for p in run.iterdir()}
    assert "checkpoint.eqx" in names and "reconstruction.npz" not in names
    assert not [n for n in names if n.startswith(".nstm-outputs-")]  # no staging left over
    # --resume writes them (fewer frames: the outputs' settings may change on resume).
    done = nstm(env, *args, "--resume", "--quiet", "--render.interpolated-frames", "8")
    assert done.returncode == 0, done.stderr
    with np.load(run / "interpolated.npz") as video:
        assert video["phase"].shape[0] == 8
    assert (run / "reconstruction.npz").is_file() and (run / "comparison.png").is_file()


# --------------------------------------------------------------------------------------------
# help text
# --------------------------------------------------------------------------------------------
def test_help_names_only_real_options_in_plain_text(env):
    general = nstm(env, "--help")
    assert general.returncode == 0 and "--sim.FIELD" in general.stdout
    assert "motion-blur" in general.stdout.split("SYSTEM is one of:")[1]
    assert "``" not in general.stdout and "Exit status: 0" in general.stdout
    assert not re.search(r"(?<![.\w-])--shape\b", general.stdout)
    helps = {}
    for system in ("dpc", "motion-blur"):
        for command in ("reconstruct", "simulate"):
            done = nstm(env, command, system, "--help")
            assert done.returncode == 0, done.stderr
            assert done.stdout.count("usage:") == 1, done.stdout[:400]
            assert "SYSTEM" not in done.stdout and ":class:" not in done.stdout
            assert "``" not in done.stdout, (system, command)
            helps[system, command] = done.stdout
    assert "exposure" in helps["motion-blur", "reconstruct"].split("Run-config flags")[0]
    # reconstruct's own options list --help; the run-config flags after them do not again.
    own, flags = helps["dpc", "reconstruct"].split("Run-config flags", 1)
    assert "--resume" in own and "--system.source-convention" in flags
    assert "-h, --help" not in flags


# --------------------------------------------------------------------------------------------
# warnings
# --------------------------------------------------------------------------------------------
def test_a_warning_reaches_the_user_as_one_line(env, data, tmp_path):
    with np.load(data / "data.npz") as npz:
        arrays = dict(npz)
    np.savez(tmp_path / "extra.npz", **arrays, notes=np.zeros(3))
    quiet = {k: v for k, v in env.items() if k != "PYTHONWARNINGS"}  # Python's default display
    done = nstm(quiet, "baseline", "dpc", tmp_path / "extra.npz", "--out", tmp_path / "b")
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "notes" in line]
    assert warned == [
        "warning: extra.npz: ignoring keys ['notes'] (DPC keys are "
        "['img', 's', 'times', 'wavelength', 'pixel_size', 'na'])"
    ], done.stderr
    assert ".py:" not in done.stderr and "UserWarning" not in done.stderr
