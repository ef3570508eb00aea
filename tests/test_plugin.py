"""A system from outside nstm, registered only through the ``nstm.systems`` entry-point group,
runs through every command of the real ``nstm`` CLI with no edit to nstm.

The plug-in (``tests/plugin/tiles_plugin.py``) is found through its distribution's
``entry_points.txt`` on the subprocesses' path, as an installed package's would be. Its
measurements are tiles of frames rendered as boxes of the grid, and its outputs are per frame.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PLUGIN = Path(__file__).parent / "plugin"
TINY = ["--model.scene.mlp-width", "16", "--model.scene.log2-table-size", "12"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    path = os.pathsep.join([str(PLUGIN), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cache = tmp_path_factory.mktemp("jax-cache")
    return {**os.environ, "PYTHONPATH": path, "NSTM_CACHE_DIR": str(cache)}


def nstm(env, *args):
    command = [sys.executable, "-m", "nstm.cli", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    return done


def test_plugin_system_runs_through_every_command(env, tmp_path):
    data, run, base = tmp_path / "data", tmp_path / "run", tmp_path / "baseline"
    nstm(env, "simulate", "tiles", "--out", data, "--sim.frames", "3")
    with np.load(data / "truth.npz") as truth:
        assert truth["value"].shape == (3, 32, 32)

    nstm(env, "reconstruct", "tiles", data / "data.npz", "--out", run, "--steps", "30", *TINY,
         "--quiet")  # fmt: skip
    with np.load(run / "reconstruction.npz") as recon:
        # One output per frame (the plug-in's output_times), though 12 tiles were measured.
        assert recon["value"].shape == (3, 32, 32) and recon["motion"].shape == (3, 32, 32, 2)
        np.testing.assert_allclose(recon["times"], [-1, 0, 1])
    # The plug-in's own figure, beside the generic ones.
    assert (run / "figure_tiles.png").is_file() and (run / "comparison.png").is_file()

    nstm(env, "baseline", "tiles", data / "data.npz", "--out", base)
    with np.load(base / "baseline.npz") as baseline, np.load(data / "data.npz") as raw:
        # The plug-in's static reconstruction: the mean frame, reassembled from its tiles.
        np.testing.assert_allclose(baseline["value"], raw["frames"].mean(axis=0), rtol=1e-6)

    nstm(env, "render", run, "--frames", "5")
    with np.load(run / "interpolated.npz") as video:
        assert video["value"].shape == (5, 32, 32)

    done = nstm(env, "demo", "tiles", "--out", tmp_path / "demo", "--size", "32", "--steps",
                "150", "--quiet")  # fmt: skip
    assert "value PSNR per frame (dB)" in done.stdout
    metrics = json.loads((tmp_path / "demo" / "run" / "metrics.json").read_text())
    # The moving scene is recovered better than by the static mean frame, on every frame.
    assert np.all(np.array(metrics["nstm_value_psnr"]) > np.array(metrics["baseline_value_psnr"]))


def test_plugin_is_listed_and_unknown_systems_are_refused(env):
    listed = nstm(env, "--help").stdout.split("SYSTEM is one of:")[1]
    assert "tiles" in listed and "test plug-in" in listed and "dpc" in listed
    command = [sys.executable, "-m", "nstm.cli", "simulate", "nope", "--out", "x"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2 and "'tiles'" in done.stderr and "'dpc'" in done.stderr
