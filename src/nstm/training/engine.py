"""The training engine: one jitted step, progress, checkpoints, resume, clean interrupts.

Loss for a step over measurements ``m`` (``frames_per_step`` of them)::

    L = mean_m [ data_loss_m(scenes_m) + regularization(scenes_m) ]

where ``scenes_m`` is the model rendered at ``system.render_times[m]`` with the coarse-to-fine
``alpha`` of the step. The measurements of a step are drawn from a key folded with the step
number, so a resumed run draws exactly what an uninterrupted run would.

With several CPU devices (the ``nstm`` command makes one per core), a step's measurements are
split across them and the losses and gradients averaged (data parallelism): each device then
runs its share of the step as one sequence of operations on cache-sized blocks, which keeps
the cores busier than splitting every operation between them (paper preset, 4 x 256² on 2
cores: about 0.8x the step time, with the MLP's smaller blocks; ``benchmarks/README.md``).
"""

from __future__ import annotations

import ctypes
import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, Float, Int
from tqdm.auto import tqdm

from ..config import TrainConfig
from ..model.spacetime import SpaceTimeModel, param_labels
from ..schedules import coarse_to_fine, exponential_decay
from ..systems.base import AbstractImagingSystem
from .checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    read_checkpoint_header,
    save_checkpoint,
)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite.

    ``step`` is the step whose loss was not finite and ``checkpoint_step`` the step of the state
    that was checkpointed instead: the one with the lowest loss before it (None if there was
    none, i.e. on a run's first step).
    """

    def __init__(self, message: str, *, step: int, checkpoint_step: int | None):
        super().__init__(message)
        self.step = step
        self.checkpoint_step = checkpoint_step


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; the state at the last completed step was checkpointed."""


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns."""

    model: SpaceTimeModel
    history: list[dict]
    """Loss log: one dict per logged step with ``step``, ``loss``, ``data``, ``reg``, ``alpha``."""
    step: int
    """Steps completed."""
    seconds: float
    """Wall time of this call's training loop (compile included)."""
    start_step: int = 0
    """Step this call started from (non-zero when resumed)."""
    total_seconds: float | None = None
    """Training wall time over every call of the run (resumed ones included)."""


def schedule_steps(config: TrainConfig) -> int:
    """Steps over which the annealing and the learning-rate decay run (``config.steps`` unless
    ``config.schedule_steps`` is set)."""
    return config.schedule_steps or config.steps


def make_optimizer(model: SpaceTimeModel, config: TrainConfig) -> optax.GradientTransformation:
    """Adam per parameter group (scene, motion), each with its own decaying learning rate.

    Each group's parameters are updated as one flat vector (``optax.flatten``): the same
    arithmetic as per array, but one fused loop instead of a few per array, which takes
    about 1 s off compiling the training step and a millisecond off each step.
    """

    def adam(lr: float) -> optax.GradientTransformation:
        if lr == 0:
            return optax.set_to_zero()
        schedule = exponential_decay(lr, schedule_steps(config), config.final_lr_fraction)
        return optax.flatten(
            optax.adam(schedule, b1=config.adam_b1, b2=config.adam_b2, eps=config.adam_eps)
        )

    labels = param_labels(eqx.filter(model, eqx.is_array))
    # The labels tree is a (callable) Module, which optax would call: hand it a function.
    return optax.multi_transform(
        {"scene": adam(config.scene_lr), "motion": adam(config.motion_lr)}, lambda _: labels
    )


def step_loss(
    model: SpaceTimeModel,
    system: AbstractImagingSystem,
    indices: Int[Array, " batch"],
    alpha: Float[Array, ""],
    chunk_points: int | None = None,
) -> tuple[Float[Array, ""], tuple[Float[Array, ""], Float[Array, ""]]]:
    """Total loss of measurements ``indices`` and its (data, regularization) parts."""
    times = system.render_times[indices]  # (batch, renders)
    batch, renders = times.shape
    scenes = model.render(times.reshape(-1), alpha=alpha, chunk_points=chunk_points)
    scenes = scenes.reshape(batch, renders, *scenes.shape[1:])
    with jax.named_scope("system"):  # labels the system's operations in profiles
        data = jnp.mean(jax.vmap(system.data_loss)(scenes, indices))
        reg = jnp.mean(jax.vmap(system.regularization)(scenes))
    return data + reg, (data, reg)


def data_parallel_devices(
    frames_per_step: int, devices: Sequence[jax.Device] | None = None
) -> list[jax.Device]:
    """The devices a step's ``frames_per_step`` measurements are split across.

    The most of ``devices`` (default: the local CPU devices when the CPU is the default backend,
    else only the first device) whose number divides ``frames_per_step``, so that every device
    gets the same share; a single device means no splitting.
    """
    if devices is None:
        devices = jax.local_devices()
        if jax.default_backend() != "cpu":  # multi-accelerator splitting is untested
            devices = devices[:1]
    if not devices:
        raise ValueError("data_parallel_devices needs at least one device")
    count = max(n for n in range(1, len(devices) + 1) if frames_per_step % n == 0)
    return list(devices[:count])


def _batch_mesh(devices: Sequence[jax.Device]) -> Mesh:
    """A mesh of ``devices`` along the step's measurements (axis ``"batch"``)."""
    return Mesh(np.asarray(devices), ("batch",))


def _split_over_devices(loss_fn, devices: Sequence[jax.Device]):
    """Value and gradient of ``loss_fn(model, system, indices, alpha) -> (loss, aux)`` with
    ``indices`` split across ``devices``.

    The loss is a mean over measurements and every device gets as many, so the batch's loss,
    ``aux`` and gradient are the means of the devices'. Each device differentiates its loss
    divided by their number and the results are summed: the division then costs one scalar in
    the backward pass, where averaging afterwards would compile a kernel per gradient array.
    """
    mesh = _batch_mesh(devices)
    replicated, split = PartitionSpec(), PartitionSpec("batch")
    share = 1.0 / len(devices)

    def run(model, system, indices, alpha):
        model_arrays, model_static = eqx.partition(model, eqx.is_array)
        system_arrays, system_static = eqx.partition(system, eqx.is_array)

        def local(model_arrays, system_arrays, indices, alpha):
            system = eqx.combine(system_arrays, system_static)

            def part(model):
                loss, aux = loss_fn(model, system, indices, alpha)
                return loss * share, jax.tree.map(lambda a: a * share, aux)

            out = eqx.filter_value_and_grad(part, has_aux=True)(
                eqx.combine(model_arrays, model_static)
            )
            return jax.lax.psum(out, "batch")

        # check_vma=False: the networks' block loops start from constants (replicated) and
        # carry per-device values; the outputs are made replicated by the psum.
        return jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(replicated, replicated, split, replicated),
            out_specs=replicated,
            check_vma=False,
        )(model_arrays, system_arrays, indices, alpha)

    return run


