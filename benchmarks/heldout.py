"""Held-out evaluation of nstm's defaults on DPC samples that no default was tuned on.

Two sets of simulated samples (Abbe image formation, non-periodic field of view, shot noise):

* ``tuning``: the family the defaults are chosen on: the cells phantom, elastic motion up to
  6 px, 1e5 photons per pixel, 4 x 256 x 256, seeds 0-2 (seed 0 is the demo's sample);
* ``heldout``: everything else: other phantoms (blobs, the USAF target, the resolution bars,
  C. elegans at half its phase, and textures cropped from ``shared/data``'s SIM-mito.gif and
  Diffcam-tennis.gif), other motions (translation, rotation, elastic, none), 1e3 to 1e5
  photons, and odd and non-square sizes.

For each sample it runs NSTM (the default preset, plus each ``--variant``'s overrides), the
conventional reconstruction as ``nstm reconstruct`` runs it (regularization chosen from the
data) and the same tuned against the truth (its best weight), and prints the per-frame phase
PSNR of each (mean removed, a border of min(16, size / 8) px left out), NSTM's absorption PSNR
and motion error. Choose defaults on ``--set tuning`` and judge them on ``--set heldout``::

    python benchmarks/heldout.py --set tuning --variant s200:train.steps=200 \\
        --variant s300:train.steps=300 --variant s400:train.steps=400 --json-out tuning.json
    python benchmarks/heldout.py --set heldout --json-out heldout.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np

from nstm import presets
from nstm.config import with_overrides
from nstm.metrics import motion_error, psnr_per_frame
from nstm.model import motion_fields, render_scenes
from nstm.runs import build_model
from nstm.systems.dpc import DPC, best_tikhonov_reg
from nstm.systems.dpc.simulation import DPCSimulationConfig, simulate_dpc
from nstm.training import fit

REPO = Path(__file__).resolve().parents[1]

# Crops (rows, cols) of the first frame of shared/data's GIFs: the mitochondria-dense region
# of the SIM rendering, and the ball and sign of the DiffuserCam video (right panel, below its
# text).
_CROPS = {
    "mito": ("SIM-mito.gif", (110, 300), (100, 420)),
    "tennis": ("Diffcam-tennis.gif", (95, 210), (250, 475)),
}


@dataclasses.dataclass(frozen=True)
class Sample:
    """A named sample; every field but ``name`` is a `DPCSimulationConfig` field."""

    name: str
    phantom: str
    motion: str = "elastic"
    max_displacement_px: float = 6.0
    photons_per_pixel: float | None = 1e5
    shape: tuple[int, int] = (256, 256)
    seed: int = 0
    phase_scale: float = 1.0


TUNING = [Sample(f"cells-s{seed}", "cells", seed=seed) for seed in (0, 1, 2)]
HELDOUT = [
    Sample("blobs, elastic", "blobs", seed=11),
    Sample("usaf, rotation, 192x256", "usaf", "rotation", 4.0, shape=(192, 256), seed=12),
    Sample("bars, translation, 101x131", "resolution", "translation", 3.0, shape=(101, 131),
           seed=13),
    Sample("c-elegans x0.5, 160x240", "c-elegans", shape=(160, 240), seed=14, phase_scale=0.5),
    Sample("cells, rotation, 1e4 ph", "cells", "rotation", 5.0, 1e4, seed=15),
    Sample("cells, 1e3 ph, 128x192", "cells", "elastic", 4.0, 1e3, (128, 192), seed=16),
    Sample("cells, static, 1e4 ph", "cells", "none", 0.0, 1e4, seed=17),
    Sample("mito texture, elastic", "mito", shape=(200, 200), seed=18),
    Sample("tennis texture, translation", "tennis", "translation", 5.0, shape=(112, 208), seed=19),
]  # fmt: skip


def image_phantoms(shared: Path, folder: Path) -> dict[str, str]:
    """Write the GIF crops as PNGs in ``folder``; their paths by phantom name."""
    paths = {}
    for name, (gif, rows, cols) in _CROPS.items():
        frame = iio.imread(shared / gif, index=0, plugin="pillow")
        path = folder / f"{name}.png"
        iio.imwrite(path, frame[slice(*rows), slice(*cols)])
        paths[name] = str(path)
    return paths


def evaluate(sample: Sample, variants: list[tuple[str, str]], phantoms: dict[str, str]) -> dict:
    fields = {k: v for k, v in dataclasses.asdict(sample).items() if k != "name"}
    fields["phantom"] = phantoms.get(sample.phantom, sample.phantom)  # image files by path
    data, truth = simulate_dpc(DPCSimulationConfig(**fields))
    border = min(16, min(sample.shape) // 8)
    base = presets.preset("default")
    system = DPC.from_data(data, base.system)
    result: dict[str, Any] = {"sample": dataclasses.asdict(sample), "border_px": border}
    static = system.reconstruct_static()["phase"]
    result["conventional_reg"] = float(system.tikhonov_reg[1])
    result["conventional_phase_psnr"] = psnr_per_frame(
        np.broadcast_to(static, truth["phase"].shape), truth["phase"], border=border
    ).tolist()
    reg, tuned = best_tikhonov_reg(system, truth["phase"], border=border)
    result["tuned_reg"], result["tuned_phase_psnr"] = reg, tuned.tolist()
    result["nstm"] = {}
    for name, overrides in variants:
        config = with_overrides(base, [o for o in overrides.split(",") if o])
        system = DPC.from_data(data, config.system)
        model = build_model(system, config.model, config.train.seed)
        start = time.perf_counter()
        fitted = fit(model, system, config.train, progress=False).model
        seconds = time.perf_counter() - start
        times = np.asarray(system.measurement_times)
        recon = system.outputs(render_scenes(fitted, times))
        motion = np.asarray(motion_fields(fitted, times))[(slice(None), *system.fov)]
        result["nstm"][name] = {
            "overrides": overrides,
            "train_s": seconds,
            "phase_psnr": psnr_per_frame(recon["phase"], truth["phase"], border=border).tolist(),
            "absorption_psnr": psnr_per_frame(
                recon["absorption"], truth["absorption"], border=border
            ).tolist(),
            "motion_epe_px": motion_error(motion, truth["motion"], border=border).tolist(),
        }
    result["no_motion_epe_px"] = motion_error(
        np.zeros_like(truth["motion"]), truth["motion"], border=border
    ).tolist()
    return result


def summary_line(result: dict, variant: str) -> str:
    nstm = result["nstm"][variant]
    p, t, c = (
        np.asarray(nstm["phase_psnr"]),
        np.asarray(result["tuned_phase_psnr"]),
        np.asarray(result["conventional_phase_psnr"]),
    )
    return (
        f"{result['sample']['name']:<30} {variant:>8}: NSTM {p.mean():5.2f} (worst {p.min():5.2f})"
        f" | tuned Tikhonov {t.mean():5.2f} ({t.min():5.2f}, reg {result['tuned_reg']:.1e})"
        f" | conventional {c.mean():5.2f} ({c.min():5.2f}, reg {result['conventional_reg']:.1e})"
        f" | worst-frame NSTM - tuned {min(p - t):+5.2f} dB"
        f" | abs {np.mean(nstm['absorption_psnr']):5.2f}"
        f" | motion {np.mean(nstm['motion_epe_px']):.2f} px (none: "
        f"{np.mean(result['no_motion_epe_px']):.2f}) | {nstm['train_s']:.0f} s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=("tuning", "heldout"), required=True)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:SECTION.FIELD=VALUE,...",
        help="NSTM run-config overrides (repeatable); default: the default preset as it is",
    )
    parser.add_argument("--only", help="sample names separated by ; (default: the whole set)")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    variants = [tuple(v.partition(":")[::2]) for v in args.variant] or [("default", "")]
    samples = TUNING if args.set == "tuning" else HELDOUT
    if args.only:
        wanted = {name.strip() for name in args.only.split(";")}
        samples = [s for s in samples if s.name in wanted]
    results = []
    with tempfile.TemporaryDirectory() as folder:
        phantoms = image_phantoms(args.shared, Path(folder)) if args.set == "heldout" else {}
        for sample in samples:
            result = evaluate(sample, variants, phantoms)
            results.append(result)
            for name, _ in variants:
                print(summary_line(result, name), flush=True)
            if args.json_out:
                report = {"set": args.set, "results": results}
                args.json_out.write_text(json.dumps(report, indent=1))
    for name, _ in variants:
        margins = [
            min(np.asarray(r["nstm"][name]["phase_psnr"]) - np.asarray(r["tuned_phase_psnr"]))
            for r in results
        ]
        means = [np.mean(r["nstm"][name]["phase_psnr"]) for r in results]
        print(
            f"{name}: mean NSTM phase PSNR {np.mean(means):.2f} dB; worst-frame margin over tuned "
            f"Tikhonov: median {np.median(margins):+.2f}, min {min(margins):+.2f} dB; NSTM ahead "
            f"on {sum(m > 0 for m in margins)} of {len(margins)} samples"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
