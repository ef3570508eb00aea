"""Performance benchmark: step time, compile time, memory and time to quality.

Step-time cases
    For each preset and field-of-view shape, a fresh worker process simulates 4 frames of DPC
    data (linear image model, periodic, elastic motion: the content does not matter for timing
    and the Abbe simulator is far too slow at 1024²), builds the system, the model and the
    optimizer exactly as :func:`nstm.training.engine.fit` does, and times the jitted training
    step: the first call (compile), ``--warmup`` untimed steps, then ``--steps`` steps each
    blocked on its result, then ``--pipelined-steps`` steps dispatched back to back and blocked
    once (what the step costs when the host does not wait for each loss). Each case runs in its
    own process so that its peak resident memory is its own.

Quality cases (``--quality``)
    Simulate a moving sample with ``nstm simulate dpc`` (Abbe image formation, non-periodic
    field of view, shot noise), reconstruct it with ``nstm reconstruct dpc ... --preset P``
    timing the whole command (start-up and outputs included), and score the NSTM
    reconstruction, the default Tikhonov baseline and a Tikhonov tuned on ground truth against
    the simulator's ground truth (per-frame PSNR and SSIM, 16 px border, mean removed).

Usage::

    # the default grid: presets paper and default at 128², 256², 512², 1024² and 320x1000
    .venv/bin/python benchmarks/performance.py

    # a few cases, with environment variables for the workers (which otherwise get the nstm
    # command's process tuning: see worker_env)
    .venv/bin/python benchmarks/performance.py --presets paper,default \\
        --shapes 256x256,320x1000 --steps 30 --warmup 3 --env NSTM_NO_XLA_TUNING=1

    # time to quality only (no step-time cases)
    .venv/bin/python benchmarks/performance.py --presets '' --quality \\
        --quality-presets default,paper --quality-shape 256x256

    # a smoke run
    .venv/bin/python benchmarks/performance.py --presets default --shapes 64x64 --steps 3 \\
        --warmup 1 --json-out /tmp/perf-smoke.json

The figures are printed as markdown tables and written, with a description of the machine, to
``--json-out`` (default ``benchmarks/results/performance-<hostname>-<UTC date>.json``). A case
whose worker fails (non-zero exit, killed for memory, timeout) is reported as failed with the
tail of its standard error; the other cases still run.

Memory figures: ``peak_rss_mb`` is the worker's peak resident set size (whole process: Python,
JAX, XLA, data and buffers); on GPU backends ``peak_device_mb`` is the device allocator's peak
(``memory_stats()['peak_bytes_in_use']``), not the memory XLA preallocates.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

DEFAULT_PRESETS = "paper,default"
DEFAULT_SHAPES = "128x128,256x256,512x512,1024x1024,320x1000"
SIM_FRAMES = 4
BORDER_PX = 16
TIKHONOV_REGS = tuple(10.0**e for e in (-5, -4.5, -4, -3.5, -3, -2.5, -2, -1.5, -1))
STDERR_TAIL_LINES = 25
ENV_PREFIXES = ("JAX_", "XLA_", "CUDA_", "NVIDIA_", "OMP_", "MKL_", "OPENBLAS_", "MALLOC_")
ENV_NAMES = ("GLIBC_TUNABLES", "LD_PRELOAD")
WORKER_COMMANDS = ("_worker", "_describe", "_evaluate")


# ---------------------------------------------------------------------------------- parsing
def parse_shape(text: str) -> tuple[int, int]:
    """Parse ``"HxW"`` into ``(H, W)``.

    Raises
    ------
    argparse.ArgumentTypeError
        If ``text`` is not two positive integers joined by ``x``.
    """
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise argparse.ArgumentTypeError(f"expected a shape HxW such as 256x256, got {text!r}")
    return int(match[1]), int(match[2])


def parse_list(text: str) -> list[str]:
    """Split a comma-separated list; an empty string gives an empty list."""
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_assignment(item: str) -> tuple[str, str]:
    """Parse ``KEY=VALUE`` (the value may contain ``=``) into ``(KEY, VALUE)``.

    Raises
    ------
    argparse.ArgumentTypeError
        If ``item`` has no ``=`` or an empty key.
    """
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {item!r}")
    return key, value


def shape_name(shape: Sequence[int]) -> str:
    """``(256, 320) -> "256x320"``."""
    return "x".join(str(n) for n in shape)


# --------------------------------------------------------------------------- child processes
@dataclasses.dataclass
class ChildResult:
    """Outcome of one child process."""

    returncode: int | None
    """Exit status (negative: killed by that signal); None if it timed out."""
    stdout: str
    stderr: str
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_mb: float
    """Peak resident set size of the child, from ``wait4``."""
    timed_out: bool


def maxrss_to_mb(maxrss: float) -> float:
    """Convert ``ru_maxrss`` to MiB (KiB on Linux, bytes on macOS)."""
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024


def run_child(
    cmd: Sequence[str], *, env: dict[str, str], timeout_s: float, cwd: Path
) -> ChildResult:
    """Run ``cmd`` and measure its wall time, CPU time and peak memory.

    The child is reaped with :func:`os.wait4`, so its resource usage is its own (not the
    maximum over every child so far, as ``RUSAGE_CHILDREN`` would give).
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        reaped: dict[str, Any] = {}

        def reap() -> None:
            _, status, usage = os.wait4(proc.pid, 0)
            reaped.update(status=status, usage=usage, end=time.perf_counter())

        waiter = threading.Thread(target=reap, daemon=True)
        waiter.start()
        waiter.join(timeout_s)
        timed_out = waiter.is_alive()
        if timed_out:
            os.kill(proc.pid, signal.SIGKILL)  # not proc.kill(): its poll() could reap the child
            waiter.join()
        status, usage = reaped["status"], reaped["usage"]
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped: tell Popen
        out.seek(0)
        err.seek(0)
        return ChildResult(
            returncode=None if timed_out else proc.returncode,
            stdout=out.read(),
            stderr=err.read(),
            wall_s=reaped["end"] - start,
            user_s=usage.ru_utime,
            sys_s=usage.ru_stime,
            maxrss_mb=maxrss_to_mb(usage.ru_maxrss),
            timed_out=timed_out,
        )