def make_train_step(
    optimizer: optax.GradientTransformation,
    *,
    num_measurements: int,
    frames_per_step: int,
    anneal_steps: int,
    chunk_points: int | None = None,
    devices: Sequence[jax.Device] | None = None,
):
    """The jitted update ``(model, opt_state, system, step, key) -> (model, opt_state, stats)``.

    With several ``devices`` (their number must divide ``frames_per_step``), each computes the
    loss and gradients of its share of the step's measurements, in chunks of ``chunk_points``
    over their number, and they are averaged; the arguments must then be replicated on them
    (:func:`make_fit_step`'s step places them).
    """
    alpha_at = coarse_to_fine(anneal_steps)
    split = devices is not None and len(devices) > 1
    if split and frames_per_step % len(devices):
        raise ValueError(
            f"frames_per_step ({frames_per_step}) must be a multiple of the number of "
            f"devices ({len(devices)})"
        )
    if split and chunk_points is not None:
        # The devices' chunks are in memory at once: together they keep to chunk_points.
        chunk_points = max(1, chunk_points // len(devices))

    def loss_fn(model, system, indices, alpha):
        return step_loss(model, system, indices, alpha, chunk_points)

    if split:
        loss_and_grads = _split_over_devices(loss_fn, devices)
    else:
        loss_and_grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)

    @eqx.filter_jit
    def train_step(model, opt_state, system, step, key):
        alpha = alpha_at(step)
        if frames_per_step == num_measurements:
            indices = jnp.arange(num_measurements)
        else:
            indices = jax.random.choice(
                jax.random.fold_in(key, step), num_measurements, (frames_per_step,), replace=False
            )
        (loss, (data, reg)), grads = loss_and_grads(model, system, indices, alpha)
        with jax.named_scope("optimizer"):
            updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
            model = eqx.apply_updates(model, updates)
        return model, opt_state, {"loss": loss, "data": data, "reg": reg, "alpha": alpha}

    return train_step


