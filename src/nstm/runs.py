"""Runs: reconstruct into a run folder, write every output, reload a run to render more.

A run folder holds:

* ``run.yaml`` (system name, data path) and ``config.yaml`` (the resolved :class:`RunConfig`);
* ``checkpoint.eqx`` (model + optimizer state, atomic) and ``loss.csv``;
* ``reconstruction.npz``: one ``(frames, H, W)`` array per scene channel at the measurement
  times, ``motion`` ``(frames, H, W, ndim)`` in pixels and ``times``;
* ``baseline.npz``: the conventional (static) reconstruction, one ``(H, W)`` array per channel;
* ``timing.json``: steps, training and output-writing seconds of the last call;
* TIFF copies of both, ``comparison.png``, ``motion.png``, ``loss.png`` and a video of the
  dynamics at interpolated times.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Generic, TypeVar

import jax
import numpy as np
import yaml

from .config import ModelConfig, RenderConfig, TrainConfig, from_dict, parse_yaml, save_yaml
from .io.outputs import save_comparison_figure, save_motion_figure, save_tiff, save_video
from .metrics import motion_error, psnr_per_frame
from .model.spacetime import SpaceTimeModel, make_model, motion_fields, render_scenes
from .systems.base import AbstractImagingSystem
from .systems.registry import get_system
from .training.checkpoint import CHECKPOINT_NAME, check_checkpoint, load_checkpoint
from .training.engine import FitResult, fit, make_fit_step

S = TypeVar("S")


@dataclasses.dataclass(frozen=True)
class RunConfig(Generic[S]):
    """Everything that defines a reconstruction."""

    system: S
    """Parameters of the imaging system (e.g. :class:`nstm.systems.dpc.DPCConfig`)."""
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    render: RenderConfig = RenderConfig()


def load_run_config(path: str | Path, system_config_cls: type, *, base=None) -> RunConfig:
    """Read a (possibly partial) YAML run config on top of ``base`` or the defaults."""
    data = parse_yaml(Path(path).read_text()) or {}
    base = base if base is not None else RunConfig(system=system_config_cls())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with keys system/model/train/render")
    unknown = set(data) - {"system", "model", "train", "render"}
    if unknown:
        raise ValueError(
            f"{path}: unknown top-level keys {sorted(unknown)}; valid: system, model, train, render"
        )
    fields = {}
    for name in ("system", "model", "train", "render"):
        if name in data:
            current = getattr(base, name)
            fields[name] = from_dict(type(current), data[name], base=current, where=f" {name}")
    return dataclasses.replace(base, **fields)


def build_model(system: AbstractImagingSystem, config: ModelConfig, seed: int) -> SpaceTimeModel:
    """The initial space-time model for a system."""
    return make_model(
        config,
        grid_shape=tuple(system.grid_shape),
        channels=len(system.channels),
        bandwidth_cycles_per_px=float(system.bandwidth_cycles_per_px),
        num_times=len(np.unique(np.asarray(system.render_times))),
        key=jax.random.key(seed),
    )


def reconstruct(
    system_name: str,
    data_path: str | Path,
    out: str | Path,
    config: RunConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    with_baseline: bool = True,
) -> tuple[SpaceTimeModel, AbstractImagingSystem, FitResult]:
    """Reconstruct ``data_path`` with NSTM into the run folder ``out`` and write the outputs."""
    spec = get_system(system_name)
    out = Path(out)
    if not resume and (out / CHECKPOINT_NAME).exists():
        raise FileExistsError(
            f"{out} already holds a run; pass --resume to continue it or choose another --out"
        )
    if resume:  # refuse a checkpoint this version cannot continue before touching the folder
        check_checkpoint(out / CHECKPOINT_NAME)
    system = spec.load(Path(data_path), config.system)
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.yaml").write_text(
        yaml.safe_dump({"system": system_name, "data": str(Path(data_path).resolve())})
    )
    save_yaml(config, out / "config.yaml")
    model = build_model(system, config.model, config.train.seed)
    result = fit(model, system, config.train, run_dir=out, resume=resume, progress=progress)
    start = time.perf_counter()
    baseline = write_baseline(out, system) if with_baseline else None
    write_outputs(out, system, result.model, config, baseline=baseline, history=result.history)
    timing = {
        "steps": result.step,
        "train_s": result.seconds,
        "outputs_s": time.perf_counter() - start,
    }
    (out / "timing.json").write_text(json.dumps(timing, indent=2))
    return result.model, system, result


def load_run(run_dir: str | Path) -> tuple[SpaceTimeModel, AbstractImagingSystem, RunConfig]:
    """Rebuild the system, config and trained model of a run folder."""
    run_dir = Path(run_dir)
    if not (run_dir / "run.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no run.yaml)")
    info = yaml.safe_load((run_dir / "run.yaml").read_text())
    spec = get_system(info["system"])
    config = load_run_config(run_dir / "config.yaml", spec.config_cls)
    system = spec.load(Path(info["data"]), config.system)
    model = build_model(system, config.model, config.train.seed)
    _, opt_state, _ = make_fit_step(model, system, config.train)
    like = (model, opt_state)
    (model, _), _, _ = load_checkpoint(run_dir / CHECKPOINT_NAME, like)
    return model, system, config


def write_baseline(out: str | Path, system: AbstractImagingSystem) -> dict[str, np.ndarray]:
    """Compute the conventional reconstruction and write ``baseline.npz`` and TIFFs."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    baseline = {k: np.asarray(v, np.float32) for k, v in system.reconstruct_static().items()}
    np.savez(out / "baseline.npz", **baseline)
    axes = "ZYX"[-baseline[system.channels[0]].ndim :]
    for name, value in baseline.items():
        save_tiff(out / f"baseline_{name}.tif", value, axes=axes)
    return baseline


