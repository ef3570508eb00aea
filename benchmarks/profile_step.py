"""Where the time of one training step goes.

    python benchmarks/profile_step.py --preset default --shape 256x256
    python benchmarks/profile_step.py --preset paper --shape 256x256 --trace

By default, each component's forward + backward timed alone, as training evaluates it (the
scene at every query point: frames x rendered pixels; the motion network on its lattice, or at
every point with stride 1), each as its own jitted gradient, so their sum approximates the full
step, also timed. The second column is each one's first call less a steady call: mostly its
trace and compile time, which approximates what each part adds to the step's compile.

With ``--trace``, the training step itself under ``jax.profiler``: the time of each of its
compiled operations, grouped by the component that the operation's scope names (the model's
``motion`` and ``scene`` scopes, the encodings' and MLPs' jitted functions, the engine's
``system`` and ``optimizer`` scopes), and the costliest operations. Operations run side by side
on the devices of a split step, so their times add up to more than the step's wall time.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from nstm import presets
from nstm.cli.environment import reexec_with_tuned_allocator, tune_xla
from nstm.runs import build_model
from nstm.systems.dpc import DPC
from nstm.systems.dpc.simulation import DPCSimulationConfig, simulate_dpc
from nstm.training import make_fit_step, make_optimizer
from nstm.training.engine import initial_params


def timeit(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median seconds of ``fn`` once compiled and warm, and seconds its first call took more."""
    start = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    median = float(np.median(times))
    return median, first - median


# (scope or jitted function named in an operation's op_name, component), first match wins.
_COMPONENTS = (
    ("optimizer", "optimizer update"),
    ("system", "system: forward model + loss"),
    ("motion", "motion network + interpolation"),
    ("_encode", "scene encoding"),
    ("_forward", "scene MLP"),
    ("scene", "scene, other"),
)
# Operations whose trace events contain their bodies' operations' events: an HLO instruction
# of one of these opcodes (after its result type, which ends in a bracket or brace).
_CONTAINER = re.compile(r"[\]})] (?:while|conditional|call)\(")


def hlo_operations(hlo_text: str) -> dict[str, tuple[str, str]]:
    """``{instruction name: (component, op_name)}`` of an optimized HLO module, containers
    (loops, calls) left out: their events enclose their bodies' events."""
    operations = {}
    for line in hlo_text.splitlines():
        match = re.match(r"\s*(?:ROOT\s+)?%?([\w.\-]+) = (.*)$", line)
        if match is None:
            continue
        name, rest = match.groups()
        if _CONTAINER.search(rest):
            continue
        op_match = re.search(r'op_name="([^"]*)"', rest)
        op_name = op_match.group(1) if op_match else ""
        tokens = set(re.findall(r"[A-Za-z_][\w]*", op_name))
        component = next((c for key, c in _COMPONENTS if key in tokens), None)
        if component is None:
            component = "all-reduce across devices" if " all-reduce(" in rest else "other"
        operations[name] = (component, op_name)
    return operations


def trace_step(step: Callable[[], object], hlo_text: str, repeats: int, top: int) -> None:
    """Print the step's wall time and its operations' times by component, from a profile."""
    operations = hlo_operations(hlo_text)
    for _ in range(2):
        jax.block_until_ready(step())
    per_op: dict[str, float] = collections.defaultdict(float)
    calls: collections.Counter[str] = collections.Counter()
    with tempfile.TemporaryDirectory(prefix="nstm-trace-") as trace_dir:
        jax.profiler.start_trace(trace_dir)
        start = time.perf_counter()
        for _ in range(repeats):
            jax.block_until_ready(step())
        wall = (time.perf_counter() - start) / repeats
        jax.profiler.stop_trace()
        (path,) = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
        planes = jax.profiler.ProfileData.from_file(path).planes
        for plane in planes:
            for line in plane.lines:
                for event in line.events:
                    if event.name in operations:
                        per_op[event.name] += event.duration_ns / 1e6 / repeats
                        calls[event.name] += 1
    if not per_op:
        print("no operation of the step was found in the profile (not a CPU backend?)")
        return
    by_component: dict[str, float] = collections.defaultdict(float)
    for name, ms in per_op.items():
        by_component[operations[name][0]] += ms
    total = sum(per_op.values())
    print(f"  wall time per step {wall * 1e3:.1f} ms; operations' time, summed over devices:")
    for component, ms in sorted(by_component.items(), key=lambda kv: -kv[1]):
        print(f"  {component:<40} {ms:8.1f} ms {100 * ms / total:5.1f} %")
    print(f"  {'all':<40} {total:8.1f} ms")
    print("  costliest operations (calls per step, component, HLO name, op_name):")
    for name, ms in sorted(per_op.items(), key=lambda kv: -kv[1])[:top]:
        component, op_name = operations[name]
        op_name = re.sub(r"^jit\(train_step\)/(shard_map/)?", "", op_name)
        print(
            f"  {ms:8.1f} ms {calls[name] // repeats:6d}x  {component:<31} {name:<26} "
            f"{op_name[-80:]}"
        )


