"""The nstm command line.

    nstm reconstruct SYSTEM DATA --out RUN [--preset NAME] [--config FILE] [--steps N]
                                           [--resume] [--overwrite] [--quiet]
    nstm baseline SYSTEM DATA --out DIR [--config FILE] [--overwrite]
    nstm simulate SYSTEM --out DIR [--sim.FIELD VALUE ...] [--overwrite]
    nstm render RUN [--frames N]
    nstm demo [SYSTEM] [--out DIR] [--steps N] [--size N] [--phantom NAME] [--overwrite]

Every field of the run config is also a flag (--train.scene-lr 3e-3,
--model.scene.mlp-width 128, --system.pad-px 32; see nstm reconstruct dpc --help).
Precedence, lowest first: the preset, the --config YAML file, the flags.

--resume continues the run in --out with its saved config; it accepts flags that steer
training from there on (--steps to train more, the learning rates after a divergence, the
outputs' settings) and refuses the others, saying which. Nothing a user wrote is replaced
without --overwrite.

Exit status: 0 on success; 2 for a problem with the input, the options or the files (one line
says what is wrong and what to do); 130 when interrupted (Ctrl-C); 1 for an internal error,
which is a bug in nstm (the traceback is printed).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import re
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import tyro
import yaml

from .. import presets
from ..config import to_dict
from ..runs import (
    OutputsInterrupted,
    RunConfig,
    check_writable,
    evaluate,
    load_run,
    load_run_config,
    reconstruct,
    refuse_overwrite,
    resume_config,
    run_files,
    staged_outputs,
    write_baseline,
    write_video,
)
from ..systems.registry import DemoReport, SystemSpec, available_systems, get_system
from ..training.engine import NonFiniteLossError, TrainingInterrupted

USAGE = __doc__

# Exit codes: the input, options or files are wrong (the user can fix it); interrupted.
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_INTERNAL_ERROR = 1
# What a user can fix: bad values and types in data or options, missing or unwritable files.
USER_ERRORS = (ValueError, TypeError, OSError)


def _run_parser(command: str, system: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"nstm {command} {system}",
        usage=f"nstm {command} {system} DATA --out DIR [options] [run-config flags]",
        add_help=False,  # --help is handled in _parse_run: it also lists the config flags
        description="Options below, plus every run-config field as a flag (listed after them).",
    )
    spec = get_system(system)
    p.add_argument("data", type=Path, help=spec.data_help)
    p.add_argument("--out", type=Path, required=True, help="the run folder")
    names = sorted(presets.available_presets(spec))
    p.add_argument("--preset", help=f"one of {names} (default: default)")
    p.add_argument("--config", type=Path, help="YAML run config (overrides the preset)")
    p.add_argument("--steps", type=int, help="optimizer steps (same as --train.steps)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (it may change --steps, the learning rates and outputs)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the outputs (and run) already in --out instead of refusing",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _tyro_help(config_cls, default, prog: str) -> str:
    """tyro's help for the run-config flags, without its usage line and ``--help`` entry."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):
        tyro.cli(config_cls, args=["--help"], prog=prog, default=default)
    # Paragraphs are separated by blank lines: drop the usage one and the (otherwise empty)
    # "options" box that holds only --help, which the command's own help already lists.
    paragraphs = re.split(r"\n\s*\n", buffer.getvalue())
    kept = [p for p in paragraphs if not p.startswith("usage:") and "-h, --help" not in p]
    return "\n\n".join(kept)


def _resolve_config(system: str, args, rest: list[str], prog: str) -> RunConfig:
    spec = get_system(system)
    if args.config is not None and not args.config.is_file():
        raise FileNotFoundError(f"--config: file not found: {args.config}")
    if args.resume:
        saved_path = args.out / "config.yaml"
        if not saved_path.is_file():
            raise FileNotFoundError(f"--resume: no run to resume in {args.out} (no config.yaml)")
        if args.preset is not None:
            raise ValueError(
                "--resume continues the run's saved config, which --preset would replace; drop "
                "--preset, or start a new run in another folder"
            )
        saved = load_run_config(saved_path, spec.config_cls)
        base = saved
    else:
        base = presets.preset(args.preset or "default", system)
    if args.config is not None:
        base = load_run_config(args.config, spec.config_cls, base=base)
    if args.steps is not None:
        base = dataclasses.replace(base, train=dataclasses.replace(base.train, steps=args.steps))
    config = tyro.cli(RunConfig[spec.config_cls], default=base, args=rest, prog=prog)
    return resume_config(saved, config, spec) if args.resume else config