def last_json_line(stdout: str) -> dict[str, Any] | None:
    """The last line of ``stdout`` that parses as a JSON object, if any."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``text`` (at most 4000 characters)."""
    return "\n".join(text.rstrip().splitlines()[-lines:])[-4000:]


def child_figures(child: ChildResult) -> dict[str, Any]:
    """What the parent measured of a child, for the JSON."""
    return {
        "process_wall_s": round(child.wall_s, 3),
        "process_user_s": round(child.user_s, 3),
        "process_sys_s": round(child.sys_s, 3),
        "process_maxrss_mb": round(child.maxrss_mb, 1),
    }


def failure(child: ChildResult, what: str) -> dict[str, Any]:
    """A failed case: why, and the tail of the child's standard error."""
    if child.timed_out:
        reason = f"{what} timed out after {child.wall_s:.0f} s"
    elif child.returncode is not None and child.returncode < 0:
        reason = f"{what} killed by signal {-child.returncode}"
        if child.returncode == -9:
            reason += " (out of memory?)"
    elif child.returncode:
        reason = f"{what} exited with status {child.returncode}"
    else:
        reason = f"{what} printed no result"
    return {
        "status": "failed",
        "error": reason,
        "returncode": child.returncode,
        "stderr_tail": tail(child.stderr) or "(no standard error)",
        **child_figures(child),
    }


def worker_env(overrides: dict[str, str]) -> dict[str, str]:
    """The parent's environment with ``overrides`` applied, then the ``nstm`` command's process
    tuning (glibc huge pages, XLA's memory-minimizing CPU scheduler) where the overrides leave
    it to choose: workers run as the command does. ``--env NSTM_NO_ALLOCATOR_TUNING=1`` or
    ``--env NSTM_NO_XLA_TUNING=1`` turns either off."""
    from nstm.cli.environment import tuned_env

    return tuned_env({**os.environ, **overrides})


def self_command(*args: str) -> list[str]:
    """Command line that runs this script with ``args``."""
    return [sys.executable, str(Path(__file__).resolve()), *args]


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
    cmd = self_command("_worker", *(str(x) for item in options.items() for x in item))
    cmd += [f"--set={item}" for item in args.set]
    child = run_child(cmd, env=env, timeout_s=args.timeout, cwd=repo)
    case = {"kind": "step", "preset": preset, "shape": list(shape)}
    result = last_json_line(child.stdout) if child.returncode == 0 else None
    if result is None:
        return {**case, **failure(child, "worker")}
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
    cmd = self_command("_evaluate", "--sim", str(sim_dir), "--border", str(BORDER_PX))
    for preset, run_dir in runs.items():
        cmd += ["--run", f"{preset}={run_dir}"]
    child = run_child(cmd, env=env, timeout_s=args.timeout, cwd=repo)
    result = last_json_line(child.stdout) if child.returncode == 0 else None
    return result if result is not None else failure(child, "evaluation")


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


