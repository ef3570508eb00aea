"""The worker side: the hidden commands that the benchmark script runs in fresh processes.

``_worker`` builds one step-time case as :func:`nstm.training.engine.fit` builds it and times
its steps; ``_describe`` reports JAX's view of the machine; ``_evaluate`` scores the quality
cases (`perf.scoring`). Each prints its result as one JSON line. JAX is imported inside the
functions, so that the parent, which imports this module's names, does not start a backend.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .common import (
    BORDER_PX,
    SIM_FRAMES,
    maxrss_to_mb,
    parse_assignment,
    parse_shape,
    quantiles,
    read_proc_field,
)

WORKER_COMMANDS = ("_worker", "_describe", "_evaluate")


class CompileLog:
    """Collects JAX's compile-time events (trace, lowering, backend compile) by phase."""

    EVENTS = {
        "/jax/core/compile/jaxpr_trace_duration": "trace",
        "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
        "/jax/core/compile/backend_compile_duration": "backend_compile",
    }

    def __init__(self) -> None:
        self.phase = "setup"
        self.events: list[tuple[str, str, float]] = []

    def __call__(self, event: str, duration: float, **_: Any) -> None:
        if event in self.EVENTS:
            self.events.append((self.phase, self.EVENTS[event], duration))

    def summary(self, phase: str) -> dict[str, Any]:
        """Seconds per kind and the number of backend compilations during ``phase``."""
        out: dict[str, Any] = {f"{k}_s": 0.0 for k in self.EVENTS.values()}
        for ph, kind, duration in self.events:
            if ph == phase:
                out[f"{kind}_s"] += duration
        out = {k: round(v, 4) for k, v in out.items()}
        out["compilations"] = sum(
            1 for ph, kind, _ in self.events if ph == phase and kind == "backend_compile"
        )
        return out


def current_rss_mb() -> float | None:
    """Current resident set size of this process (Linux), in MiB."""
    value = read_proc_field("/proc/self/status", "VmRSS")
    return round(int(value.split()[0]) / 1024, 1) if value else None


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return round(maxrss_to_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss), 1)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``fn()`` blocked until its arrays are ready, and the seconds it took."""
    import jax

    start = time.perf_counter()
    result = jax.block_until_ready(fn())
    return result, time.perf_counter() - start


def device_memory() -> dict[str, float]:
    """Peak/current/limit of the first device's allocator in MiB (empty on CPU or if unknown)."""
    import jax

    if jax.default_backend() == "cpu":
        return {}
    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # some backends do not implement it
        return {}
    names = {
        "peak_bytes_in_use": "peak_device_mb",
        "bytes_in_use": "device_in_use_mb",
        "bytes_limit": "device_limit_mb",
    }
    return {new: round(stats[old] / 2**20, 1) for old, new in names.items() if old in stats}


def array_megabytes(tree: Any) -> tuple[int, float]:
    """Number of elements and MiB of the arrays in a pytree."""
    import equinox as eqx
    import jax

    leaves = jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))
    return sum(x.size for x in leaves), sum(x.nbytes for x in leaves) / 2**20


class Stepper:
    """Runs the jitted training step on its own state, the way ``fit``'s loop calls it."""

    def __init__(self, train_step: Callable, params: Any, opt_state: Any, system: Any, key: Any):
        import jax.numpy as jnp

        # Onto the step's devices once, as fit does.
        params, opt_state, system = train_step.place((params, opt_state, system))
        self.train_step, self.system, self.key = train_step, system, key
        self.params, self.opt_state, self.stats = params, opt_state, None
        self.step = 0
        self._as_step = lambda step: jnp.asarray(step, jnp.int32)

    def __call__(self) -> tuple[Any, Any, Any]:
        """Dispatch one step (without waiting for it) and return ``(params, opt_state, stats)``."""
        out = self.train_step(
            self.params, self.opt_state, self.system, self._as_step(self.step), self.key
        )
        self.params, self.opt_state, self.stats = out
        self.step += 1
        return out


def build_step_case(
    preset_name: str, shape: tuple[int, int], seed: int, overrides: Sequence[str] = ()
) -> tuple[Stepper, dict[str, Any]]:
    """Worker: simulate data, then build the system, model, optimizer and step as ``fit`` does.

    Returns
    -------
    stepper : Stepper
    figures : dict
        Timings of the simulation, the backend start-up and each part of the set-up, and the
        sizes of the problem.
    """
    import jax
    import jax.numpy as jnp

    from nstm.config import with_overrides
    from nstm.presets import preset
    from nstm.runs import build_model
    from nstm.systems.dpc import DPC
    from nstm.systems.dpc.simulation import DPCSimulationConfig, simulate_dpc
    from nstm.training import make_fit_step
    from nstm.training.engine import initial_params

    config = with_overrides(preset(preset_name), overrides)
    train = config.train
    sim = DPCSimulationConfig(
        shape=shape,
        frames=SIM_FRAMES,
        phantom="cells",
        image_model="linear",
        periodic=True,
        motion="elastic",
        seed=seed,
    )
    (data, _), simulate_s = timed(lambda: simulate_dpc(sim))
    _, backend_init_s = timed(lambda: jnp.zeros(()) + 1)  # backend start-up, not set-up
    system, system_s = timed(lambda: DPC.from_data(data, config.system))
    model, model_s = timed(lambda: build_model(system, config.model, train.seed))

    (train_step, opt_state, key), optimizer_s = timed(lambda: make_fit_step(model, system, train))
    frames_per_step = train.frames_per_step or system.num_measurements
    stepper = Stepper(train_step, initial_params(model, system, train), opt_state, system, key)
    params, params_mb = array_megabytes(model)
    renders = int(system.render_times.shape[1])
    return stepper, {
        "backend": jax.default_backend(),
        "grid_shape": list(system.grid_shape),
        "frames_per_step": frames_per_step,
        "renders_per_frame": renders,
        "chunk_points": train.chunk_points,
        "points_per_step": frames_per_step * renders * math.prod(system.grid_shape),
        "parameters": params,
        "parameters_mb": round(params_mb, 2),
        "optimizer_state_mb": round(array_megabytes(opt_state)[1], 2),
        "simulate_s": round(simulate_s, 4),
        "backend_init_s": round(backend_init_s, 4),
        "setup_s": round(system_s + model_s + optimizer_s, 4),
        "setup_breakdown_s": {
            "system": round(system_s, 4),
            "model": round(model_s, 4),
            "optimizer": round(optimizer_s, 4),
        },
    }


