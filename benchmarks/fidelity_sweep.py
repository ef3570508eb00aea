"""Sweep training settings on one simulated DPC sample and print PSNR against ground truth.

    python benchmarks/fidelity_sweep.py --size 128 --steps 200 \\
        --variant "lr1e-2:train.scene_lr=1e-2" --variant "lr4e-2:train.scene_lr=4e-2"

Each ``--variant 'name:section.field=value,section.field=value'`` is one run on the same data
(the default preset as it is, named ``default``, always runs first). The tuned Tikhonov
baseline is `nstm.systems.dpc.best_tikhonov_reg`'s.
``--tikhonov-only`` prints the tuned Tikhonov baseline alone (e.g. with ``--image-model linear``
for the ceiling that the linear weak-object model sets).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import numpy as np

from nstm import presets
from nstm.config import with_overrides
from nstm.metrics import psnr_per_frame
from nstm.model import render_scenes
from nstm.runs import RunConfig, build_model
from nstm.systems.dpc import DPC, best_tikhonov_reg
from nstm.systems.dpc.simulation import DPCSimulationConfig, simulate_dpc
from nstm.training import fit


def apply(config: RunConfig, overrides: str) -> RunConfig:
    """``config`` with comma-separated ``section.field=value`` overrides."""
    return with_overrides(config, [item for item in overrides.split(",") if item])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--phantom", default="c-elegans")
    ap.add_argument("--motion", default="elastic")
    ap.add_argument("--max-disp", type=float, default=6.0)
    ap.add_argument("--phase-scale", type=float, default=1.0)
    ap.add_argument("--photons", type=float, default=1e5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image-model", choices=("abbe", "linear"), default="abbe")
    ap.add_argument(
        "--source-convention",
        choices=("led", "wavevector"),
        default="led",
        help="convention the source maps are written and read in (wavevector: nstm 0.1's data)",
    )
    ap.add_argument("--variant", action="append", default=["default:"])
    ap.add_argument("--tikhonov-only", action="store_true", help="no NSTM runs")
    ap.add_argument(
        "--eval-every",
        type=int,
        default=0,
        help="also score every N steps of each run (one schedule over --steps; 0: at the end)",
    )
    args = ap.parse_args()
    sim = DPCSimulationConfig(
        shape=(args.size, args.size),
        phantom=args.phantom,
        motion=args.motion,
        max_displacement_px=args.max_disp,
        phase_scale=args.phase_scale,
        photons_per_pixel=args.photons,
        image_model=args.image_model,
        source_convention=args.source_convention,
        seed=args.seed,
    )
    data, truth = simulate_dpc(sim)
    border = 16
    base = presets.preset("default")
    base = dataclasses.replace(
        base,
        train=dataclasses.replace(base.train, steps=args.steps),
        system=dataclasses.replace(base.system, source_convention=args.source_convention),
    )
    system = DPC.from_data(data, base.system)
    reg, tik = best_tikhonov_reg(system, truth["phase"], border=border)
    print(f"tuned Tikhonov (reg {reg:.1e}) phase PSNR: {np.round(tik, 2).tolist()}")
    for variant in [] if args.tikhonov_only else args.variant:
        name, _, overrides = variant.partition(":")
        config = apply(base, overrides)
        system = DPC.from_data(data, config.system)
        model = build_model(system, config.model, config.train.seed)
        every = args.eval_every or args.steps
        stops = [*range(every, args.steps, every), args.steps]
        with tempfile.TemporaryDirectory() as run_dir:
            t0 = time.perf_counter()
            for stop in stops:  # resumed segments equal one uninterrupted run
                result = fit(
                    model,
                    system,
                    config.train,
                    run_dir=run_dir,
                    resume=stop != stops[0],
                    stop_at=stop,
                    progress=False,
                )
                secs = time.perf_counter() - t0
                rec = system.outputs(
                    render_scenes(result.model, np.asarray(system.measurement_times))
                )
                p = psnr_per_frame(rec["phase"], truth["phase"], border=border)
                a = psnr_per_frame(rec["absorption"], truth["absorption"], border=border)
                at = f" @{stop}" if len(stops) > 1 else ""
                print(
                    f"{name + at:>14}: phase {np.round(p, 2).tolist()} "
                    f"(min-tik {min(p - np.array(tik)):+.2f}) absorption "
                    f"{np.round(a, 1).tolist()} | {secs:.0f} s, "
                    f"final loss {result.history[-1]['loss']:.2e}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
