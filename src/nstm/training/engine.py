"""The training engine: one jitted step, progress, checkpoints, resume, clean interrupts.

Loss for a step over measurements ``m`` (``frames_per_step`` of them)::

    L = mean_m [ data_loss_m(scenes_m) + regularization(scenes_m) ]

where ``scenes_m`` is the model rendered at ``system.render_times[m]`` with the coarse-to-fine
``alpha`` of the step. The measurements of a step are drawn from a key folded with the step
number, so a resumed run draws exactly what an uninterrupted run would.

With several CPU devices (the ``nstm`` command makes one per core), a step's measurements are
split across them and the losses and gradients averaged (data parallelism): each device then
runs its share of the step as one sequence of operations on cache-sized blocks, which keeps
the cores busier than splitting every operation between them (figures: "Design figures cited
by the code" in ``benchmarks/README.md``). Fields a system lists in ``per_measurement`` are
divided between the devices by rows rather than copied to each.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    system: AbstractImagingSystem | None = None
    """The system with its trained parameters (the one given when none are trained)."""


def schedule_steps(config: TrainConfig) -> int:
    """Steps over which the annealing and the learning-rate decay run (``config.steps`` unless
    ``config.schedule_steps`` is set)."""
    return config.schedule_steps or config.steps


def make_optimizer(
    config: TrainConfig, *, system_trained: bool = False
) -> optax.GradientTransformation:
    """Adam per parameter group (scene, motion, and with ``system_trained`` the system's
    trainable parameters), each with its own decaying learning rate, for the training step's
    ``(model, system_params)``.

    Each group's parameters are updated as one flat vector (``optax.flatten``): the same
    arithmetic as per array, but one fused loop instead of a few per array, which compiles and
    runs faster.
    """

    def adam(lr: float) -> optax.GradientTransformation:
        if lr == 0:
            return optax.set_to_zero()
        schedule = exponential_decay(lr, schedule_steps(config), config.final_lr_fraction)
        return optax.flatten(
            optax.adam(schedule, b1=config.adam_b1, b2=config.adam_b2, eps=config.adam_eps)
        )

    def labels(params):
        model, system_params = params
        return param_labels(model), jax.tree.map(lambda _: "system", system_params)

    groups = {"scene": adam(config.scene_lr), "motion": adam(config.motion_lr)}
    if system_trained:
        groups["system"] = adam(config.system_lr)
    return optax.multi_transform(groups, labels)


def trainable_filter(system: AbstractImagingSystem, config: TrainConfig):
    """A tree like ``system``, True at the array leaves that training updates: those of its
    ``trainable`` fields when ``config.system_lr > 0``, else none."""
    spec = jax.tree.map(lambda _: False, system)
    if config.system_lr == 0 or not system.trainable:
        return spec
    names = tuple(system.trainable)
    for name in names:
        value = getattr(system, name, None)
        if not jax.tree.leaves(eqx.filter(value, eqx.is_array)):
            raise ValueError(
                f"{type(system).__name__}.trainable names {name!r}, which holds no array"
            )
    return eqx.tree_at(
        lambda s: tuple(getattr(s, n) for n in names),
        spec,
        tuple(jax.tree.map(lambda _: True, getattr(system, n)) for n in names),
    )


def initial_params(model: SpaceTimeModel, system: AbstractImagingSystem, config: TrainConfig):
    """What the training step updates: ``(model, system_params)``, the system's trainable
    arrays (``None`` at every other leaf; no leaves at all when they are frozen)."""
    return model, eqx.filter(system, trainable_filter(system, config))


def with_params(system: AbstractImagingSystem, system_params) -> AbstractImagingSystem:
    """``system`` with its trainable arrays replaced by those of ``system_params``."""
    if not jax.tree.leaves(system_params):
        return system
    return eqx.combine(system_params, system)


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
    origins = system.render_origins
    if origins is None:
        scenes = model.render(times.reshape(-1), alpha=alpha, chunk_points=chunk_points)
    else:
        scenes = model.render(
            times.reshape(-1),
            alpha=alpha,
            chunk_points=chunk_points,
            origins=origins[indices].reshape(batch * renders, -1),
            box=system.render_shape,
        )
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


def split_fields(
    system: AbstractImagingSystem,
    config: TrainConfig,
    devices: Sequence[jax.Device],
    frames_per_step: int,
) -> tuple[str, ...]:
    """The system's ``per_measurement`` fields whose rows are divided across ``devices``
    (each device holds and fits only its share of the measurements), or none, in which case
    every device holds every array.

    Dividing needs as many measurements on each device (their number and ``frames_per_step``
    divisible by the devices') and no trained field among them (a trained per-measurement
    field stays whole, so that its gradient is one array).
    """
    count = len(devices)
    fields = tuple(system.per_measurement)
    trained = set(system.trainable) if config.system_lr > 0 else set()
    if (
        count < 2
        or not fields
        or system.num_measurements % count
        or frames_per_step % count
        or trained & set(fields)
    ):
        return ()
    return fields


def _field_mask(system: AbstractImagingSystem, names: Sequence[str]):
    """A tree like ``system``, True at the array leaves of the fields ``names``."""
    mask = jax.tree.map(lambda _: False, system)
    if not names:
        return mask
    return eqx.tree_at(
        lambda s: tuple(getattr(s, n) for n in names),
        mask,
        tuple(jax.tree.map(lambda _: True, getattr(system, n)) for n in names),
    )


def _split_over_devices(loss_fn, devices: Sequence[jax.Device], system_split):
    """Value and gradient of ``loss_fn(params, system, indices, alpha) -> (loss, aux)`` with
    ``indices`` split across ``devices``.

    ``system_split`` is a tree like the system's arrays, True where an array's rows are
    divided across the devices (then ``indices`` index each device's share) and False where
    every device holds it whole. The loss is a mean over measurements and every device gets as
    many, so the batch's loss, ``aux`` and gradient are the means of the devices'. Each device
    differentiates its loss divided by their number and the results are summed: the division
    then costs one scalar in the backward pass, where averaging afterwards would compile a
    kernel per gradient array.
    """
    mesh = _batch_mesh(devices)
    replicated, split = PartitionSpec(), PartitionSpec("batch")
    share = 1.0 / len(devices)
    system_specs = jax.tree.map(lambda divided: split if divided else replicated, system_split)

    def run(params, system, indices, alpha):
        params_arrays, params_static = eqx.partition(params, eqx.is_array)
        system_arrays, system_static = eqx.partition(system, eqx.is_array)

        def local(params_arrays, system_arrays, indices, alpha):
            system = eqx.combine(system_arrays, system_static)

            def part(params):
                loss, aux = loss_fn(params, system, indices, alpha)
                return loss * share, jax.tree.map(lambda a: a * share, aux)

            out = eqx.filter_value_and_grad(part, has_aux=True)(
                eqx.combine(params_arrays, params_static)
            )
            return jax.lax.psum(out, "batch")

        # check_vma=False: the networks' block loops start from constants (replicated) and
        # carry per-device values; the outputs are made replicated by the psum.
        return jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(replicated, system_specs, split, replicated),
            out_specs=replicated,
            check_vma=False,
        )(params_arrays, system_arrays, indices, alpha)

    return run


def make_train_step(
    optimizer: optax.GradientTransformation,
    *,
    num_measurements: int,
    frames_per_step: int,
    anneal_steps: int,
    chunk_points: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    system_split: Any = None,
):
    """The jitted update ``(params, opt_state, system, step, key) -> (params, opt_state,
    stats)``, where ``params`` is ``(model, system_params)`` (:func:`initial_params`).

    With several ``devices`` (their number must divide ``frames_per_step``), each computes the
    loss and gradients of its share of the step's measurements, in chunks of ``chunk_points``
    over their number, and they are averaged; the arguments must then be placed on them
    (:func:`make_fit_step`'s step places them). ``system_split`` (a tree like the system's
    arrays, from :func:`split_fields`) marks the arrays whose rows are divided across the
    devices; it needs ``num_measurements`` divisible by their number. None: none are.
    """
    alpha_at = coarse_to_fine(anneal_steps)
    count = len(devices) if devices is not None else 1
    split = count > 1
    if split and frames_per_step % count:
        raise ValueError(
            f"frames_per_step ({frames_per_step}) must be a multiple of the number of "
            f"devices ({count})"
        )
    divided = split and system_split is not None and any(jax.tree.leaves(system_split))
    if divided and num_measurements % count:
        raise ValueError(
            f"num_measurements ({num_measurements}) must be a multiple of the number of "
            f"devices ({count}) to divide the measurements' arrays across them"
        )
    if split and chunk_points is not None:
        # The devices' chunks are in memory at once: together they keep to chunk_points.
        chunk_points = max(1, chunk_points // count)

    def loss_fn(params, system, indices, alpha):
        model, system_params = params
        return step_loss(model, with_params(system, system_params), indices, alpha, chunk_points)

    if split:
        if system_split is None or not divided:
            system_split = False  # every array whole on every device (a tree prefix)
        loss_and_grads = _split_over_devices(loss_fn, devices, system_split)
    else:
        loss_and_grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)

    def sample(step, key):
        """The step's measurement indices; with divided arrays, each device's share indexes
        its own rows (``num_measurements / devices`` of them), drawn per device."""
        if frames_per_step == num_measurements:
            local = num_measurements // count if divided else num_measurements
            return jnp.tile(jnp.arange(local), num_measurements // local)
        key = jax.random.fold_in(key, step)
        if not divided:
            return jax.random.choice(key, num_measurements, (frames_per_step,), replace=False)
        keys = jax.random.split(key, count)
        draw = functools.partial(
            jax.random.choice,
            a=num_measurements // count,
            shape=(frames_per_step // count,),
            replace=False,
        )
        return jax.vmap(lambda k: draw(k))(keys).reshape(-1)

    @eqx.filter_jit
    def train_step(params, opt_state, system, step, key):
        alpha = alpha_at(step)
        indices = sample(step, key)
        (loss, (data, reg)), grads = loss_and_grads(params, system, indices, alpha)
        with jax.named_scope("optimizer"):
            updates, opt_state = optimizer.update(
                grads, opt_state, eqx.filter(params, eqx.is_array)
            )
            params = eqx.apply_updates(params, updates)
        return params, opt_state, {"loss": loss, "data": data, "reg": reg, "alpha": alpha}

    return train_step


def make_fit_step(model: SpaceTimeModel, system: AbstractImagingSystem, config: TrainConfig):
    """What :func:`fit` trains with: ``(train_step, initial opt_state, sampling key)``.

    ``train_step`` is :func:`make_train_step`'s update ``(params, opt_state, system, step,
    key)`` for this system and config, ``params`` from :func:`initial_params`, compiled on its
    first call (with the heap trimmed before it first runs); benchmarks time exactly this.
    """
    params = initial_params(model, system, config)
    optimizer = make_optimizer(config, system_trained=bool(jax.tree.leaves(params[1])))
    opt_state = eqx.filter_jit(optimizer.init)(eqx.filter(params, eqx.is_array))
    frames_per_step = config.frames_per_step or system.num_measurements
    devices = data_parallel_devices(frames_per_step)
    system_split = _field_mask(system, split_fields(system, config, devices, frames_per_step))
    train_step = _CompiledOnFirstCall(
        make_train_step(
            optimizer,
            num_measurements=system.num_measurements,
            frames_per_step=frames_per_step,
            anneal_steps=round(config.anneal_fraction * schedule_steps(config)),
            chunk_points=config.chunk_points,
            devices=devices,
            system_split=system_split,
        ),
        devices=devices,
        system_split=system_split,
    )
    key = jax.random.key(config.seed + 1)  # sampling key, independent of the init key
    return train_step, opt_state, key


def _place(tree, sharding):
    """The arrays of ``tree`` on ``sharding`` (a device or a sharding); other leaves as they are.

    Arrays already there are passed through untouched: the training step places its arguments
    on every call, and a ``device_put`` of every array each time would cost milliseconds.
    """

    def put(x):
        if not eqx.is_array(x) or getattr(x, "sharding", None) == sharding:
            return x
        return jax.device_put(x, sharding)

    return jax.tree.map(put, tree)


class _CompiledOnFirstCall:
    """A jitted function compiled ahead of its first execution, with the heap trimmed between.

    Compilation leaves a few hundred MB of freed but still mapped heap (glibc keeps it); handing
    it back to the OS before the first execution keeps it out of the process's peak memory.
    Later calls run the compiled executable
    directly; arguments must keep the shapes of the first call, as training's do. With several
    ``devices``, array arguments ``(params, opt_state, system, step, key)`` are placed on them
    first: the system's arrays marked in ``system_split`` divided by rows, everything else
    replicated (a no-op once they are, as the step's outputs are).
    """

    def __init__(self, jitted, devices: Sequence[jax.Device] = (), system_split: Any = None):
        self._jitted = jitted
        self._compiled = None
        self.devices = list(devices)
        self._sharding = None
        self._system_sharding = None
        if len(self.devices) > 1:
            mesh = _batch_mesh(self.devices)
            self._sharding = NamedSharding(mesh, PartitionSpec())
            rows = NamedSharding(mesh, PartitionSpec("batch"))
            if system_split is not None and any(jax.tree.leaves(system_split)):
                self._system_sharding = jax.tree.map(
                    lambda divided: rows if divided else self._sharding, system_split
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
        """``args`` (``(params, opt_state, system, ...)``) on this step's devices."""
        if self._sharding is None:
            return args
        args = tuple(args)
        placed = [_place(a, self._sharding) for a in args]
        if self._system_sharding is not None and len(args) > 2:
            placed[2] = _place_tree(args[2], self._system_sharding)
        return tuple(placed)

    def __call__(self, *args):
        args = self.place(args)
        if self._compiled is None:
            self.compile(*args)
        return self._compiled(*args)


def _place_tree(tree, shardings):
    """The arrays of ``tree`` on the matching sharding of ``shardings`` (a tree like it)."""
    arrays, static = eqx.partition(tree, eqx.is_array)

    def put(x, sharding):
        if x is None or getattr(x, "sharding", None) == sharding:
            return x
        return jax.device_put(x, sharding)

    arrays = jax.tree.map(put, arrays, shardings, is_leaf=lambda x: x is None)
    return eqx.combine(arrays, static)


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
    params = initial_params(model, system, config)
    step, history, seconds_before = 0, [], 0.0
    ckpt = Path(run_dir) / CHECKPOINT_NAME if run_dir is not None else None
    if resume:
        if ckpt is None:
            raise ValueError("resume=True needs run_dir")
        (params, opt_state), step, history = load_checkpoint(ckpt, (params, opt_state))
        seconds_before = float(read_checkpoint_header(ckpt).get("train_seconds", 0.0))
    if step > config.steps:
        raise ValueError(
            f"train.steps: the run has already trained {step} steps; ask for at least that many, "
            f"got {config.steps}"
        )
    params, opt_state, system = train_step.place((params, opt_state, system))  # once, not per step
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
    best = None  # (loss, step, params, opt_state): the lowest loss of this call so far
    try:
        while step < last:
            new_params, new_opt_state, stats = train_step(
                params, opt_state, system, jnp.asarray(step, jnp.int32), key
            )
            loss = float(stats["loss"])  # the loss of `params`, before this update
            if not math.isfinite(loss):
                raise _non_finite(loss, step, best, history, checkpoint, ckpt)
            # Periodic checkpoints hold states whose loss is known to be finite.
            if step % config.checkpoint_every == 0 and step > start_step:
                checkpoint((params, opt_state), step, history)
            if best is None or loss <= best[0]:  # a reference, not a copy
                best = (loss, step, params, opt_state)
            params, opt_state = new_params, new_opt_state
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
        checkpoint((params, opt_state), step, history)
        raise TrainingInterrupted(
            f"interrupted at step {step}"
            + (f"; checkpoint saved, continue with --resume ({ckpt})" if ckpt else "")
        ) from err
    finally:
        bar.close()
    checkpoint((params, opt_state), step, history)
    model, system_params = params
    if len(train_step.devices) > 1:  # later uses (outputs, evaluation) run on one device
        model, system_params = _place((model, system_params), train_step.devices[0])
        system = _place(system, train_step.devices[0])
    seconds = time.perf_counter() - start
    return FitResult(
        model,
        history,
        step,
        seconds,
        start_step,
        seconds_before + seconds,
        with_params(system, system_params),
    )


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
    best_loss, best_step, params, opt_state = best
    checkpoint((params, opt_state), best_step, [h for h in history if h["step"] <= best_step])
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