def make_fit_step(model: SpaceTimeModel, system: AbstractImagingSystem, config: TrainConfig):
    """What :func:`fit` trains with: ``(train_step, initial opt_state, sampling key)``.

    ``train_step`` is :func:`make_train_step`'s update for this system and config, compiled on
    its first call (with the heap trimmed before it first runs); benchmarks time exactly this.
    """
    optimizer = make_optimizer(model, config)
    opt_state = eqx.filter_jit(optimizer.init)(eqx.filter(model, eqx.is_array))
    frames_per_step = config.frames_per_step or system.num_measurements
    devices = data_parallel_devices(frames_per_step)
    train_step = _CompiledOnFirstCall(
        make_train_step(
            optimizer,
            num_measurements=system.num_measurements,
            frames_per_step=frames_per_step,
            anneal_steps=round(config.anneal_fraction * schedule_steps(config)),
            chunk_points=config.chunk_points,
            devices=devices,
        ),
        devices=devices,
    )
    key = jax.random.key(config.seed + 1)  # sampling key, independent of the init key
    return train_step, opt_state, key


def _place(tree, sharding):
    """The arrays of ``tree`` on ``sharding`` (a device or a sharding); other leaves as they are.

    Arrays already there are passed through untouched: the training step places its arguments
    on every call, which then takes 0.6 ms, against 3-4 ms with ``device_put`` on every array
    (42 arrays, paper preset).
    """

    def put(x):
        if not eqx.is_array(x) or getattr(x, "sharding", None) == sharding:
            return x
        return jax.device_put(x, sharding)

    return jax.tree.map(put, tree)


class _CompiledOnFirstCall:
    """A jitted function compiled ahead of its first execution, with the heap trimmed between.

    Compilation leaves a few hundred MB of freed but still mapped heap (glibc keeps it); handing
    it back to the OS before the first execution keeps it out of the process's peak memory
    (measured at 4 x 256²: peak 1.13 -> 0.87 GB). Later calls run the compiled executable
    directly; arguments must keep the shapes of the first call, as training's do. With several
    ``devices``, array arguments are replicated on them first (a no-op once they are, as the
    step's outputs are).
    """

    def __init__(self, jitted, devices: Sequence[jax.Device] = ()):
        self._jitted = jitted
        self._compiled = None
        self.devices = list(devices)
        self._sharding = (
            NamedSharding(_batch_mesh(self.devices), PartitionSpec())
            if len(self.devices) > 1
            else None
        )

    def compile(self, *args, compiler_options: dict[str, str | bool] | None = None) -> None:
        """Compile for ``args`` now, with XLA ``compiler_options`` if given (benchmarks compare
        them within one process), instead of on the first call."""
        lower = getattr(self._jitted, "lower", None)  # absent on a plain (wrapped) function
        if lower is None:
            self._compiled = self._jitted
        else:
            args = self.place(args)
            self._compiled = lower(*args).compile(compiler_options=compiler_options)
        _release_free_heap()

    def as_text(self) -> str | None:
        """The compiled program as optimized HLO text (for profiles: its operations' names and
        metadata), or None before it is compiled or where it was not jitted."""
        compiled = getattr(self._compiled, "compiled", self._compiled)  # equinox wraps jax's
        as_text = getattr(compiled, "as_text", None)
        return None if as_text is None else as_text()

    def place(self, args):
        """``args`` on this step's devices."""
        return args if self._sharding is None else _place(args, self._sharding)

    def __call__(self, *args):
        args = self.place(args)
        if self._compiled is None:
            self.compile(*args)
        return self._compiled(*args)


