"""Runs: reconstruct into a run folder, write every output, reload a run to render more.

A run folder holds:

* ``run.yaml`` (system name, data path) and ``config.yaml`` (the resolved :class:`RunConfig`);
* ``checkpoint.eqx`` (model + optimizer state, atomic) and ``loss.csv``;
* ``reconstruction.npz``: one ``(frames, H, W)`` array per scene channel at the measurement
  times, ``motion`` ``(frames, H, W, ndim)`` in pixels and ``times``;
* ``baseline.npz``: the conventional (static) reconstruction, one ``(H, W)`` array per channel;
* ``timing.json``: steps, training and output-writing seconds of the last call;
* OME-TIFF copies of both (``*.ome.tif``, with the pixel size in micrometres where the system
  knows it), ``comparison.png``, ``motion.png``, ``loss.png`` and a video of the dynamics at
  interpolated times.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
import yaml

from .config import ModelConfig, RenderConfig, RunConfig, from_dict, parse_yaml, to_dict
from .io.outputs import save_comparison_figure, save_motion_figure, save_tiff, save_video
from .metrics import motion_error, psnr_per_frame
from .model.spacetime import SpaceTimeModel, make_model, motion_fields, render_scenes
from .systems.base import AbstractImagingSystem
from .systems.registry import SystemSpec, get_system
from .training.checkpoint import CHECKPOINT_NAME, load_checkpoint, read_checkpoint_header
from .training.engine import (
    FitResult,
    fit,
    initial_params,
    make_fit_step,
    validate_train_config,
    with_params,
)


def load_run_config(path: str | Path, system_config_cls: type, *, base=None) -> RunConfig:
    """Read a (possibly partial) YAML run config on top of ``base`` or the defaults."""
    data = parse_yaml(Path(path).read_text(), str(path)) or {}
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
        bandwidth_cycles_per_px=system.bandwidth_cycles_per_px,
        num_times=len(np.unique(np.asarray(system.render_times))),
        key=jax.random.key(seed),
    )


# Files a run folder holds (nstm writes them; nothing else in the folder is ever touched).
RUN_FILES = (
    "run.yaml",
    "config.yaml",
    CHECKPOINT_NAME,
    "loss.csv",
    "timing.json",
    "metrics.json",
    "reconstruction.npz",
    "baseline.npz",
    "baseline.json",
    "interpolated.npz",
    "comparison.png",
    "motion.png",
    "loss.png",
    "motion.ome.tif",
    "system_parameters.npz",
    "parameters.json",
)
_RUN_PATTERNS = (
    "reconstruction_*.ome.tif",
    "baseline_*.ome.tif",
    "video_*.gif",
    "video_*.mp4",
    "figure_*.*",  # a system's own figures (SystemSpec.figures)
)
# Fields of the run config that a resumed run may change: they steer training from the current
# step on, or only the outputs. Everything else defines the model or the problem.
_RESUMABLE = {
    "train": (
        "steps",
        "schedule_steps",
        "scene_lr",
        "motion_lr",
        "final_lr_fraction",
        "checkpoint_every",
        "log_every",
        "chunk_points",
    ),
    "render": None,  # every field
}


def run_files(out: str | Path) -> list[Path]:
    """The files of ``out`` that a run writes (empty if ``out`` is not a folder)."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = [out / name for name in RUN_FILES if (out / name).exists()]
    for pattern in _RUN_PATTERNS:
        found += sorted(out.glob(pattern))
    return found