# ------------------------------------------------------------------------------- the machine
def read_proc_field(path: str, field: str) -> str | None:
    """The value of the first ``field: value`` line of a /proc file, if readable."""
    try:
        for line in Path(path).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == field:
                return value.strip()
    except OSError:
        return None
    return None


def transparent_hugepage_mode() -> str | None:
    """The kernel's transparent huge page mode (``always``, ``madvise``, ``never``), if known."""
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return None
    match = re.search(r"\[(\w+)\]", text)
    return match[1] if match else None


def git_commit(repo: Path) -> dict[str, Any]:
    """Short commit hash and whether the tree has uncommitted changes (None if unknown)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": bool(status.strip())}


def package_versions(names: Sequence[str]) -> dict[str, str | None]:
    """Installed versions of ``names`` (None when not installed); imports nothing."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def relevant_env(env: dict[str, str]) -> dict[str, str]:
    """Environment variables that can change performance (JAX, XLA, CUDA, threads, malloc)."""
    return {k: v for k, v in sorted(env.items()) if k.startswith(ENV_PREFIXES) or k in ENV_NAMES}


def describe_machine(
    repo: Path, env: dict[str, str], overrides: dict[str, str], timeout_s: float
) -> dict[str, Any]:
    """The machine, the software and the environment; JAX's view comes from a worker."""
    mem_total = read_proc_field("/proc/meminfo", "MemTotal")
    try:
        affinity: int | None = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = None
    machine = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_model": read_proc_field("/proc/cpuinfo", "model name") or platform.processor(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "ram_gb": round(int(mem_total.split()[0]) / 2**20, 2) if mem_total else None,
        "transparent_hugepage": transparent_hugepage_mode(),
        "python": sys.version.split()[0],
        "versions": package_versions(
            ["jax", "jaxlib", "equinox", "optax", "numpy", "jax-cuda12-plugin", "jax-cuda13-plugin"]
        ),
        **git_commit(repo),
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "env_overrides": overrides,
        "env_relevant": relevant_env(env),
    }
    child = run_child(self_command("_describe"), env=env, timeout_s=timeout_s, cwd=repo)
    jax_view = last_json_line(child.stdout) if child.returncode == 0 else None
    machine["jax"] = jax_view if jax_view is not None else failure(child, "jax description")
    return machine


