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
    reconstruction, the conventional (Tikhonov) reconstruction the run wrote and one tuned on
    ground truth (`nstm.systems.dpc.best_tikhonov_reg`) against the simulator's ground truth
    (per-frame PSNR and SSIM, 16 px border, mean removed).

Usage::

    # the default grid: presets paper and default at 128², 256², 512², 1024² and 320x1000
    .venv/bin/python benchmarks/performance.py

    # a few cases, with environment variables for the workers (which otherwise get the nstm
    # command's process tuning: see perf.processes.worker_env)
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

The parts live in ``benchmarks/perf/``: this script parses the command line and runs the cases
(`perf.cases`: one child process per case, `perf.processes`), the workers build and time a case
(`perf.worker`) or score one (`perf.scoring`), and `perf.report` writes the tables and the JSON.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from perf.cases import run_quality_cases, run_step_case
from perf.common import SIM_FRAMES, parse_assignment, parse_list, parse_shape, shape_name
from perf.machine import describe_machine
from perf.processes import worker_env
from perf.report import default_json_path, failed_cell, render_report, write_json
from perf.worker import WORKER_COMMANDS, worker_main

DEFAULT_PRESETS = "paper,default"
DEFAULT_SHAPES = "128x128,256x256,512x512,1024x1024,320x1000"


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


if __name__ == "__main__":
    sys.exit(main())
