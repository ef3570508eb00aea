"""Process-level settings of the ``nstm`` command: the memory allocator and the compile cache.

Both only affect speed. Each can be turned off with an environment variable, and neither is
applied when nstm is used as a library (the caller owns its process).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# glibc serves each large buffer with a fresh mmap and page-faults it in on every training step;
# with transparent huge pages that costs ~512x fewer faults (about 2x faster steps on CPU).
HUGEPAGE_TUNABLE = "glibc.malloc.hugetlb=1"
_THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def _thp_mode() -> str | None:
    try:
        text = _THP_MODE.read_text()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else None


def allocator_env(environ: dict[str, str]) -> dict[str, str] | None:
    """The environment to re-run with so glibc uses transparent huge pages, or None.

    None when not on Linux, when huge pages are already ``always`` on (or ``never``, or
    unknown), when ``GLIBC_TUNABLES`` already sets ``glibc.malloc.hugetlb``, or when
    ``NSTM_NO_ALLOCATOR_TUNING`` is set.
    """
    if not sys.platform.startswith("linux") or environ.get("NSTM_NO_ALLOCATOR_TUNING"):
        return None
    tunables = environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" in tunables or _thp_mode() != "madvise":
        return None
    env = dict(environ)
    env["GLIBC_TUNABLES"] = f"{tunables}:{HUGEPAGE_TUNABLE}" if tunables else HUGEPAGE_TUNABLE
    return env


def reexec_with_tuned_allocator(argv: list[str]) -> None:
    """Replace this process by ``python -m nstm.cli ARGV`` with the tuned allocator.

    glibc reads its tunables at start-up only, hence the re-exec. Returns (doing nothing)
    when no tuning applies; otherwise does not return.
    """
    env = allocator_env(dict(os.environ))
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "nstm.cli", *argv], env)


def compilation_cache_dir(environ: dict[str, str]) -> Path | None:
    """Where compiled programs are kept between runs: ``NSTM_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/nstm/jax`` (``~/.cache/nstm/jax``); None if ``NSTM_CACHE_DIR`` is empty."""
    if "NSTM_CACHE_DIR" in environ:
        value = environ["NSTM_CACHE_DIR"]
        return Path(value).expanduser() if value else None
    base = environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nstm" / "jax"


def enable_compilation_cache(directory: Path | None) -> None:
    """Keep XLA's compiled programs on disk so a second run of the same shapes skips compiling.

    Compiling a training step takes seconds on a laptop CPU; loading it takes milliseconds.
    """
    if directory is None:
        return
    import jax

    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