# ------------------------------------------------------------------------------ the report
def fmt(value: Any, scale: float = 1.0, digits: int = 2) -> str:
    """A number for a table cell (``-`` when missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value * scale:.{digits}f}"


def fmt_psnr(values: Sequence[float] | None) -> str:
    """``"mean (min)"`` of per-frame PSNRs."""
    if not values:
        return "-"
    return f"{statistics.fmean(values):.2f} ({min(values):.2f})"


def fmt_ms_spread(seconds: dict[str, float]) -> str:
    """``"median (p10-p90)"`` in milliseconds."""
    return f"{seconds['median'] * 1e3:.1f} ({seconds['p10'] * 1e3:.1f}-{seconds['p90'] * 1e3:.1f})"


def failed_cell(case: dict[str, Any]) -> str:
    """Short status text of a case."""
    if case.get("status") == "ok":
        return "ok"
    return "FAILED: " + case.get("error", "?").replace("|", "/")


def step_table(cases: Sequence[dict[str, Any]]) -> str:
    """Markdown table of the step-time cases."""
    rows = [
        "| preset | shape | status | points/step | setup s | compile s | step ms median "
        "(p10-p90) | min ms | pipelined ms | Mpoints/s | peak RSS MB | RSS before MB "
        "| device peak MB |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in cases:
        ok = c.get("status") == "ok"
        step = fmt_ms_spread(c["step_s"]) if ok else "-"
        rate = c["points_per_step"] / c["step_s"]["median"] / 1e6 if ok else None
        rss = c.get("peak_rss_mb", c.get("process_maxrss_mb"))
        rows.append(
            f"| {c['preset']} | {shape_name(c['shape'])} | {failed_cell(c)} "
            f"| {c.get('points_per_step', '-')} | {fmt(c.get('setup_s'))} "
            f"| {fmt(c.get('compile_s'))} | {step} "
            f"| {fmt(c['step_s']['min'], 1e3, 1) if ok else '-'} "
            f"| {fmt(c.get('pipelined_step_s'), 1e3, 1)} | {fmt(rate)} | {fmt(rss, digits=0)} "
            f"| {fmt(c.get('rss_mb_before_first_step'), digits=0)} "
            f"| {fmt(c.get('peak_device_mb'), digits=0)} |"
        )
    return "\n".join(rows)


def quality_table(cases: Sequence[dict[str, Any]]) -> str:
    """Markdown table of the quality cases (PSNR: mean over frames, worst frame in brackets)."""
    rows = [
        "| preset | shape | status | steps | wall s | train s | NSTM phase PSNR | NSTM phase "
        "SSIM | baseline phase PSNR | tuned Tikhonov phase PSNR | NSTM abs PSNR | baseline abs "
        "PSNR | peak RSS MB |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in cases:
        ssim = c.get("nstm_phase_ssim")
        rows.append(
            f"| {c['preset']} | {shape_name(c['shape'])} | {failed_cell(c)} "
            f"| {c.get('steps', '-')} | {fmt(c.get('wall_s'), digits=1)} "
            f"| {fmt(c.get('train_s'), digits=1)} | {fmt_psnr(c.get('nstm_phase_psnr'))} "
            f"| {fmt(statistics.fmean(ssim), digits=3) if ssim else '-'} "
            f"| {fmt_psnr(c.get('baseline_phase_psnr'))} "
            f"| {fmt_psnr(c.get('tuned_tikhonov_phase_psnr'))} "
            f"| {fmt_psnr(c.get('nstm_absorption_psnr'))} "
            f"| {fmt_psnr(c.get('baseline_absorption_psnr'))} "
            f"| {fmt(c.get('process_maxrss_mb'), digits=0)} |"
        )
    return "\n".join(rows)


def failures_section(cases: Sequence[dict[str, Any]]) -> str:
    """The standard-error tails of the failed cases ('' if none failed)."""
    parts = []
    for c in cases:
        if c.get("status") != "ok":
            title = f"{c['kind']} {c['preset']} {shape_name(c['shape'])}: {c.get('error')}"
            parts.append(f"#### {title}\n\n```\n{c.get('stderr_tail', '')}\n```")
    return "\n\n".join(parts)


def render_report(report: dict[str, Any]) -> str:
    """The markdown printed at the end of a run."""
    machine = report["machine"]
    jax_view = machine.get("jax", {})
    lines = [
        f"## nstm performance — {machine['hostname']}, {machine['date_utc']}",
        "",
        f"{machine['cpu_model']}, {machine['cpu_affinity']}/{machine['cpu_count']} CPUs, "
        f"{machine['ram_gb']} GB; JAX {machine['versions'].get('jax')} "
        f"({jax_view.get('backend', '?')}: "
        f"{jax_view.get('device_kind') or jax_view.get('devices', '?')}); "
        f"commit {machine['git_commit']}{' (dirty)' if machine['git_dirty'] else ''}",
    ]
    if machine["env_overrides"]:
        lines.append(f"env: {machine['env_overrides']}")
    if report["step_cases"]:
        s = report["settings"]
        lines += [
            "",
            f"### Step time ({s['steps']} timed steps after {s['warmup']} warm-up, "
            f"{s['pipelined_steps']} pipelined)",
            "",
            step_table(report["step_cases"]),
        ]
    if report["quality_cases"]:
        tik = report.get("quality_simulation", {}).get("tuned_tikhonov", {})
        lines += [
            "",
            "### Time to quality (PSNR dB: mean over frames (worst frame); border 16 px)",
            "",
            quality_table(report["quality_cases"]),
        ]
        if tik:
            lines.append(f"\ntuned Tikhonov regularization: {tik['reg']:.1e}")
    failed = failures_section(report["step_cases"] + report["quality_cases"])
    if failed:
        lines += ["", "### Failures", "", failed]
    return "\n".join(lines)


def write_json(path: Path, report: dict[str, Any]) -> None:
    """Write ``report`` to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(path)


def default_json_path(repo: Path) -> Path:
    """``benchmarks/results/performance-<hostname>-<UTC date>.json``."""
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    return repo / "benchmarks" / "results" / f"performance-{socket.gethostname()}-{date}.json"


