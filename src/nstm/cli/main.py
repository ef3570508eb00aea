"""The ``nstm`` command line.

    nstm reconstruct dpc DATA --out RUN [--preset NAME] [--config FILE] [--steps N] [--resume]
    nstm baseline dpc DATA --out RUN [--config FILE]
    nstm simulate dpc --out DIR [--shape H W] [--motion elastic] ...
    nstm render RUN [--frames N]
    nstm demo [--out DIR] [--steps N]

Every field of the run config is also a flag (``--train.scene-lr 3e-3``,
``--model.scene.mlp-width 128``, ``--system.pad-px 32``; see ``--help``). Precedence, lowest
first: the preset, the ``--config`` YAML file, the flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import tyro

from .. import presets
from ..config import save_yaml
from ..runs import RunConfig, evaluate, load_run, load_run_config, reconstruct, write_baseline
from ..simulation.dpc import DPCSimulationConfig, simulate_dpc
from ..systems.registry import available_systems, get_system
from ..training.engine import NonFiniteLossError, TrainingInterrupted

USAGE = __doc__


def _run_parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"nstm {command} SYSTEM",
        add_help=False,  # --help is handled in _parse_run: it also lists the config flags
        description="Options below plus every run-config field as a flag (shown after).",
    )
    p.add_argument("data", type=Path, help="measurements: .npz (keys img, s, ...) or TIFF stack")
    p.add_argument("--out", type=Path, required=True, help="run folder to write")
    p.add_argument("--preset", default="default", help=f"one of {sorted(presets.PRESETS)}")
    p.add_argument("--config", type=Path, help="YAML run config (overrides the preset)")
    p.add_argument("--steps", type=int, help="optimizer steps (same as --train.steps)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _resolve_config(system: str, args, rest: list[str], prog: str) -> RunConfig:
    spec = get_system(system)
    if args.resume:
        saved = args.out / "config.yaml"
        if not saved.is_file():
            raise SystemExit(f"error: --resume: no run to resume in {args.out} (no config.yaml)")
        if rest or args.config or args.steps:
            raise SystemExit("error: --resume continues the saved config; drop other options")
        return load_run_config(saved, spec.config_cls)
    config = presets.preset(args.preset, system)
    if args.config is not None:
        config = load_run_config(args.config, spec.config_cls, base=config)
    if args.steps is not None:
        config = dataclasses.replace(
            config, train=dataclasses.replace(config.train, steps=args.steps)
        )
    return tyro.cli(RunConfig[spec.config_cls], default=config, args=rest, prog=prog)


def _parse_run(command: str, argv: list[str]):
    """(system name, the fixed options, the resolved RunConfig) of a reconstruct/baseline call."""
    system, argv = _system_arg(command, argv)
    parser = _run_parser(command)
    prog = f"nstm {command} {system} DATA --out RUN"
    if "-h" in argv or "--help" in argv:  # help needs no DATA or --out
        parser.print_help()
        print("\nRun-config options (preset < --config < these flags):")
        tyro.cli(
            RunConfig[get_system(system).config_cls],
            args=["--help"],
            prog=prog,
            default=presets.preset("default", system),
        )
    args, rest = parser.parse_known_args(argv)
    return system, args, _resolve_config(system, args, rest, prog)


def cmd_reconstruct(argv: list[str]) -> int:
    system, args, config = _parse_run("reconstruct", argv)
    start = time.perf_counter()
    try:
        _, _, result = reconstruct(
            system, args.data, args.out, config, resume=args.resume, progress=not args.quiet
        )
    except TrainingInterrupted as err:
        print(f"\n{err}", file=sys.stderr)
        return 130
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(
        f"trained {result.step} steps in {result.seconds:.1f} s; total "
        f"{time.perf_counter() - start:.1f} s. Results in {args.out}/"
    )
    return 0


def cmd_baseline(argv: list[str]) -> int:
    system, args, config = _parse_run("baseline", argv)
    sys_obj = get_system(system).load(args.data, config.system)
    write_baseline(args.out, sys_obj)
    print(f"conventional reconstruction written to {args.out}/baseline.npz")
    return 0


@dataclasses.dataclass(frozen=True)
class SimulateArgs:
    """Simulate a moving sample and write the data layout ``nstm reconstruct`` reads."""

    out: Path
    """Folder to write: data.npz (the input layout) and truth.npz (ground truth)."""
    sim: DPCSimulationConfig = DPCSimulationConfig()


def cmd_simulate(argv: list[str]) -> int:
    system, argv = _system_arg("simulate", argv)
    if system != "dpc":
        raise SystemExit(f"error: nstm simulate supports 'dpc' so far, got {system!r}")
    args = tyro.cli(SimulateArgs, args=argv, prog="nstm simulate dpc")
    data_path, truth_path = simulate_to(args.out, args.sim)
    print(f"wrote {data_path} and {truth_path}")
    return 0


def simulate_to(out: Path, sim: DPCSimulationConfig) -> tuple[Path, Path]:
    """Simulate and write ``data.npz``, ``truth.npz`` and ``simulation.yaml`` into ``out``."""
    from ..io.dpc_data import save_dpc

    data, truth = simulate_dpc(sim)
    out.mkdir(parents=True, exist_ok=True)
    save_dpc(out / "data.npz", data)
    np.savez(out / "truth.npz", **truth)
    save_yaml(sim, out / "simulation.yaml")
    return out / "data.npz", out / "truth.npz"


@dataclasses.dataclass(frozen=True)
class RenderArgs:
    """Render a trained run at evenly spaced times in [-1, 1] (interpolated dynamics)."""

    run: tyro.conf.Positional[Path]
    """The run folder."""
    frames: int = 64
    """Number of times to render."""


def cmd_render(argv: list[str]) -> int:
    from ..runs import write_video

    args = tyro.cli(RenderArgs, args=argv, prog="nstm render")
    model, system, config = load_run(args.run)
    path = write_video(args.run, system, model, config, num_times=args.frames)
    print(f"rendered {args.frames} times: {args.run}/interpolated.npz and {path}")
    return 0


@dataclasses.dataclass(frozen=True)
class DemoArgs:
    """Simulate a moving sample, reconstruct it with NSTM and the conventional method, and
    report the PSNR of each against ground truth."""

    out: Path = Path("nstm-demo")
    """Folder for the data, the run and the figures."""
    steps: int | None = None
    """Optimizer steps (default: the default preset's)."""
    size: int = 256
    """Field of view, pixels per side."""
    phantom: str = "cells"
    """Simulated sample (see ``nstm simulate dpc --help``); ``cells`` is a weak phase object
    (up to 2 rad), for which the linear DPC model that both reconstructions use holds."""
    quiet: bool = False
    """No progress bar."""


def cmd_demo(argv: list[str]) -> int:
    args = tyro.cli(DemoArgs, args=argv, prog="nstm demo")
    start = time.perf_counter()
    sim = DPCSimulationConfig(shape=(args.size, args.size), phantom=args.phantom)
    print(
        f"simulating a {sim.frames} x {args.size} x {args.size} DPC sample "
        f"({sim.phantom}, {sim.motion} motion up to {sim.max_displacement_px} px, Abbe, shot noise)"
    )
    data_path, _ = simulate_to(args.out / "data", sim)
    truth = dict(np.load(args.out / "data" / "truth.npz"))
    config = presets.preset("default", "dpc")
    if args.steps is not None:
        config = dataclasses.replace(
            config, train=dataclasses.replace(config.train, steps=args.steps)
        )
    run = args.out / "run"
    if (run / "checkpoint.eqx").exists():
        import shutil

        shutil.rmtree(run)
    reconstruct("dpc", data_path, run, config, progress=not args.quiet)
    metrics = evaluate(run, truth, ("absorption", "phase"))  # also written to metrics.json
    for name in ("phase", "absorption"):
        n, b = metrics[f"nstm_{name}_psnr"], metrics[f"baseline_{name}_psnr"]
        print(
            f"{name:>10} PSNR per frame (dB): NSTM "
            + " ".join(f"{v:5.1f}" for v in n)
            + " | conventional "
            + " ".join(f"{v:5.1f}" for v in b)
        )
    if "nstm_motion_epe_px" in metrics:
        print(
            "motion error per frame (px): NSTM "
            + " ".join(f"{v:5.2f}" for v in metrics["nstm_motion_epe_px"])
            + " | assuming no motion "
            + " ".join(f"{v:5.2f}" for v in metrics["no_motion_epe_px"])
        )
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
        raise SystemExit(f"usage: nstm {command} SYSTEM ...; SYSTEM is one of {systems}")
    if argv[0] not in systems:
        raise SystemExit(f"error: unknown system {argv[0]!r}; available: {systems}")
    return argv[0], argv[1:]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nstm`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if argv[0] not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}; one of {sorted(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[argv[0]](argv[1:])
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