def check_writable(out: str | Path, option: str = "--out") -> Path:
    """Check that the folder ``out`` can be written, or created and written, without creating it.

    Raises an OSError subclass naming ``option`` and the folder, before any work is done and
    without leaving anything behind (the writers create the folder when they write).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{option}: {out} exists and is not a folder")
    existing = out.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(
            f"{option}: cannot create {out}: {existing} is a file, not a folder"
        )
    try:
        tempfile.NamedTemporaryFile(dir=existing, prefix=".nstm-probe-", delete=True).close()
    except PermissionError:
        raise PermissionError(f"{option}: cannot write in {existing} (permission denied)") from None
    except OSError as err:
        raise OSError(f"{option}: cannot write in {existing} ({err.strerror or err})") from None
    return out


def refuse_overwrite(paths: list[Path], what: str) -> None:
    """Raise FileExistsError listing ``paths`` unless there are none (``--overwrite`` skips it)."""
    if paths:
        names = ", ".join(p.name for p in paths[:6]) + (" ..." if len(paths) > 6 else "")
        raise FileExistsError(
            f"{what} already holds {names}; pass --overwrite to replace them, or choose another "
            "folder"
        )


def data_fingerprint(path: str | Path) -> dict[str, Any]:
    """``path`` (resolved), ``bytes`` and ``sha256`` of a data file, for run.yaml."""
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return {"data": str(path.resolve()), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def resume_config(saved: RunConfig, requested: RunConfig, spec: SystemSpec) -> RunConfig:
    """The config a resumed run continues with, or a ValueError saying what it cannot change.

    A resumed run may change the fields that steer training from the current step on (the
    step count, learning rates, logging) or only the outputs (``render``, and the system's
    ``spec.resume_may_change``, e.g. the baseline's regularization). When the step count grows
    and no schedule length is set, the annealing and learning-rate decay keep the run's first
    plan (``train.schedule_steps``), so that training on continues with every level open at
    the final learning rates instead of reopening the schedule.
    """
    allowed = dict(_RESUMABLE, system=tuple(spec.resume_may_change))
    old, new = _flatten(to_dict(saved)), _flatten(to_dict(requested))
    changed = []
    for name, value in old.items():
        section, _, key = name.partition(".")
        ok = allowed.get(section, ())
        if new[name] != value and ok is not None and key not in ok:
            changed.append(f"{name} (the run's {value!r}, given {new[name]!r})")
    if changed:
        raise ValueError(
            "--resume continues the run's model and data, so it cannot change "
            + "; ".join(changed)
            + "; drop those options, or start a new run in another folder"
        )
    train = requested.train
    if train.steps != saved.train.steps and train.schedule_steps is None:
        train = dataclasses.replace(train, schedule_steps=saved.train.steps)
    return dataclasses.replace(requested, train=train)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model.scene.mlp_width": 64, ...}`` from a nested config dict."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_resume(out: Path, system_name: str, data_path: Path) -> None:
    """Refuse to resume ``out`` with another system or other data than the run's."""
    info = parse_yaml((out / "run.yaml").read_text(), str(out / "run.yaml")) or {}
    if info.get("system") != system_name:
        raise ValueError(
            f"--resume: {out} is a run of the {info.get('system')!r} system, not {system_name!r}"
        )
    given = data_fingerprint(data_path)
    if "sha256" in info:
        same = info["sha256"] == given["sha256"]
        detail = f"sha256 {info['sha256'][:12]}... != {given['sha256'][:12]}..."
    else:  # a run folder from before fingerprints: the path is all there is
        same = info.get("data") == given["data"]
        detail = "another path"
    if not same:
        raise ValueError(
            f"--resume: {data_path} is not the data this run was trained on ({info.get('data')}; "
            f"{detail}); resume with that file, or start a new run in another folder"
        )


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def check_render_config(config: RenderConfig) -> None:
    """Raise a ValueError naming the field for output settings that cannot be written."""
    for name in ("interpolated_frames", "chunk_points"):
        value = getattr(config, name)
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"render.{name} must be an integer >= 1, got {value!r}")


