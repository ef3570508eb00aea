"""A plain-autodiff JAX step of the paper architecture, timed against nstm's in one process.

``../shared/reference/performance-notes.md`` times a plain JAX implementation of this step
(straightforward ``jnp``, ``jax.value_and_grad``, ``jit``; no custom VJPs, blocking or layout
work) on the CPU the issue's targets were set on (2 vCPU AMD EPYC Zen 5): 0.105 s at 4 x 128²
and 2.04 s at 4 x 320 x 1000 with glibc's huge pages. This script re-creates that design point
so that

1. its step time here, against the notes', says how this machine compares with that one, and
2. nstm's ``paper`` step divided by it, the two alternated in one process, is a speed-up that
   does not depend on the machine or on the minute (a shared VM drifts by tens of percent).

The plain step: scene hash grid 8 levels x 2 features x 2^16 entries over a box twice the
image (levels from 0.1 n to 0.8 n cells per axis, dense where the grid fits the table, else
hashed with the instant-NGP primes) + MLP 16-128-128-2 with tanh-GELU; motion hash grid over
(y, x, t) (1 to 0.012 n cells, 1 to 2 in time) + MLP 16-32-32-2 with ELU, at every pixel; the
linear DPC model (two transfer functions per frame, FFTs); mean squared error; Adam.

    python benchmarks/plain_step.py --shapes 128x128,256x256,320x1000 --rounds 10
    python benchmarks/plain_step.py --shapes 128x128 --no-nstm   # the plain step alone
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from perf.common import parse_list, parse_shape, quantiles
from perf.worker import build_step_case

from nstm.cli.environment import reexec_with_tuned_allocator, tune_xla

FRAMES = 4
LEVELS = 8
FEATURES = 2
LOG2_TABLE = 16
PRIMES = (1, 2654435761, 805459861)  # instant-NGP's spatial-hash primes


def geometric_resolutions(coarsest: float, finest: float) -> np.ndarray:
    """``(LEVELS,)`` integer cell counts growing geometrically from ``coarsest`` to ``finest``."""
    return np.maximum(1, np.round(np.geomspace(coarsest, finest, LEVELS))).astype(np.int64)


def encode(tables: jax.Array, coords: jax.Array, resolutions: np.ndarray) -> jax.Array:
    """Multiresolution hash encoding, written plainly.

    tables ``(LEVELS, T, FEATURES)``; coords ``(P, D)`` in [0, 1]; resolutions ``(LEVELS, D)``
    cells per axis. Returns ``(P, LEVELS * FEATURES)``.
    """
    size = tables.shape[1]
    dims = coords.shape[1]
    features = []
    for level, res in enumerate(resolutions):
        x = coords * jnp.asarray(res, coords.dtype)
        cell = jnp.minimum(jnp.floor(x), jnp.asarray(res - 1, coords.dtype))
        frac = x - cell
        cell = cell.astype(jnp.uint32)
        dense = int(np.prod(res + 1)) <= size
        strides = np.cumprod([1, *(res[:-1] + 1)])
        out = 0.0
        for corner in itertools.product((0, 1), repeat=dims):
            vertex = cell + jnp.asarray(corner, jnp.uint32)
            if dense:
                index = sum(vertex[:, d] * np.uint32(strides[d]) for d in range(dims))
            else:
                index = vertex[:, 0] * np.uint32(PRIMES[0])
                for d in range(1, dims):
                    index = index ^ (vertex[:, d] * np.uint32(PRIMES[d]))
                index = index % np.uint32(size)
            weight = jnp.prod(
                jnp.stack([frac[:, d] if bit else 1 - frac[:, d] for d, bit in enumerate(corner)]),
                axis=0,
            )
            out = out + weight[:, None] * tables[level][index]
        features.append(out)
    return jnp.concatenate(features, axis=-1)


def mlp(layers: list[tuple[jax.Array, jax.Array]], x: jax.Array, activation) -> jax.Array:
    for w, b in layers[:-1]:
        x = activation(x @ w + b)
    w, b = layers[-1]
    return x @ w + b


def init_mlp(rng: np.random.Generator, sizes: Sequence[int], zero_out: bool) -> list:
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)
        layers.append((jnp.asarray(w), jnp.zeros(fan_out, jnp.float32)))
    if zero_out:
        layers[-1] = (jnp.zeros_like(layers[-1][0]), layers[-1][1])
    return layers


def build_plain_step(shape: tuple[int, int], seed: int = 0):
    """``(step, state)``: the jitted plain step ``state -> (state, loss)`` and its first state."""
    height, width = shape
    rng = np.random.default_rng(seed)
    n = np.array([height, width], np.float64)
    scene_res = np.stack(
        [geometric_resolutions(0.1 * m, 0.8 * m) for m in n], axis=1
    )  # (LEVELS, 2)
    motion_spatial = [geometric_resolutions(1, max(1, round(0.012 * m))) for m in n]
    motion_res = np.stack([*motion_spatial, geometric_resolutions(1, 2)], axis=1)  # (LEVELS, 3)

    def table() -> jax.Array:
        t = rng.uniform(-1e-4, 1e-4, (LEVELS, 2**LOG2_TABLE, FEATURES)).astype(np.float32)
        return jnp.asarray(t)

    params = {
        "scene_table": table(),
        "scene_mlp": init_mlp(rng, (LEVELS * FEATURES, 128, 128, 2), zero_out=False),
        "motion_table": table(),
        "motion_mlp": init_mlp(rng, (LEVELS * FEATURES, 32, 32, 2), zero_out=True),
    }
    yy, xx = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    pixels = np.stack([yy.ravel(), xx.ravel()], 1).astype(np.float32)  # (HW, 2)
    times = np.linspace(0, 1, FRAMES, dtype=np.float32)
    motion_in = np.concatenate(
        [
            np.concatenate([pixels / np.maximum(n - 1, 1), np.full((len(pixels), 1), t)], 1)
            for t in times
        ]
    ).astype(np.float32)  # (FRAMES * HW, 3)
    spectrum = (FRAMES, height, width)
    h_abs = rng.normal(size=spectrum) + 1j * rng.normal(size=spectrum)
    h_phase = rng.normal(size=spectrum) + 1j * rng.normal(size=spectrum)
    constants = {
        "pixels": jnp.asarray(np.tile(pixels, (FRAMES, 1))),
        "motion_in": jnp.asarray(motion_in),
        "h_abs": jnp.asarray(h_abs.astype(np.complex64)),
        "h_phase": jnp.asarray(h_phase.astype(np.complex64)),
        "measured": jnp.asarray(rng.normal(size=spectrum).astype(np.float32)),
    }
    box_lo, box_size = -n / 2, 2 * n  # a box twice the image, centred on it
    optimizer = optax.adam(1e-3, b1=0.9, b2=0.99, eps=1e-15)

    def loss_fn(params, c):
        displacement = mlp(
            params["motion_mlp"],
            encode(params["motion_table"], c["motion_in"], motion_res),
            jax.nn.elu,
        )
        position = (c["pixels"] + displacement - box_lo) / box_size
        scene = mlp(
            params["scene_mlp"],
            encode(params["scene_table"], jnp.clip(position, 0.0, 1.0), scene_res),
            lambda v: jax.nn.gelu(v, approximate=True),
        ).reshape(FRAMES, height, width, 2)
        predicted = jnp.fft.ifft2(
            c["h_abs"] * jnp.fft.fft2(scene[..., 0]) + c["h_phase"] * jnp.fft.fft2(scene[..., 1])
        ).real
        return jnp.mean((predicted - c["measured"]) ** 2)

    @jax.jit
    def step(state):
        params, opt_state = state
        loss, grads = jax.value_and_grad(loss_fn)(params, constants)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return step, (params, optimizer.init(params))


class PlainStepper:
    def __init__(self, shape: tuple[int, int], seed: int):
        self.step, self.state = build_plain_step(shape, seed)

    def __call__(self):
        self.state, loss = self.step(self.state)
        return loss


def main(argv: Sequence[str] | None = None) -> int:
    reexec_with_tuned_allocator(
        sys.argv[1:] if argv is None else list(argv), program=(os.path.abspath(__file__),)
    )
    tune_xla()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", type=parse_list, default=["128x128", "256x256"], help="HxW,...")
    ap.add_argument("--rounds", type=int, default=10, help="timed steps of each")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-nstm", action="store_true", help="time the plain step alone")
    args = ap.parse_args(argv)

    print("| shape | plain step s, median (p10-p90) | nstm paper step s | nstm / plain |")
    print("| --- | --- | --- | ---: |")
    for text in args.shapes:
        shape = parse_shape(text)
        steppers = {"plain": PlainStepper(shape, args.seed)}
        if not args.no_nstm:
            steppers["nstm"], _ = build_step_case("paper", shape, args.seed)
        for stepper in steppers.values():  # compile, then fault in the first step's memory
            jax.block_until_ready(stepper())
            jax.block_until_ready(stepper())
        times: dict[str, list[float]] = {name: [] for name in steppers}
        for r in range(args.rounds):
            for name in list(steppers)[:: 1 if r % 2 == 0 else -1]:
                start = time.perf_counter()
                jax.block_until_ready(steppers[name]())
                times[name].append(time.perf_counter() - start)
        cells = []
        for name in ("plain", "nstm"):
            if name in times:
                q = quantiles(times[name])
                cells.append(f"{q['median']:.3f} ({q['p10']:.3f}-{q['p90']:.3f})")
            else:
                cells.append("-")
        ratio = "-"
        if "nstm" in times:
            pairs = zip(times["nstm"], times["plain"], strict=True)
            ratio = f"{statistics.median(a / b for a, b in pairs):.3f}"
        print(f"| 4x{text} | {cells[0]} | {cells[1]} | {ratio} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
