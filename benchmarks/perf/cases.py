"""The parent's side of each case: the worker or ``nstm`` commands it launches, and their figures.

Step-time cases run the ``_worker`` command (`perf.worker`) in a fresh process each, so that
each case's peak memory is its own. Quality cases run ``nstm simulate dpc`` once, then
``nstm reconstruct dpc`` per preset as a user would, then the ``_evaluate`` command
(`perf.scoring`).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import BORDER_PX, shape_name
from .processes import child_figures, failure, run_child, run_worker


# ------------------------------------------------------------------------ step-time cases
def run_step_case(
    preset: str,
    shape: tuple[int, int],
    args: argparse.Namespace,
    env: dict[str, str],
    repo: Path,
) -> dict[str, Any]:
    """Run one step-time case in a fresh worker process and return its figures."""
    options = {
        "--preset": preset,
        "--shape": shape_name(shape),
        "--steps": args.steps,
        "--warmup": args.warmup,
        "--pipelined-steps": args.pipelined_steps,
        "--seed": args.seed,
    }
    cmd = ["_worker", *(str(x) for item in options.items() for x in item)]
    cmd += [f"--set={item}" for item in args.set]
    child, result = run_worker(cmd, "worker", env=env, timeout_s=args.timeout, cwd=repo)
    case = {"kind": "step", "preset": preset, "shape": list(shape)}
    if result.get("status") == "failed":
        return {**case, **result}
    return {**case, "status": "ok", **result, **child_figures(child)}


# ---------------------------------------------------------------------------- quality cases
def nstm_command() -> list[str]:
    """The ``nstm`` command as its console script runs it: ``python -m nstm.cli`` (which tunes
    its process: allocator, compilation cache), or ``python -m nstm.cli.main`` on trees
    without ``nstm/cli/__main__.py``."""
    try:
        whole = importlib.util.find_spec("nstm.cli.__main__") is not None
    except ImportError:
        whole = False
    return [sys.executable, "-m", "nstm.cli" if whole else "nstm.cli.main"]


def cli_env(env: dict[str, str], args: argparse.Namespace, cache: Path) -> tuple[dict, str]:
    """The environment of an ``nstm`` command: its persistent compilation cache in ``cache``
    (new, so cold: a first run) unless ``--env NSTM_CACHE_DIR=...`` chose one.

    Returns
    -------
    env : dict
    description : str
        Which cache the command used, for the JSON.
    """
    if "NSTM_CACHE_DIR" in dict(args.env):
        return env, "set by --env NSTM_CACHE_DIR"
    return {**env, "NSTM_CACHE_DIR": str(cache)}, "cold (an empty NSTM_CACHE_DIR)"


def simulate_quality_data(
    args: argparse.Namespace, env: dict[str, str], repo: Path, work: Path
) -> tuple[Path, dict[str, Any]]:
    """Simulate the quality sample with ``nstm simulate dpc``; returns its folder and figures."""
    sim_dir = work / "sim"
    h, w = args.quality_shape
    cmd = [*nstm_command(), "simulate", "dpc", "--out", str(sim_dir)]
    cmd += ["--sim.shape", str(h), str(w), "--sim.phantom", args.phantom]
    cmd += ["--sim.motion", args.motion, "--sim.max-displacement-px", str(args.max_disp)]
    cmd += ["--sim.seed", str(args.seed)]
    env, _ = cli_env(env, args, work / "jax-cache-simulate")
    child = run_child(cmd, env=env, timeout_s=args.timeout, cwd=repo)
    if child.returncode != 0:
        return sim_dir, failure(child, "nstm simulate dpc")
    return sim_dir, {"status": "ok", "command": cmd[1:], **child_figures(child)}


def run_reconstruction(
    preset: str,
    data: Path,
    args: argparse.Namespace,
    env: dict[str, str],
    repo: Path,
    work: Path,
) -> tuple[Path, dict[str, Any]]:
    """Run ``nstm reconstruct dpc`` with ``preset``; returns the run folder and its figures."""
    run_dir = work / f"run-{preset}"
    cmd = [*nstm_command(), "reconstruct", "dpc", str(data)]
    cmd += ["--out", str(run_dir), "--preset", preset, "--quiet"]
    if args.quality_steps is not None:
        cmd += ["--steps", str(args.quality_steps)]
    cmd += [f"--{item}" for item in args.set]  # the CLI takes every config field as a flag
    env, cache = cli_env(env, args, work / f"jax-cache-{preset}")
    child = run_child(cmd, env=env, timeout_s=args.timeout, cwd=repo)
    if child.returncode != 0:
        return run_dir, failure(child, "nstm reconstruct dpc")
    figures: dict[str, Any] = {"status": "ok", "command": cmd[1:], **child_figures(child)}
    figures["compilation_cache"] = cache
    figures["wall_s"] = figures.pop("process_wall_s")
    match = re.search(r"trained (\d+) steps in ([\d.]+) s", child.stdout)
    if match:
        figures.update(steps=int(match[1]), train_s=float(match[2]))
    return run_dir, figures


def evaluate_runs(
    sim_dir: Path, runs: dict[str, Path], args: argparse.Namespace, env: dict[str, str], repo: Path
) -> dict[str, Any]:
    """Score the runs (and a tuned Tikhonov) against ground truth in a worker process."""
    cmd = ["_evaluate", "--sim", str(sim_dir), "--border", str(BORDER_PX)]
    for preset, run_dir in runs.items():
        cmd += ["--run", f"{preset}={run_dir}"]
    return run_worker(cmd, "evaluation", env=env, timeout_s=args.timeout, cwd=repo)[1]


def run_quality_cases(
    args: argparse.Namespace, env: dict[str, str], repo: Path, work: Path, log: Callable
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Simulate once, reconstruct with each quality preset, evaluate.

    Returns
    -------
    simulation : dict
        How the data were simulated (and the tuned Tikhonov's figures).
    cases : list of dict
        One per preset.
    """
    shape = list(args.quality_shape)
    log(f"quality: simulating {shape_name(shape)} ({args.phantom}, Abbe, shot noise)")
    sim_dir, simulation = simulate_quality_data(args, env, repo, work)
    simulation.update(shape=shape, phantom=args.phantom, max_disp_px=args.max_disp)
    base = {"kind": "quality", "shape": shape, "phantom": args.phantom}
    if simulation["status"] != "ok":
        failed = {"status": "failed", "error": "simulation failed: " + simulation["error"]}
        failed["stderr_tail"] = simulation["stderr_tail"]
        return simulation, [{**base, "preset": p, **failed} for p in args.quality_presets]
    cases, runs = [], {}
    for preset in args.quality_presets:
        log(f"quality: nstm reconstruct dpc --preset {preset}")
        run_dir, figures = run_reconstruction(preset, sim_dir / "data.npz", args, env, repo, work)
        cases.append({**base, "preset": preset, **figures})
        if figures["status"] == "ok":
            runs[preset] = run_dir
    log("quality: scoring against ground truth (and tuning Tikhonov)")
    scores = evaluate_runs(sim_dir, runs, args, env, repo)
    if scores.get("status") == "failed":
        for case in cases:
            if case["status"] == "ok":
                case.update(status="failed", error=scores["error"])
                case["stderr_tail"] = scores["stderr_tail"]
        return simulation, cases
    simulation["tuned_tikhonov"] = scores["tuned_tikhonov"]
    for case in cases:
        if case["preset"] in scores["runs"]:
            case.update(scores["runs"][case["preset"]])
            case["tuned_tikhonov_phase_psnr"] = scores["tuned_tikhonov"]["phase_psnr"]
    return simulation, cases
