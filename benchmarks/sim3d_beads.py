"""3D SIM on simulated beads: lateral bead FWHM and localization error of NSTM, the Wiener
reconstruction and the widefield image, static or moving.

    python benchmarks/sim3d_beads.py --size 32 --steps 200 --motion none
    python benchmarks/sim3d_beads.py --size 32 --steps 200 --motion translation

Prints one line per method (median over the isolated beads, at the middle stack's time) and the
training time; figures and their dates go to benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from nstm.config import ModelConfig, TrainConfig
from nstm.runs import build_model
from nstm.systems.sim3d import SIM3D, SIM3DSimulationConfig, bead_scores, simulate_sim3d
from nstm.training import fit


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=32, help="raw pixels per lateral side")
    ap.add_argument("--planes", type=int, default=8, help="raw planes")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--frames-per-step", type=int, default=3)
    ap.add_argument("--scene-lr", type=float, default=4e-2)
    ap.add_argument("--motion", default="none", help="none, translation or brownian")
    ap.add_argument("--max-disp", type=float, default=2.0, help="raw pixels")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    sim = SIM3DSimulationConfig(
        shape=(args.planes, args.size, args.size), motion=args.motion,
        max_displacement_px=args.max_disp, seed=args.seed,
    )  # fmt: skip
    data, truth = simulate_sim3d(sim)
    system = SIM3D.from_data(data)
    config = TrainConfig(
        steps=args.steps, frames_per_step=args.frames_per_step, scene_lr=args.scene_lr
    )
    model = build_model(system, ModelConfig(), config.seed)
    start = time.perf_counter()
    result = fit(model, system, config, progress=False)
    seconds = time.perf_counter() - start
    middle = len(system.output_times) // 2
    t = system.output_times[middle : middle + 1]
    nstm = system.outputs(np.asarray(result.model.render(t, alpha=1.0)))["volume"][0]
    baseline = system.reconstruct_static()
    positions = truth["bead_pos_um"][middle]
    print(f"sim3d beads {args.planes}x{args.size}x{args.size}, motion {args.motion}, "
          f"{args.steps} steps in {seconds:.0f} s")  # fmt: skip
    for name, volume in (
        ("NSTM", nstm),
        ("Wiener", baseline["volume"]),
        ("widefield", baseline["widefield"]),
    ):
        fwhm, error = bead_scores(volume, positions, system.spacing_um)
        print(f"  {name:<10} lateral FWHM {fwhm:6.1f} nm   localization error {error:6.1f} nm")


if __name__ == "__main__":
    main()