def main() -> None:
    # Run as the nstm command runs (glibc huge pages, XLA's scheduler), as performance.py's
    # workers do.
    reexec_with_tuned_allocator(sys.argv[1:], program=(os.path.abspath(__file__),))
    tune_xla()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--shape", default="256x256")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--trace", action="store_true", help="profile the training step itself, by component"
    )
    ap.add_argument("--top", type=int, default=25, help="costliest operations listed (--trace)")
    args = ap.parse_args()
    h, w = (int(v) for v in args.shape.split("x"))
    config = presets.preset(args.preset)
    data, _ = simulate_dpc(
        DPCSimulationConfig(
            shape=(h, w), image_model="linear", periodic=True, photons_per_pixel=None
        )
    )
    system = DPC.from_data(data, config.system)
    model = build_model(system, config.model, config.train.seed)
    frames = system.num_measurements
    coords = jnp.tile(model.grid_coords(), (frames, 1))
    t = jnp.repeat(system.times, model.grid_coords().shape[0])
    n = coords.shape[0]
    if args.trace:
        train_step, state, key = make_fit_step(model, system, config.train)
        placed = train_step.place((initial_params(model, system, config.train), state, system))
        step_index = jnp.asarray(1, jnp.int32)
        train_step.compile(*placed, step_index, key)
        print(f"{args.preset} {h}x{w}: {n} query points per step, {args.repeats} steps traced")
        trace_step(
            lambda: train_step(*placed, step_index, key),
            train_step.as_text() or "",
            args.repeats,
            args.top,
        )
        return
    rows: list[tuple[str, tuple[float, float]]] = []

    def grad_of(f, *xs, argnums=None):
        """Gradient of sum(f(*xs) * cotangent) w.r.t. ``argnums`` (default every input); inputs
        are arguments, not constants, so XLA cannot fold them away."""
        argnums = tuple(range(len(xs))) if argnums is None else argnums
        g = jax.jit(jax.grad(lambda *a: jnp.sum(f(*a) * 1e-3), argnums=argnums))
        return lambda: g(*xs)

    m = model
    scene_feats = m.scene_encoding(coords)
    motion_params, motion_static = eqx.partition(
        (m.motion_encoding, m.motion_mlp), eqx.is_inexact_array
    )

    def with_motion(params):
        encoding, mlp = eqx.combine(params, motion_static)
        return eqx.tree_at(lambda mm: (mm.motion_encoding, mm.motion_mlp), m, (encoding, mlp))

    if m.motion_stride_px > 1:
        # What training does: the network on the lattice, interpolated to every pixel.
        rows.append(
            (
                f"motion ({m.motion_stride_px} px lattice + interpolation)",
                timeit(
                    grad_of(
                        lambda mp: with_motion(mp)._lattice_displacement(system.times, None),
                        motion_params,
                    ),
                    args.repeats,
                ),
            )
        )
    else:
        rows.append(
            (
                "motion network at every point",
                timeit(
                    grad_of(lambda mp: with_motion(mp).motion_network(coords, t), motion_params),
                    args.repeats,
                ),
            )
        )
    rows.append(
        (
            "scene encoding (tables, coords)",
            timeit(
                grad_of(
                    lambda tb, x: eqx.tree_at(lambda e: e.tables, m.scene_encoding, tb)(x),
                    m.scene_encoding.tables,
                    coords,
                ),
                args.repeats,
            ),
        )
    )
    rows.append(
        ("scene MLP", timeit(grad_of(lambda p, x: p(x), m.scene_mlp, scene_feats), args.repeats))
    )
    scenes = m.render(system.times)
    dl = jax.jit(
        jax.grad(lambda s: jnp.sum(jax.vmap(system.data_loss)(s[:, None], jnp.arange(frames))))
    )
    rows.append(("DPC forward model + loss", timeit(lambda: dl(scenes), args.repeats)))
    train_step, state, key = make_fit_step(model, system, config.train)
    opt = make_optimizer(config.train)
    params = eqx.filter(initial_params(model, system, config.train), eqx.is_array)
    upd = eqx.filter_jit(lambda g, s: opt.update(g, s, params))
    rows.append(("optimizer update", timeit(lambda: upd(params, state), args.repeats)))
    placed = train_step.place((initial_params(model, system, config.train), state, system))
    full = timeit(lambda: train_step(*placed, jnp.asarray(1, jnp.int32), key), args.repeats)
    print(f"{args.preset} {h}x{w}: {n} query points per step")
    print(f"  {'part':<40} {'per call':>10} {'first call more':>16}")
    for name, (secs, extra) in [
        *rows,
        ("sum of components", tuple(map(sum, zip(*(r for _, r in rows), strict=True)))),
        ("full training step", full),
    ]:
        print(f"  {name:<40} {secs * 1e3:7.1f} ms {extra:14.2f} s")


if __name__ == "__main__":
    main()