# ----------------------------------------------------------------------------------- parent
def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line."""
    p = argparse.ArgumentParser(
        description="nstm performance benchmark: step time, compile time, memory, time to "
        "quality. See the module docstring for examples.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--presets",
        type=parse_list,
        default=DEFAULT_PRESETS,
        help="presets of the step-time cases, comma-separated ('' for none)",
    )
    p.add_argument(
        "--shapes",
        type=lambda s: [parse_shape(x) for x in parse_list(s)],
        default=DEFAULT_SHAPES,
        help="fields of view HxW of the step-time cases, comma-separated",
    )
    p.add_argument("--steps", type=int, default=30, help="timed steps, each blocked")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps after the first call")
    p.add_argument(
        "--pipelined-steps",
        type=int,
        default=10,
        help="steps dispatched back to back and blocked once (0: skip)",
    )
    p.add_argument("--seed", type=int, default=0, help="simulation seed")
    p.add_argument(
        "--env",
        type=parse_assignment,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment variable for every worker (repeatable)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="run-config override for every case, e.g. train.chunk_points=8192 (repeatable)",
    )
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per child process")
    p.add_argument("--quality", action="store_true", help="also run the time-to-quality cases")
    p.add_argument(
        "--quality-presets", type=parse_list, default="default", help="presets to reconstruct with"
    )
    p.add_argument("--quality-shape", type=parse_shape, default="256x256", help="field of view HxW")
    p.add_argument(
        "--quality-steps", type=int, default=None, help="override the presets' train.steps"
    )
    p.add_argument("--phantom", default="cells", help="phantom of the quality sample")
    p.add_argument(
        "--motion", default="elastic", help="motion of the quality sample ('none': static)"
    )
    p.add_argument("--max-disp", type=float, default=6.0, help="largest displacement, px")
    p.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="keep the quality cases' data and runs in a new folder here (None: a temporary "
        "folder, removed)",
    )
    p.add_argument(
        "--json-out",
        type=Path,
        default=None,
        help="JSON file (None: benchmarks/results/performance-<hostname>-<UTC date>.json)",
    )
    return p


def log_stderr(message: str) -> None:
    """Progress line on standard error."""
    print(f"[performance] {message}", file=sys.stderr, flush=True)


def run_benchmark(
    args: argparse.Namespace, argv: Sequence[str], json_out: Path, repo: Path
) -> dict[str, Any]:
    """Run every case, writing the JSON after each; returns the report."""
    overrides = dict(args.env)
    env = worker_env(overrides)
    report: dict[str, Any] = {
        "benchmark": "nstm performance",
        "schema": 1,
        "argv": list(argv),
        "settings": {
            "presets": args.presets,
            "shapes": [list(s) for s in args.shapes],
            "steps": args.steps,
            "warmup": args.warmup,
            "pipelined_steps": args.pipelined_steps,
            "seed": args.seed,
            "timeout_s": args.timeout,
            "sim_frames": SIM_FRAMES,
        },
        "machine": describe_machine(repo, env, overrides, args.timeout),
        "step_cases": [],
        "quality_cases": [],
    }
    write_json(json_out, report)
    cases = [(p, s) for p in args.presets for s in args.shapes]
    for i, (preset, shape) in enumerate(cases, 1):
        log_stderr(f"[{i}/{len(cases)}] step time: {preset} {shape_name(shape)}")
        case = run_step_case(preset, shape, args, env, repo)
        log_stderr(f"    {failed_cell(case)}")
        report["step_cases"].append(case)
        write_json(json_out, report)
    if args.quality:
        report["settings"].update(
            quality_presets=args.quality_presets,
            quality_shape=list(args.quality_shape),
            quality_steps=args.quality_steps,
        )
        with tempfile.TemporaryDirectory(prefix="nstm-perf-") as tmp:
            work = Path(tmp)
            if args.work_dir is not None:  # kept: a fresh folder inside it for this run
                args.work_dir.mkdir(parents=True, exist_ok=True)
                work = Path(tempfile.mkdtemp(prefix="quality-", dir=args.work_dir))
            simulation, cases_q = run_quality_cases(args, env, repo, work, log_stderr)
        if args.work_dir is not None:
            simulation["work_dir"] = str(work)
        report["quality_simulation"] = simulation
        report["quality_cases"] = cases_q
        write_json(json_out, report)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: the benchmark, or one of the hidden worker commands."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in WORKER_COMMANDS:
        return worker_main(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.pipelined_steps < 0:
        raise SystemExit("error: --steps must be >= 1, --warmup and --pipelined-steps >= 0")
    repo = Path(__file__).resolve().parent.parent
    json_out = args.json_out if args.json_out is not None else default_json_path(repo)
    report = run_benchmark(args, argv, json_out, repo)
    print(render_report(report))
    print(f"\nJSON: {json_out}")
    all_cases = report["step_cases"] + report["quality_cases"]
    return 1 if any(c.get("status") != "ok" for c in all_cases) else 0


# ---------------------------------------------------------------------------------- workers
def worker_main(command: str, argv: Sequence[str]) -> int:
    """Run a hidden worker command and print its result as one JSON line."""
    p = argparse.ArgumentParser(prog=f"performance.py {command}")
    if command == "_worker":
        p.add_argument("--preset", required=True)
        p.add_argument("--shape", type=parse_shape, required=True)
        p.add_argument("--steps", type=int, required=True)
        p.add_argument("--warmup", type=int, required=True)
        p.add_argument("--pipelined-steps", type=int, default=0)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--set", action="append", default=[])
        a = p.parse_args(argv)
        result = measure_step_case(
            a.preset, a.shape, a.steps, a.warmup, a.pipelined_steps, a.seed, a.set
        )
    elif command == "_describe":
        p.parse_args(argv)
        result = describe_jax()
    else:
        p.add_argument("--sim", type=Path, required=True)
        p.add_argument("--run", type=parse_assignment, action="append", default=[])
        p.add_argument("--border", type=int, default=BORDER_PX)
        a = p.parse_args(argv)
        runs = {k: Path(v) for k, v in a.run}
        result = evaluate_quality(a.sim, runs, a.border)
    print(json.dumps(result), flush=True)
    return 0


class CompileLog:
    """Collects JAX's compile-time events (trace, lowering, backend compile) by phase."""

    EVENTS = {
        "/jax/core/compile/jaxpr_trace_duration": "trace",
        "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
        "/jax/core/compile/backend_compile_duration": "backend_compile",
    }

    def __init__(self) -> None:
        self.phase = "setup"
        self.events: list[tuple[str, str, float]] = []

    def __call__(self, event: str, duration: float, **_: Any) -> None:
        if event in self.EVENTS:
            self.events.append((self.phase, self.EVENTS[event], duration))

    def summary(self, phase: str) -> dict[str, Any]:
        """Seconds per kind and the number of backend compilations during ``phase``."""
        out: dict[str, Any] = {f"{k}_s": 0.0 for k in self.EVENTS.values()}
        for ph, kind, duration in self.events:
            if ph == phase:
                out[f"{kind}_s"] += duration
        out = {k: round(v, 4) for k, v in out.items()}
        out["compilations"] = sum(
            1 for ph, kind, _ in self.events if ph == phase and kind == "backend_compile"
        )
        return out


