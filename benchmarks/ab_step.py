"""In-process A/B of training-step variants: all compiled in one process, their steps alternated.

    python benchmarks/ab_step.py --preset paper --shape 256x256 --rounds 14 \\
        base 'stride1:model.motion_stride_px=1' \\
        'ynn:@xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT'

A shared VM's speed drifts by tens of percent within minutes, so separate runs of two variants
mostly compare two moments. Here every variant is built and compiled in one process, then each
round runs one step of every variant (in reverse order every other round), and the report gives
each variant's median step and the median over rounds of its step divided by the first
variant's in the same round. An A/A run (identical variants) gave ratios of 0.99-1.01 on the
2-core VM of benchmarks/README.md.

A variant is ``NAME`` or ``NAME:ITEM;ITEM;...``, each item either a run-config override
``section.field=value`` (as ``performance.py --set``) or ``@option=value``, an XLA compiler
option (a field of XLA's DebugOptions) for this variant's step only. Code changes are compared
by switching them on a module flag read at trace time (call ``jax.clear_caches()`` before
tracing each variant: an inner ``jax.jit`` such as ``nstm.model.mlp._forward`` otherwise reuses
its first trace and the comparison is an A/A), or with ``performance.py`` runs of each commit
back to back.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from performance import build_step_case, parse_shape, quantiles

from nstm.cli.environment import reexec_with_tuned_allocator, tune_xla


def option_value(text: str) -> bool | int | float | str:
    """An XLA compiler option's value typed as XLA expects it: bool, int, float or enum name."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_variant(text: str) -> tuple[str, list[str], dict[str, bool | int | float | str]]:
    """``NAME[:ITEM;...]`` -> (name, run-config overrides, XLA compiler options)."""
    name, _, items = text.partition(":")
    overrides, options = [], {}
    for item in filter(None, (part.strip() for part in items.split(";"))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip("@"):
            raise SystemExit(f"variant {name!r}: expected section.field=value or @option=value")
        if key.startswith("@"):
            options[key[1:]] = option_value(value)
        else:
            overrides.append(item)
    return name, overrides, options


def main(argv: Sequence[str] | None = None) -> int:
    # Run as the nstm command runs (glibc huge pages, XLA's scheduler), as performance.py's
    # workers do.
    reexec_with_tuned_allocator(
        sys.argv[1:] if argv is None else list(argv), program=(os.path.abspath(__file__),)
    )
    tune_xla()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="+", help="NAME or NAME:ITEM;ITEM (see above)")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--shape", type=parse_shape, default=(256, 256), help="HxW")
    ap.add_argument("--rounds", type=int, default=12, help="timed steps per variant")
    ap.add_argument("--seed", type=int, default=0, help="simulation seed")
    args = ap.parse_args(argv)

    built = []
    for text in args.variants:
        name, overrides, options = parse_variant(text)
        stepper, _ = build_step_case(args.preset, args.shape, args.seed, overrides)
        step_args = (
            stepper.model,
            stepper.opt_state,
            stepper.system,
            jnp.asarray(0, jnp.int32),
            stepper.key,
        )
        start = time.perf_counter()
        stepper.train_step.compile(*step_args, compiler_options=options or None)
        compile_s = time.perf_counter() - start
        jax.block_until_ready(stepper())  # first execution: faults in its memory
        built.append((name, stepper, compile_s))
        print(f"built {name}: compiled in {compile_s:.1f} s", flush=True)

    times: dict[str, list[float]] = {name: [] for name, _, _ in built}
    for r in range(args.rounds):
        for name, stepper, _ in built if r % 2 == 0 else built[::-1]:
            start = time.perf_counter()
            jax.block_until_ready(stepper())
            times[name].append(time.perf_counter() - start)

    first = times[built[0][0]]
    print(f"\n{args.preset} {args.shape[0]}x{args.shape[1]}, {args.rounds} rounds")
    print("| variant | step s, median (p10-p90) | ratio to the first | compile s | loss |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, stepper, compile_s in built:
        q = quantiles(times[name])
        ratio = statistics.median(t / b for t, b in zip(times[name], first, strict=True))
        print(
            f"| {name} | {q['median']:.3f} ({q['p10']:.3f}-{q['p90']:.3f}) | {ratio:.3f} "
            f"| {compile_s:.1f} | {float(stepper.stats['loss']):.6g} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