def reconstruct(
    system_name: str,
    data_path: str | Path,
    out: str | Path,
    config: RunConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    with_baseline: bool = True,
) -> tuple[SpaceTimeModel, AbstractImagingSystem, FitResult]:
    """Reconstruct ``data_path`` with NSTM into the run folder ``out`` and write the outputs.

    Everything is checked before anything is written: the folder (writable; a fresh run
    refuses a folder holding a run or run outputs unless ``overwrite``; a resumed one refuses
    other data or another system), the data, the model and training config. With
    ``resume``, ``config`` must come from :func:`resume_config`. The outputs are written into a
    hidden staging folder and moved into place at the end, so an interruption never leaves a
    mix of old and new outputs.
    """
    spec = get_system(system_name)
    out, data_path = Path(out), Path(data_path)
    ckpt = out / CHECKPOINT_NAME
    if resume:
        read_checkpoint_header(ckpt)  # a checkpoint this version can continue, or a clear error
        check_resume(out, system_name, data_path)
    elif ckpt.exists() and not overwrite:
        raise FileExistsError(
            f"{out} already holds a run: --resume continues it, --overwrite starts it again "
            "(replacing the run's files), or choose another --out"
        )
    elif not overwrite:
        refuse_overwrite(run_files(out), f"--out {out}")
    check_writable(out)
    system = spec.load(data_path, config.system)
    model = build_model(system, config.model, config.train.seed)
    validate_train_config(config.train, system)
    check_render_config(config.render)

    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        for stale in (ckpt, out / "loss.csv", out / "timing.json", out / "metrics.json"):
            stale.unlink(missing_ok=True)  # --overwrite: the previous run's own files
        info = {"system": system_name, **data_fingerprint(data_path)}
        _write_text_atomic(out / "run.yaml", yaml.safe_dump(info, sort_keys=False))
    _write_text_atomic(out / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False))
    result = fit(model, system, config.train, run_dir=out, resume=resume, progress=progress)
    system = result.system  # with its trained parameters, if any
    start = time.perf_counter()
    if progress:
        print(f"writing the outputs to {out}/ ...", file=sys.stderr, flush=True)
    try:
        _write_run_outputs(out, system, config, result, with_baseline, start, spec.figures)
    except KeyboardInterrupt as err:
        raise OutputsInterrupted(
            "Ctrl-C while the outputs were written; the folder's previous outputs are as they "
            "were. Training is complete and checkpointed: run the same command with --resume "
            "to write the outputs"
        ) from err
    return result.model, system, result


def _write_run_outputs(
    out: Path,
    system: AbstractImagingSystem,
    config: RunConfig,
    result: FitResult,
    with_baseline: bool,
    start: float,
    figures=None,
) -> None:
    with staged_outputs(out) as staging:
        baseline = write_baseline(staging, system) if with_baseline else None
        write_outputs(
            staging,
            system,
            result.model,
            config,
            baseline=baseline,
            history=result.history,
            figures=figures,
        )
        timing = {
            "steps": result.step,
            "steps_this_call": result.step - result.start_step,
            "train_s": result.total_seconds,
            "train_s_this_call": result.seconds,
            "outputs_s": time.perf_counter() - start,
        }
        (staging / "timing.json").write_text(json.dumps(timing, indent=2))


class OutputsInterrupted(KeyboardInterrupt):
    """Ctrl-C while a run's outputs were written, after training (which is checkpointed)."""


@contextlib.contextmanager
def staged_outputs(out: str | Path):
    """A hidden folder in ``out`` whose files replace their namesakes in ``out`` on success;
    removed whatever happens, so an interruption leaves the previous outputs as they were."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".nstm-outputs-", dir=out))
    try:
        yield staging
        for path in sorted(staging.iterdir()):
            os.replace(path, out / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_run(run_dir: str | Path) -> tuple[SpaceTimeModel, AbstractImagingSystem, RunConfig]:
    """Rebuild the system, config and trained model of a run folder."""
    run_dir = Path(run_dir)
    if not (run_dir / "run.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no run.yaml)")
    info = parse_yaml((run_dir / "run.yaml").read_text(), str(run_dir / "run.yaml"))
    spec = get_system(info["system"])
    config = load_run_config(run_dir / "config.yaml", spec.config_cls)
    system = spec.load(Path(info["data"]), config.system)
    model = build_model(system, config.model, config.train.seed)
    _, opt_state, _ = make_fit_step(model, system, config.train)
    like = (initial_params(model, system, config.train), opt_state)
    ((model, system_params), _), _, _ = load_checkpoint(run_dir / CHECKPOINT_NAME, like)
    return model, with_params(system, system_params), config


def write_baseline(out: str | Path, system: AbstractImagingSystem) -> dict[str, np.ndarray]:
    """Compute the conventional reconstruction and write ``baseline.npz`` and TIFFs."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    baseline = {k: np.asarray(v, np.float32) for k, v in system.reconstruct_static().items()}
    np.savez(out / "baseline.npz", **baseline)
    info = system.baseline_info()
    if info:
        (out / "baseline.json").write_text(json.dumps(info, indent=2))
    axes = "ZYX"[-baseline[system.channels[0]].ndim :]
    for name, value in baseline.items():
        save_tiff(out / f"baseline_{name}.ome.tif", value, axes=axes, spacing_um=_spacing(system))
    return baseline


