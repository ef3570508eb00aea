"""In-process A/B of training-step variants: all compiled in one process, their steps alternated.

    python benchmarks/ab_step.py --preset paper --shape 256x256 --rounds 14 \\
        base 'stride1:model.motion_stride_px=1' \\
        'ynn:@xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT'

A shared VM's speed drifts by tens of percent within minutes, so separate runs of two variants
mostly compare two moments. Here every variant is built and compiled in one process, then each
round runs one step of every variant (in reverse order every other round), and the report gives
each variant's median step and the median over rounds of its step divided by the first
variant's in the same round. An A/A run (identical variants) gave ratios of 0.99-1.01 on the
2-core Ice Lake VM of session 5 (benchmarks/ARCHIVE.md).

A variant is ``NAME`` or ``NAME:ITEM;ITEM;...``, each item one of

* ``section.field=value``, a run-config override (as ``performance.py --set``);
* ``@option=value``, an XLA compiler option (a field of XLA's DebugOptions) for this variant's
  step only;
* ``%module.ATTRIBUTE=value``, a module attribute set while this variant is traced (a code
  variant behind a flag read at trace time, e.g. ``%nstm.model.mlp.BLOCK_POINTS=1024``). JAX's
  caches are cleared before each variant is traced: an inner ``jax.jit`` such as
  ``nstm.model.mlp._forward`` would otherwise reuse its first trace, and the A/B be an A/A.

Other code changes are compared with ``performance.py`` runs of each commit back to back.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import statistics
import sys
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from perf.common import parse_shape, quantiles
from perf.worker import build_step_case

from nstm.cli.environment import reexec_with_tuned_allocator, tune_xla

Value = bool | int | float | str


def option_value(text: str) -> Value:
    """An XLA compiler option's value typed as XLA expects it: bool, int, float or enum name."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_variant(
    text: str,
) -> tuple[str, list[str], dict[str, Value], dict[str, Value]]:
    """``NAME[:ITEM;...]`` -> (name, run-config overrides, XLA compiler options, module
    attributes)."""
    name, _, items = text.partition(":")
    overrides, options, attributes = [], {}, {}
    for item in filter(None, (part.strip() for part in items.split(";"))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip("@%"):
            raise SystemExit(
                f"variant {name!r}: expected section.field=value, @option=value or "
                "%module.ATTRIBUTE=value"
            )
        if key.startswith("@"):
            options[key[1:]] = option_value(value)
        elif key.startswith("%"):
            attributes[key[1:]] = option_value(value)
        else:
            overrides.append(item)
    return name, overrides, options, attributes


@contextlib.contextmanager
def module_attributes(attributes: dict[str, Value]):
    """Set ``{"package.module.ATTRIBUTE": value}`` for the duration, with JAX's trace caches
    cleared on entry so that the code is traced anew."""
    saved = []
    try:
        for path, value in attributes.items():
            module_name, _, attribute = path.rpartition(".")
            module = importlib.import_module(module_name)
            if not hasattr(module, attribute):
                raise SystemExit(f"{module_name} has no attribute {attribute!r}")
            saved.append((module, attribute, getattr(module, attribute)))
            setattr(module, attribute, value)
        jax.clear_caches()
        yield
    finally:
        for module, attribute, value in reversed(saved):
            setattr(module, attribute, value)


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
        name, overrides, options, attributes = parse_variant(text)
        with module_attributes(attributes):
            stepper, _ = build_step_case(args.preset, args.shape, args.seed, overrides)
            step_args = (
                stepper.params,
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