def current_rss_mb() -> float | None:
    """Current resident set size of this process (Linux), in MiB."""
    value = read_proc_field("/proc/self/status", "VmRSS")
    return round(int(value.split()[0]) / 1024, 1) if value else None


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return round(maxrss_to_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss), 1)


def quantiles(samples: Sequence[float]) -> dict[str, float]:
    """Median, 10th and 90th percentiles, min and max of ``samples``."""
    s = sorted(samples)

    def pct(q: float) -> float:  # linear interpolation between closest ranks
        x = q * (len(s) - 1)
        lo = math.floor(x)
        hi = min(lo + 1, len(s) - 1)
        return s[lo] + (s[hi] - s[lo]) * (x - lo)

    return {
        "median": pct(0.5),
        "p10": pct(0.1),
        "p90": pct(0.9),
        "min": s[0],
        "max": s[-1],
        "n": len(s),
    }


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``fn()`` blocked until its arrays are ready, and the seconds it took."""
    import jax

    start = time.perf_counter()
    result = jax.block_until_ready(fn())
    return result, time.perf_counter() - start


def device_memory() -> dict[str, float]:
    """Peak/current/limit of the first device's allocator in MiB (empty on CPU or if unknown)."""
    import jax

    if jax.default_backend() == "cpu":
        return {}
    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # some backends do not implement it
        return {}
    names = {
        "peak_bytes_in_use": "peak_device_mb",
        "bytes_in_use": "device_in_use_mb",
        "bytes_limit": "device_limit_mb",
    }
    return {new: round(stats[old] / 2**20, 1) for old, new in names.items() if old in stats}


def array_megabytes(tree: Any) -> tuple[int, float]:
    """Number of elements and MiB of the arrays in a pytree."""
    import equinox as eqx
    import jax

    leaves = jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))
    return sum(x.size for x in leaves), sum(x.nbytes for x in leaves) / 2**20