def _release_free_heap() -> None:
    """Return freed heap pages to the OS where the C library can (glibc's malloc_trim)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc
        return
    trim(0)


def fit(
    model: SpaceTimeModel,
    system: AbstractImagingSystem,
    config: TrainConfig,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
) -> FitResult:
    """Train ``model`` on ``system``'s measurements.

    Parameters
    ----------
    model : SpaceTimeModel
        The initial model (for ``resume``, one built from the same config: it gives the shapes).
    system : AbstractImagingSystem
    config : TrainConfig
    run_dir : path, optional
        Where ``checkpoint.eqx`` and ``loss.csv`` go. Without it nothing is written.
    resume : bool
        Continue from ``run_dir/checkpoint.eqx``; the result equals an uninterrupted run.
    progress : bool
        Show a progress bar with loss, steps/s and ETA.
    stop_at : int, optional
        Stop (with a checkpoint) after this many steps instead of ``config.steps``; the
        schedules still follow the config. Used to test resuming and to score a run on the way.

    Raises
    ------
    NonFiniteLossError
        The loss became NaN/inf. The state with the lowest loss of this call is checkpointed,
        to continue from with lower learning rates.
    TrainingInterrupted
        Ctrl-C. The state after the last completed step is checkpointed.
    """
    validate_train_config(config, system)
    train_step, opt_state, key = make_fit_step(model, system, config)
    step, history, seconds_before = 0, [], 0.0
    ckpt = Path(run_dir) / CHECKPOINT_NAME if run_dir is not None else None
    if resume:
        if ckpt is None:
            raise ValueError("resume=True needs run_dir")
        (model, opt_state), step, history = load_checkpoint(ckpt, (model, opt_state))
        seconds_before = float(read_checkpoint_header(ckpt).get("train_seconds", 0.0))
    if step > config.steps:
        raise ValueError(
            f"train.steps: the run has already trained {step} steps; ask for at least that many, "
            f"got {config.steps}"
        )
    model, opt_state, system = train_step.place((model, opt_state, system))  # once, not per step
    last = config.steps if stop_at is None else min(stop_at, config.steps)
    start_step = step
    start = time.perf_counter()

    def checkpoint(state, at_step, log):
        if ckpt is not None:
            seconds = seconds_before + time.perf_counter() - start
            save_checkpoint(ckpt, state, step=at_step, history=log, train_seconds=seconds)
            _write_loss_log(ckpt.parent / "loss.csv", log)

    bar = tqdm(
        total=config.steps,
        initial=step,
        disable=not progress,
        unit="step",
        dynamic_ncols=True,
        mininterval=1.0,
    )
    # The first call compiles the step (or loads it from the compilation cache): seconds on a
    # CPU before the first step, which the bar says instead of looking stuck.
    bar.set_description_str("compiling", refresh=True)
    best = None  # (loss, step, model, opt_state): the lowest loss of this call so far
    try:
        while step < last:
            new_model, new_opt_state, stats = train_step(
                model, opt_state, system, jnp.asarray(step, jnp.int32), key
            )
            loss = float(stats["loss"])  # the loss of `model`, before this update
            if not math.isfinite(loss):
                raise _non_finite(loss, step, best, history, checkpoint, ckpt)
            # Periodic checkpoints hold states whose loss is known to be finite.
            if step % config.checkpoint_every == 0 and step > start_step:
                checkpoint((model, opt_state), step, history)
            if best is None or loss <= best[0]:  # a reference, not a copy
                best = (loss, step, model, opt_state)
            model, opt_state = new_model, new_opt_state
            step += 1
            if step % config.log_every == 0 or step == config.steps:
                history.append(
                    {"step": step, **{k: float(stats[k]) for k in ("loss", "data", "reg", "alpha")}}
                )
            if bar.desc:
                bar.set_description_str("", refresh=False)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3e}", alpha=f"{float(stats['alpha']):.2f}")
    except KeyboardInterrupt as err:
        checkpoint((model, opt_state), step, history)
        raise TrainingInterrupted(
            f"interrupted at step {step}"
            + (f"; checkpoint saved, continue with --resume ({ckpt})" if ckpt else "")
        ) from err
    finally:
        bar.close()
    checkpoint((model, opt_state), step, history)
    if len(train_step.devices) > 1:  # later uses (outputs, evaluation) run on one device
        model = _place(model, train_step.devices[0])
    seconds = time.perf_counter() - start
    return FitResult(model, history, step, seconds, start_step, seconds_before + seconds)


def _non_finite(loss, step, best, history, checkpoint, ckpt) -> NonFiniteLossError:
    """The error for a non-finite loss at ``step``, after checkpointing the best state before it.

    The state kept is the one with the lowest loss of this call: when training diverges, the
    last states with a finite loss have usually blown up already (a loss of 1e17 a step before
    the overflow), and no learning rate continues from those. Continuing from the kept state
    with the same settings would diverge again: the message says to lower the learning rates,
    which ``--resume`` accepts.
    """
    where = f" in {ckpt}" if ckpt else ""
    if best is None:  # the first state of this call: nothing finite to go back to
        kept = (
            f"the run's checkpoint{where} is left as it was"
            if step
            else "nothing was checkpointed; check the data for outliers (NaN, inf, huge values)"
        )
        return NonFiniteLossError(
            f"non-finite loss ({loss}) at step {step}, the first of this call; {kept}",
            step=step,
            checkpoint_step=step if step else None,
        )
    best_loss, best_step, model, opt_state = best
    checkpoint((model, opt_state), best_step, [h for h in history if h["step"] <= best_step])
    return NonFiniteLossError(
        f"non-finite loss ({loss}) at step {step}: training diverged. The state with the lowest "
        f"loss ({best_loss:.3g}, step {best_step}) is checkpointed{where}; continue from it with "
        "lower learning rates (--resume --train.scene-lr ... --train.motion-lr ...)",
        step=step,
        checkpoint_step=best_step,
    )


def validate_train_config(config: TrainConfig, system: AbstractImagingSystem) -> None:
    """Raise a ValueError naming the field for a training config ``fit`` cannot run."""
    if config.steps < 1:
        raise ValueError(f"train.steps must be >= 1, got {config.steps}")
    if config.schedule_steps is not None and config.schedule_steps < 1:
        raise ValueError(f"train.schedule_steps must be >= 1 or None, got {config.schedule_steps}")
    for name in ("scene_lr", "motion_lr"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"train.{name} must be a finite learning rate >= 0, got {value}")
    if not 0 < config.final_lr_fraction <= 1:
        raise ValueError(
            f"train.final_lr_fraction must be in (0, 1], got {config.final_lr_fraction}"
        )
    if not 0 <= config.anneal_fraction <= 1:
        raise ValueError(f"train.anneal_fraction must be in [0, 1], got {config.anneal_fraction}")
    if config.checkpoint_every < 1 or config.log_every < 1:
        raise ValueError("train.checkpoint_every and train.log_every must be >= 1")
    if config.chunk_points is not None and config.chunk_points < 1:
        raise ValueError(f"train.chunk_points must be >= 1 or None, got {config.chunk_points}")
    n = system.num_measurements
    if config.frames_per_step is not None and not 1 <= config.frames_per_step <= n:
        raise ValueError(
            f"train.frames_per_step must be in [1, {n}] (the number of measurements), "
            f"got {config.frames_per_step}"
        )


def _write_loss_log(path: Path, history: list[dict]) -> None:
    if not history:
        return
    keys = list(history[0])
    rows = [",".join(keys)] + [",".join(f"{h[k]:.9g}" for k in keys) for h in history]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(rows) + "\n")
    tmp.replace(path)