def time_steps(
    stepper: Stepper, steps: int, warmup: int, pipelined_steps: int, log: CompileLog
) -> dict[str, Any]:
    """Worker: time the first call, then ``steps`` blocked steps and ``pipelined_steps``
    back-to-back steps (after ``warmup`` untimed ones)."""
    import jax

    rss_before = current_rss_mb()
    log.phase = "first_call"
    _, first_call_s = timed(stepper)
    rss_after_first = current_rss_mb()
    log.phase = "warmup"
    warmup_s = [timed(stepper)[1] for _ in range(warmup)]
    log.phase = "timed"
    step_s, dispatch_s = [], []
    for _ in range(steps):
        start = time.perf_counter()
        out = stepper()
        dispatch_s.append(time.perf_counter() - start)
        jax.block_until_ready(out)
        step_s.append(time.perf_counter() - start)
    pipelined = None
    if pipelined_steps:
        start = time.perf_counter()
        for _ in range(pipelined_steps):
            out = stepper()
        jax.block_until_ready(out)
        pipelined = round((time.perf_counter() - start) / pipelined_steps, 6)
    q = quantiles(step_s)
    return {
        "first_call_s": round(first_call_s, 4),
        "compile_s": round(first_call_s - q["median"], 4),
        "setup_compile_events": log.summary("setup"),
        "compile_events": log.summary("first_call"),
        "recompilations_after_first_call": sum(
            log.summary(phase)["compilations"] for phase in ("warmup", "timed")
        ),
        "warmup_step_s": [round(s, 5) for s in warmup_s],
        "step_s": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in q.items()},
        "step_s_all": [round(s, 6) for s in step_s],
        "dispatch_s_median": round(statistics.median(dispatch_s), 6),
        "pipelined_step_s": pipelined,
        "final_loss": float(stepper.stats["loss"]),
        "rss_mb_before_first_step": rss_before,
        "rss_mb_after_first_step": rss_after_first,
    }


def measure_step_case(
    preset_name: str,
    shape: tuple[int, int],
    steps: int,
    warmup: int,
    pipelined_steps: int,
    seed: int,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Worker: time set-up, compilation and training steps of one (preset, shape) case.

    The step is built as :func:`nstm.training.engine.fit` builds it; each timed step blocks on
    the new model, optimizer state and statistics.
    """
    import jax

    log = CompileLog()
    jax.monitoring.register_event_duration_secs_listener(log)
    stepper, figures = build_step_case(preset_name, shape, seed, overrides)
    figures.update(time_steps(stepper, steps, warmup, pipelined_steps, log))
    jax.monitoring.unregister_event_duration_listener(log)
    return {
        **figures,
        "rss_mb_end": current_rss_mb(),
        "peak_rss_mb": peak_rss_mb(),
        **device_memory(),
    }


def describe_jax() -> dict[str, Any]:
    """Worker: JAX's backend, devices and versions as seen with the workers' environment."""
    import jax

    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "devices": str(devices),
        "device_kind": getattr(devices[0], "device_kind", None),
        "jax": jax.__version__,
        **device_memory(),
    }


def worker_main(command: str, argv: Sequence[str]) -> int:
    """Run a hidden worker command and print its result as one JSON line."""
    p = argparse.ArgumentParser(prog=f"performance.py {command}")
    if command == "_worker":
        p.add_argument("--preset", required=True)
        p.add_argument("--shape", type=parse_shape, required=True)
        p.add_argument("--steps", type=int, required=True)
        p.add_argument("--warmup", type=int, required=True)
        p.add_argument("--pipelined-steps", type=int, default=0)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--set", action="append", default=[])
        a = p.parse_args(argv)
        result = measure_step_case(
            a.preset, a.shape, a.steps, a.warmup, a.pipelined_steps, a.seed, a.set
        )
    elif command == "_describe":
        p.parse_args(argv)
        result = describe_jax()
    else:
        from .scoring import evaluate_quality  # numpy and nstm: only this command needs them

        p.add_argument("--sim", type=Path, required=True)
        p.add_argument("--run", type=parse_assignment, action="append", default=[])
        p.add_argument("--border", type=int, default=BORDER_PX)
        a = p.parse_args(argv)
        runs = {k: Path(v) for k, v in a.run}
        result = evaluate_quality(a.sim, runs, a.border)
    print(json.dumps(result), flush=True)
    return 0