def write_outputs(
    out: str | Path,
    system: AbstractImagingSystem,
    model: SpaceTimeModel,
    config: RunConfig,
    *,
    baseline: dict[str, np.ndarray] | None = None,
    history: list[dict] | None = None,
) -> dict[str, np.ndarray]:
    """Render at the measurement times and write arrays, TIFFs, figures and the video."""
    out = Path(out)
    chunk = config.render.chunk_points
    times = np.asarray(system.measurement_times, np.float32)
    recon = system.outputs(render_scenes(model, times, chunk_points=chunk))
    motion = motion_fields(model, times, chunk_points=chunk)[(slice(None), *system.fov)]
    np.savez(out / "reconstruction.npz", **recon, motion=motion, times=times)
    spatial = "ZYX"[-(motion.ndim - 2) :]
    for name, value in recon.items():
        save_tiff(out / f"reconstruction_{name}.tif", value, axes="T" + spatial)
    if motion.ndim == 4:  # 2D: (frames, H, W, 2) -> a (T, C, Y, X) hyperstack
        save_tiff(out / "motion.tif", np.moveaxis(motion, -1, 1), axes="TCYX")
        save_motion_figure(out / "motion.png", motion, times)

    panels = {
        f"NSTM t={t:+.2f}": {k: v[i] for k, v in recon.items()} for i, t in _pick_frames(times)
    }
    if baseline is not None:
        panels["conventional (static)"] = baseline
    save_comparison_figure(
        out / "comparison.png", panels, channels=system.channels, title="NSTM vs conventional"
    )
    write_video(out, system, model, config)
    if history:
        _plot_loss(out / "loss.png", history)
    return recon


def write_video(
    out: str | Path,
    system: AbstractImagingSystem,
    model: SpaceTimeModel,
    config: RunConfig,
    *,
    num_times: int | None = None,
) -> Path:
    """Render ``num_times`` evenly spaced times in [-1, 1] and write the last channel's video
    (phase for DPC) plus ``interpolated.npz`` with every channel."""
    out = Path(out)
    n = num_times or config.render.interpolated_frames
    times = np.linspace(-1, 1, n, dtype=np.float32)
    frames = system.outputs(render_scenes(model, times, chunk_points=config.render.chunk_points))
    np.savez(out / "interpolated.npz", **frames, times=times)
    channel = system.channels[-1]
    stack = frames[channel]
    if stack.ndim == 4:  # volumes: show the middle plane
        stack = stack[:, stack.shape[1] // 2]
    path = out / f"video_{channel}.{config.render.video_format}"
    save_video(path, stack, fps=8, labels=[f"t = {t:+.2f}" for t in times])
    return path


def _pick_frames(times: np.ndarray) -> list[tuple[int, float]]:
    idx = sorted({0, len(times) - 1})
    return [(i, float(times[i])) for i in idx]


def _plot_loss(path: Path, history: list[dict]) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.2))
    ax = fig.add_subplot()
    steps = [h["step"] for h in history]
    ax.semilogy(steps, [h["loss"] for h in history], label="total")
    ax.semilogy(steps, [max(h["data"], 1e-30) for h in history], "--", label="data")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def evaluate(
    out: str | Path,
    truth: dict[str, np.ndarray],
    channels: tuple[str, ...],
    *,
    border: int = 16,
) -> dict[str, Any]:
    """Score a run folder against ground truth and write ``metrics.json``.

    Parameters
    ----------
    out : path
        Run folder with ``reconstruction.npz`` (and optionally ``baseline.npz``).
    truth : dict of ndarray
        One ``(frames, H, W)`` array per channel in ``channels``; optionally ``motion``
        ``(frames, H, W, ndim)`` in pixels, same convention as the reconstruction's.
    channels : tuple of str
        Scene channels to score.
    border : int
        Pixels cropped from each side of H and W before scoring.

    Returns
    -------
    dict
        ``border_px``; per channel ``nstm_{name}_psnr`` and, with a baseline,
        ``baseline_{name}_psnr`` (per-frame PSNR in dB, mean removed, see
        :func:`nstm.metrics.psnr_per_frame`); if both the truth and the reconstruction hold
        ``motion``: ``nstm_motion_epe_px`` and ``no_motion_epe_px``, the per-frame mean
        endpoint error in pixels of the NSTM motion and of assuming no motion (see
        :func:`nstm.metrics.motion_error`).
    """
    out = Path(out)
    recon = np.load(out / "reconstruction.npz")
    metrics: dict[str, Any] = {"border_px": border}
    base = np.load(out / "baseline.npz") if (out / "baseline.npz").exists() else None
    for name in channels:
        truth_c = truth[name]
        metrics[f"nstm_{name}_psnr"] = psnr_per_frame(recon[name], truth_c, border=border).tolist()
        if base is not None:
            static = np.broadcast_to(base[name], truth_c.shape)
            metrics[f"baseline_{name}_psnr"] = psnr_per_frame(
                static, truth_c, border=border
            ).tolist()
    if "motion" in truth and "motion" in recon.files:
        true_motion = np.asarray(truth["motion"])
        metrics["nstm_motion_epe_px"] = motion_error(
            recon["motion"], true_motion, border=border
        ).tolist()
        metrics["no_motion_epe_px"] = motion_error(
            np.zeros_like(true_motion), true_motion, border=border
        ).tolist()
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


__all__ = [
    "RunConfig",
    "build_model",
    "evaluate",
    "load_run",
    "load_run_config",
    "reconstruct",
    "write_baseline",
    "write_outputs",
    "write_video",
]
