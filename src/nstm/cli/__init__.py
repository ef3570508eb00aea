"""The ``nstm`` command line (see :mod:`nstm.cli.main`)."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nstm`` console script.

    Run as a program (``argv`` None) it first tunes its process: transparent huge pages for
    glibc malloc (a re-exec), XLA's memory-minimizing CPU scheduler and a persistent
    compilation cache. Heavy imports come after.
    """
    from .environment import (
        compilation_cache_dir,
        enable_compilation_cache,
        reexec_with_tuned_allocator,
        tune_xla,
    )

    if argv is None:
        reexec_with_tuned_allocator(sys.argv[1:])
        tune_xla()
        enable_compilation_cache(compilation_cache_dir(dict(os.environ)))
    from .main import main as run

    return run(argv)