def _parse_run(command: str, argv: list[str]):
    """(system name, the fixed options, the resolved RunConfig) of a reconstruct/baseline call."""
    system, argv = _system_arg(command, argv)
    parser = _run_parser(command, system)
    prog = f"nstm {command} {system} DATA --out DIR"
    if "-h" in argv or "--help" in argv:  # help needs no DATA or --out
        parser.print_help()
        print("\nRun-config flags (preset < --config < these flags):")
        default = presets.preset("default", system)
        print(_tyro_help(RunConfig[get_system(system).config_cls], default, prog))
        raise SystemExit(0)
    args, rest = parser.parse_known_args(argv)
    return system, args, _resolve_config(system, args, rest, prog)


def cmd_reconstruct(argv: list[str]) -> int:
    system, args, config = _parse_run("reconstruct", argv)
    start = time.perf_counter()
    try:
        _, _, result = reconstruct(
            system,
            args.data,
            args.out,
            config,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    except TrainingInterrupted as err:
        print(f"\n{err}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except NonFiniteLossError as err:
        print(f"error: {_divergence_advice(err, system, args, config)}", file=sys.stderr)
        return EXIT_USER_ERROR
    done = result.step - result.start_step
    trained = (
        f"trained steps {result.start_step}-{result.step} in {result.seconds:.1f} s "
        f"({result.step} steps in {result.total_seconds:.1f} s over the run's calls)"
        if args.resume
        else f"trained {done} steps in {result.seconds:.1f} s"
    )
    print(f"{trained}; total {time.perf_counter() - start:.1f} s. Results in {args.out}/")
    return 0


def _divergence_advice(err: NonFiniteLossError, system: str, args, config: RunConfig) -> str:
    """The divergence message with the command that continues from the kept state."""
    if err.checkpoint_step is None or err.checkpoint_step >= err.step:
        return str(err)
    train = config.train
    command = (
        f"nstm reconstruct {system} {args.data} --out {args.out} --resume "
        f"--train.scene-lr {train.scene_lr / 10:.3g} --train.motion-lr {train.motion_lr / 10:.3g}"
    )
    return (
        f"the loss became non-finite at step {err.step} (training diverged); the state with the "
        f"lowest loss, step {err.checkpoint_step}, is kept in {args.out}. Continue from it with "
        f"lower learning rates: {command}"
    )


def cmd_baseline(argv: list[str]) -> int:
    system, args, config = _parse_run("baseline", argv)
    out = check_writable(args.out)
    if not args.overwrite:
        refuse_overwrite(
            [p for p in run_files(out) if p.name.startswith("baseline")], f"--out {out}"
        )
    sys_obj = get_system(system).load(args.data, config.system)
    with staged_outputs(out) as staging:
        write_baseline(staging, sys_obj)
    info = sys_obj.baseline_info()
    how = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items())
    print(f"conventional reconstruction ({how}) written to {out}/baseline.npz")
    return 0


Sim = TypeVar("Sim")


@dataclasses.dataclass(frozen=True)
class SimulateArgs(Generic[Sim]):
    """Simulate a moving sample and write the data layout that nstm reconstruct reads."""

    out: Path
    """Folder to write: data.npz (the input layout), truth.npz (ground truth) and
    simulation.yaml (these settings)."""
    sim: Sim
    overwrite: bool = False
    """Replace data.npz, truth.npz and simulation.yaml if the folder holds them."""


_SIMULATION_FILES = ("data.npz", "truth.npz", "simulation.yaml")


def _simulation(spec: SystemSpec, command: str):
    if spec.simulation is None:
        raise ValueError(f"nstm {command}: the {spec.name!r} system has no simulator")
    return spec.simulation


def cmd_simulate(argv: list[str]) -> int:
    system, argv = _system_arg("simulate", argv)
    spec = get_system(system)
    simulation = _simulation(spec, "simulate")
    cls = simulation.config_cls
    args = tyro.cli(
        SimulateArgs[cls],
        args=argv,
        prog=f"nstm simulate {system}",
        default=SimulateArgs(out=tyro.MISSING, sim=cls()),
    )
    data_path, truth_path = simulate_to(spec, args.out, args.sim, overwrite=args.overwrite)
    print(f"wrote {data_path} and {truth_path}")
    return 0


def simulate_to(spec: SystemSpec, out: Path, sim, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Simulate with ``spec``'s simulator and write ``data.npz``, ``truth.npz`` and
    ``simulation.yaml`` into ``out``.

    Refuses a folder that holds any of them unless ``overwrite``; checks that it is writable
    before simulating, and moves the files into place only when all are written.
    """
    simulation = _simulation(spec, "simulate")
    out = check_writable(out)
    if not overwrite:
        refuse_overwrite([out / n for n in _SIMULATION_FILES if (out / n).exists()], str(out))
    data, truth = simulation.simulate(sim)
    with staged_outputs(out) as staging:
        simulation.save(staging / "data.npz", data)
        np.savez(staging / "truth.npz", **truth)
        (staging / "simulation.yaml").write_text(yaml.safe_dump(to_dict(sim), sort_keys=False))
    return out / "data.npz", out / "truth.npz"


@dataclasses.dataclass(frozen=True)
class RenderArgs:
    """Render a trained run at evenly spaced times in [-1, 1] (interpolated dynamics)."""

    run: tyro.conf.Positional[Path]
    """The run folder."""
    frames: int = 64
    """Number of times to render."""


def cmd_render(argv: list[str]) -> int:
    args = tyro.cli(RenderArgs, args=argv, prog="nstm render")
    if args.frames < 1:
        raise ValueError(f"--frames: expected at least 1 time to render, got {args.frames}")
    model, system, config = load_run(args.run)
    check_writable(args.run, "RUN")
    with staged_outputs(args.run) as staging:
        path = write_video(staging, system, model, config, num_times=args.frames)
    print(f"rendered {args.frames} times: {args.run}/interpolated.npz and {args.run / path.name}")
    return 0


@dataclasses.dataclass(frozen=True)
class DemoArgs:
    """Simulate a moving sample, reconstruct it with NSTM and the conventional method, and
    report the PSNR of each against ground truth."""

    out: Path = Path("nstm-demo")
    """Folder for the data (data/), the run (run/) and the figures."""
    steps: int | None = None
    """Optimizer steps (default: the default preset's)."""
    size: int | None = None
    """Field of view, pixels per side (default: the system's, 256 for DPC)."""
    phantom: str | None = None
    """Simulated sample (default: the system's; see nstm simulate SYSTEM --help). For DPC the
    default, cells, is a weak phase object (up to 2 rad), for which the linear DPC model that
    both reconstructions use holds."""
    overwrite: bool = False
    """Replace a previous demo's data and run in --out instead of refusing."""
    quiet: bool = False
    """No progress bar."""


# The demo scores without this many pixels at each edge (at most an eighth of the size).
_DEMO_BORDER_PX = 16


def cmd_demo(argv: list[str]) -> int:
    system = "dpc"  # the default: nstm demo [SYSTEM] [options]
    if argv and not argv[0].startswith("-"):
        system, argv = _system_arg("demo", argv)
    spec = get_system(system)
    if spec.demo is None or spec.simulation is None:
        raise ValueError(f"nstm demo: the {system!r} system has no demo")
    args = tyro.cli(DemoArgs, args=argv, prog=f"nstm demo {system}")
    if args.size is not None and args.size < spec.demo.min_size:
        raise ValueError(f"--size: expected at least {spec.demo.min_size} pixels, got {args.size}")
    size = spec.demo.default_size if args.size is None else args.size
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps: expected at least 1, got {args.steps}")
    start = time.perf_counter()
    sim = spec.demo.simulation(size, args.phantom)
    run = args.out / "run"
    config = presets.preset("default", system)
    if args.steps is not None:
        config = dataclasses.replace(
            config, train=dataclasses.replace(config.train, steps=args.steps)
        )
    check_writable(args.out)
    if not args.overwrite:  # before simulating: a refusal must not cost the user minutes
        data_files = [args.out / "data" / n for n in _SIMULATION_FILES]
        refuse_overwrite([p for p in data_files if p.exists()] + run_files(run), str(args.out))
    print(f"simulating {spec.simulation.describe(sim)}")
    data_path, _ = simulate_to(spec, args.out / "data", sim, overwrite=args.overwrite)
    truth = dict(np.load(args.out / "data" / "truth.npz"))
    _, system_obj, _ = reconstruct(
        system, data_path, run, config, overwrite=args.overwrite, progress=not args.quiet
    )
    border = min(_DEMO_BORDER_PX, size // 8)
    channels = tuple(c for c in system_obj.channels if c in truth)
    metrics = evaluate(run, truth, channels, border=border)
    report = spec.demo.report(system_obj, truth, border, run) if spec.demo.report else DemoReport()
    metrics.update(report.metrics)
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    baseline_label = report.baseline_label or "conventional"
    rows: dict[str, list] = {}
    for name in channels:
        rows[f"{name} PSNR per frame (dB)"] = [("NSTM", metrics[f"nstm_{name}_psnr"])]
        if f"baseline_{name}_psnr" in metrics:
            rows[f"{name} PSNR per frame (dB)"].append(
                (baseline_label, metrics[f"baseline_{name}_psnr"])
            )
    if "nstm_motion_epe_px" in metrics:
        rows["motion error per frame (px)"] = [
            ("NSTM", metrics["nstm_motion_epe_px"]),
            ("assuming no motion", metrics["no_motion_epe_px"]),
        ]
    for title, extra in report.rows.items():
        rows.setdefault(title, []).extend(extra)
    width = max(len(label) for lines in rows.values() for label, _ in lines)
    for title, lines in rows.items():
        print(title)
        for label, values in lines:
            print(f"  {label:<{width}} " + " ".join(f"{v:6.2f}" for v in values))
    print(f"done in {time.perf_counter() - start:.0f} s; results (and metrics.json) in {run}/")
    return 0


COMMANDS = {
    "reconstruct": cmd_reconstruct,
    "baseline": cmd_baseline,
    "simulate": cmd_simulate,
    "render": cmd_render,
    "demo": cmd_demo,
}


def _system_arg(command: str, argv: list[str]) -> tuple[str, list[str]]:
    systems = sorted(available_systems())
    if not argv or argv[0].startswith("-"):
        raise ValueError(f"usage: nstm {command} SYSTEM ...; SYSTEM is one of {systems}")
    if argv[0] not in systems:
        raise ValueError(f"unknown system {argv[0]!r}; available: {systems}")
    return argv[0], argv[1:]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nstm`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        print("SYSTEM is one of:")
        for name in sorted(available_systems()):
            try:
                description = get_system(name).description
            except Exception as err:  # a broken plug-in must not hide the others
                description = f"(cannot be loaded: {_one_line(err)})"
            print(f"  {name:<14} {description}")
        return 0
    if argv[0] not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}; one of {sorted(COMMANDS)}", file=sys.stderr)
        return EXIT_USER_ERROR
    with warnings.catch_warnings():  # restores the default display on return
        warnings.showwarning = _show_warning
        return _run(argv)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line for a command-line user, without the source file and code line
    Python shows by default (they say where in nstm, not what to do)."""
    print(f"warning: {_one_line(message)}", file=sys.stderr if file is None else file)


def _run(argv: list[str]) -> int:
    try:
        return COMMANDS[argv[0]](argv[1:])
    except OutputsInterrupted as err:
        print(f"\ninterrupted: {err}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("\ninterrupted (nothing was left half-written)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except USER_ERRORS as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as err:  # a bug: show where, then say so in one line
        traceback.print_exc()
        print(
            f"internal error: {type(err).__name__}: {_one_line(err)} -- a bug in nstm; please "
            "report it with the traceback above",
            file=sys.stderr,
        )
        return EXIT_INTERNAL_ERROR


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