class Stepper:
    """Runs the jitted training step on its own state, the way ``fit``'s loop calls it."""

    def __init__(self, train_step: Callable, params: Any, opt_state: Any, system: Any, key: Any):
        import jax.numpy as jnp

        # Onto the step's devices once, as fit does.
        params, opt_state, system = train_step.place((params, opt_state, system))
        self.train_step, self.system, self.key = train_step, system, key
        self.params, self.opt_state, self.stats = params, opt_state, None
        self.step = 0
        self._as_step = lambda step: jnp.asarray(step, jnp.int32)

    def __call__(self) -> tuple[Any, Any, Any]:
        """Dispatch one step (without waiting for it) and return ``(params, opt_state, stats)``."""
        out = self.train_step(
            self.params, self.opt_state, self.system, self._as_step(self.step), self.key
        )
        self.params, self.opt_state, self.stats = out
        self.step += 1
        return out


def build_step_case(
    preset_name: str, shape: tuple[int, int], seed: int, overrides: Sequence[str] = ()
) -> tuple[Stepper, dict[str, Any]]:
    """Worker: simulate data, then build the system, model, optimizer and step as ``fit`` does.

    Returns
    -------
    stepper : Stepper
    figures : dict
        Timings of the simulation, the backend start-up and each part of the set-up, and the
        sizes of the problem.
    """
    import jax
    import jax.numpy as jnp

    from nstm.config import with_overrides
    from nstm.presets import preset
    from nstm.runs import build_model
    from nstm.systems.dpc import DPC
    from nstm.systems.dpc.simulation import DPCSimulationConfig, simulate_dpc
    from nstm.training import make_fit_step
    from nstm.training.engine import initial_params

    config = with_overrides(preset(preset_name), overrides)
    train = config.train
    sim = DPCSimulationConfig(
        shape=shape,
        frames=SIM_FRAMES,
        phantom="cells",
        image_model="linear",
        periodic=True,
        motion="elastic",
        seed=seed,
    )
    (data, _), simulate_s = timed(lambda: simulate_dpc(sim))
    _, backend_init_s = timed(lambda: jnp.zeros(()) + 1)  # backend start-up, not set-up
    system, system_s = timed(lambda: DPC.from_data(data, config.system))
    model, model_s = timed(lambda: build_model(system, config.model, train.seed))

    (train_step, opt_state, key), optimizer_s = timed(lambda: make_fit_step(model, system, train))
    frames_per_step = train.frames_per_step or system.num_measurements
    stepper = Stepper(train_step, initial_params(model, system, train), opt_state, system, key)
    params, params_mb = array_megabytes(model)
    renders = int(system.render_times.shape[1])
    return stepper, {
        "backend": jax.default_backend(),
        "grid_shape": list(system.grid_shape),
        "frames_per_step": frames_per_step,
        "renders_per_frame": renders,
        "chunk_points": train.chunk_points,
        "points_per_step": frames_per_step * renders * math.prod(system.grid_shape),
        "parameters": params,
        "parameters_mb": round(params_mb, 2),
        "optimizer_state_mb": round(array_megabytes(opt_state)[1], 2),
        "simulate_s": round(simulate_s, 4),
        "backend_init_s": round(backend_init_s, 4),
        "setup_s": round(system_s + model_s + optimizer_s, 4),
        "setup_breakdown_s": {
            "system": round(system_s, 4),
            "model": round(model_s, 4),
            "optimizer": round(optimizer_s, 4),
        },
    }