def _spacing(system: AbstractImagingSystem, spacing=None) -> dict[str, float] | None:
    """The system's pixel size per axis letter (``{"Y": ..., "X": ...}``), or None; or that of
    ``spacing`` (a tuple per axis) when given."""
    spacing = system.spacing_um if spacing is None else spacing
    if spacing is None:
        return None
    return dict(zip("ZYX"[-len(spacing) :], (float(v) for v in spacing), strict=True))


def write_outputs(
    out: str | Path,
    system: AbstractImagingSystem,
    model: SpaceTimeModel,
    config: RunConfig,
    *,
    baseline: dict[str, np.ndarray] | None = None,
    history: list[dict] | None = None,
    figures: Callable[[Path, AbstractImagingSystem, Mapping[str, np.ndarray]], None] | None = None,
) -> dict[str, np.ndarray]:
    """Render at the output times and write arrays, TIFFs, figures and the video, plus the
    system's own ``figures`` (its spec's) when given."""
    out = Path(out)
    chunk = config.render.chunk_points
    times = np.asarray(system.output_times, np.float32)
    recon = system.outputs(render_scenes(model, times, chunk_points=chunk))
    motion = motion_fields(model, times, chunk_points=chunk)[(slice(None), *system.fov)]
    motion = np.asarray(system.motion_output(motion), np.float32)
    np.savez(out / "reconstruction.npz", **recon, motion=motion, times=times)
    spatial = "ZYX"[-(motion.ndim - 2) :]
    spacing = _spacing(system)
    for name, value in recon.items():
        save_tiff(
            out / f"reconstruction_{name}.ome.tif", value, axes="T" + spatial, spacing_um=spacing
        )
    # (frames, *spatial, ndim) -> a (T, [Z,] C, Y, X) hyperstack, one channel per component.
    save_tiff(
        out / "motion.ome.tif",
        np.moveaxis(motion, -1, 1 if motion.ndim == 4 else 2),
        axes="TCYX" if motion.ndim == 4 else "TZCYX",
        spacing_um=spacing,
        channel_names=[f"d{a.lower()} (px)" for a in spatial],
    )
    motion_spacing = _spacing(system, system.motion_spacing_um)
    save_motion_figure(out / "motion.png", motion, times, spacing_um=motion_spacing)

    panels = {
        f"NSTM t={t:+.2f}": {k: v[i] for k, v in recon.items()} for i, t in _pick_frames(times)
    }
    if baseline is not None:
        panels["conventional (static)"] = baseline
    save_comparison_figure(
        out / "comparison.png",
        panels,
        channels=system.channels,
        units=dict(system.channel_units),
        title="NSTM vs conventional",
        spacing_um=spacing,
        volume_view=system.volume_view,
    )
    if config.train.system_lr > 0 and system.trainable:
        trained = {name: np.asarray(getattr(system, name)) for name in system.trainable}
        np.savez(out / "system_parameters.npz", **trained)
    parameters = system.parameters()
    if parameters:
        (out / "parameters.json").write_text(json.dumps(parameters, indent=2))
    write_video(out, system, model, config)
    if history:
        _plot_loss(out / "loss.png", history)
    if figures is not None:
        _write_system_figures(out, system, figures, recon, motion, times, baseline)
    return recon


def _write_system_figures(out, system, figures, recon, motion, times, baseline) -> None:
    """Call a system's figure writer and check it wrote only ``figure_*`` files (those a run
    folder is known to hold, so that a later run replaces them only with --overwrite)."""
    before = set(out.iterdir())
    outputs = {**recon, "motion": motion, "times": times}
    outputs.update({f"baseline_{k}": v for k, v in (baseline or {}).items()})
    figures(out, system, outputs)
    stray = sorted(p.name for p in set(out.iterdir()) - before if not p.name.startswith("figure_"))
    if stray:
        raise RuntimeError(
            f"the {type(system).__name__} system's figure writer wrote {stray}; a system's own "
            "figures must be named figure_*"
        )


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
    path = out / f"video_{channel}.{config.render.video_format}"
    save_video(path, frames[channel], fps=8, labels=[f"t = {t:+.2f}" for t in times])
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
    "RUN_FILES",
    "OutputsInterrupted",
    "RunConfig",
    "build_model",
    "check_resume",
    "check_writable",
    "data_fingerprint",
    "refuse_overwrite",
    "resume_config",
    "run_files",
    "staged_outputs",
    "evaluate",
    "load_run",
    "load_run_config",
    "reconstruct",
    "write_baseline",
    "write_outputs",
    "write_video",
]