def time_steps(
    stepper: Stepper, steps: int, warmup: int, pipelined_steps: int, log: CompileLog
) -> dict[str, Any]:
    """Worker: time the first call, then ``steps`` blocked steps and ``pipelined_steps``
    back-to-back steps (after ``warmup`` untimed ones)."""
    import jax

    rss_before = current_rss_mb()
    log.phase = "first_call"
    _, first_call_s = timed(stepper)
    rss_after_first = current_rss_mb()
    log.phase = "warmup"
    warmup_s = [timed(stepper)[1] for _ in range(warmup)]
    log.phase = "timed"
    step_s, dispatch_s = [], []
    for _ in range(steps):
        start = time.perf_counter()
        out = stepper()
        dispatch_s.append(time.perf_counter() - start)
        jax.block_until_ready(out)
        step_s.append(time.perf_counter() - start)
    pipelined = None
    if pipelined_steps:
        start = time.perf_counter()
        for _ in range(pipelined_steps):
            out = stepper()
        jax.block_until_ready(out)
        pipelined = round((time.perf_counter() - start) / pipelined_steps, 6)
    q = quantiles(step_s)
    return {
        "first_call_s": round(first_call_s, 4),
        "compile_s": round(first_call_s - q["median"], 4),
        "setup_compile_events": log.summary("setup"),
        "compile_events": log.summary("first_call"),
        "recompilations_after_first_call": sum(
            log.summary(phase)["compilations"] for phase in ("warmup", "timed")
        ),
        "warmup_step_s": [round(s, 5) for s in warmup_s],
        "step_s": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in q.items()},
        "step_s_all": [round(s, 6) for s in step_s],
        "dispatch_s_median": round(statistics.median(dispatch_s), 6),
        "pipelined_step_s": pipelined,
        "final_loss": float(stepper.stats["loss"]),
        "rss_mb_before_first_step": rss_before,
        "rss_mb_after_first_step": rss_after_first,
    }


def measure_step_case(
    preset_name: str,
    shape: tuple[int, int],
    steps: int,
    warmup: int,
    pipelined_steps: int,
    seed: int,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Worker: time set-up, compilation and training steps of one (preset, shape) case.

    The step is built as :func:`nstm.training.engine.fit` builds it; each timed step blocks on
    the new model, optimizer state and statistics.
    """
    import jax

    log = CompileLog()
    jax.monitoring.register_event_duration_secs_listener(log)
    stepper, figures = build_step_case(preset_name, shape, seed, overrides)
    figures.update(time_steps(stepper, steps, warmup, pipelined_steps, log))
    jax.monitoring.unregister_event_duration_listener(log)
    return {
        **figures,
        "rss_mb_end": current_rss_mb(),
        "peak_rss_mb": peak_rss_mb(),
        **device_memory(),
    }


def describe_jax() -> dict[str, Any]:
    """Worker: JAX's backend, devices and versions as seen with the workers' environment."""
    import jax

    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "devices": str(devices),
        "device_kind": getattr(devices[0], "device_kind", None),
        "jax": jax.__version__,
        **device_memory(),
    }


def tuned_tikhonov(system: Any, truth: dict[str, Any], border: int) -> dict[str, Any]:
    """Tikhonov with the regularization (same for both channels) that maximizes the mean phase
    PSNR against ground truth, as ``benchmarks/fidelity_sweep.py`` does.

    Returns
    -------
    dict
        ``reg``, per-frame ``phase_psnr`` and ``absorption_psnr`` at that value, ``seconds``
        for the whole search and ``reg_mean_phase_psnr`` of every value tried.
    """
    import numpy as np

    from nstm.metrics import psnr_per_frame

    start = time.perf_counter()
    best: dict[str, Any] = {"reg": None}
    tried = {}
    for reg in TIKHONOV_REGS:
        rec = dataclasses.replace(system, tikhonov_reg=(reg, reg)).reconstruct_static()
        scores = {
            f"{name}_psnr": psnr_per_frame(
                np.broadcast_to(rec[name], truth[name].shape), truth[name], border=border
            ).tolist()
            for name in ("phase", "absorption")
        }
        tried[f"{reg:.1e}"] = statistics.fmean(scores["phase_psnr"])
        if best["reg"] is None or tried[f"{reg:.1e}"] > statistics.fmean(best["phase_psnr"]):
            best = {"reg": reg, **scores}
    return {**best, "seconds": time.perf_counter() - start, "reg_mean_phase_psnr": tried}


def score(estimate: Any, truth: Any, border: int) -> dict[str, list[float]]:
    """Per-frame PSNR and SSIM of a (frames, H, W) estimate, or an (H, W) one for every frame."""
    import numpy as np

    from nstm.metrics import psnr_per_frame, ssim

    est = np.broadcast_to(estimate, truth.shape)
    return {
        "psnr": psnr_per_frame(est, truth, border=border).tolist(),
        "ssim": [ssim(e, t, border=border) for e, t in zip(est, truth, strict=True)],
    }


def evaluate_quality(sim_dir: Path, runs: dict[str, Path], border: int) -> dict[str, Any]:
    """Worker: score each run's reconstruction and baseline, and a tuned Tikhonov."""
    import numpy as np

    from nstm.systems.dpc import DPCConfig, load_system

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


if __name__ == "__main__":
    sys.exit(main())
