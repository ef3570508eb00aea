"""Process-level settings of the ``nstm`` command: the memory allocator, XLA's CPU scheduler,
vector width and CPU devices, and the compile cache.

They only affect speed and memory. Each can be turned off with an environment variable, and
none is applied when nstm is used as a library (the caller owns its process).
"""

from __future__ import annotations

import importlib.metadata
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


def reexec_with_tuned_allocator(
    argv: list[str], program: tuple[str, ...] = ("-m", "nstm.cli")
) -> None:
    """Replace this process by ``python PROGRAM ARGV`` (the ``nstm`` command by default; a
    benchmark script passes its own path) with the tuned allocator.

    glibc reads its tunables at start-up only, hence the re-exec. Returns (doing nothing)
    when no tuning applies; otherwise does not return.
    """
    env = allocator_env(dict(os.environ))
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *program, *argv], env)


# XLA:CPU's default scheduler favours concurrency: it starts independent work early (every hash
# level's index vectors before the first level is consumed), so more temporaries are alive at
# once. The memory-minimizing one lowers the peak memory with step times within noise
# (benchmarks/README.md). jaxlib 0.10.2 and 0.11.2 were checked to know the flag; XLA
# aborts on an unknown flag, hence the version gate (for the vector width below as well).
XLA_SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
_XLA_FLAGS_SINCE = (0, 10)

# 512-bit vectors in XLA:CPU's generated loops where the CPU has them (LLVM otherwise prefers
# 256 bits, against the clock throttling of early AVX-512 chips). With the step split across
# devices and cache-sized MLP blocks the elementwise loops are bound by arithmetic, not
# memory, and wider vectors shorten the step (benchmarks/README.md).
# A hint only: CPUs without 512-bit vectors use what they have. Checked on jaxlib 0.10.2 (the
# test suite checks that the installed jaxlib accepts every flag added here).
XLA_VECTOR_WIDTH_FLAG = "--xla_cpu_prefer_vector_width=512"

# One XLA:CPU device per core, which the training engine splits a step's measurements across
# (nstm.training.engine.data_parallel_devices), which shortens the step.
# Other work still runs on the first device with every core.
XLA_DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _jaxlib_version() -> tuple[int, ...] | None:
    try:
        text = importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
        return None
    parts = []
    for part in text.split(".")[:2]:
        if not part.isdigit():
            return None
        parts.append(int(part))
    return tuple(parts)


def xla_flags_env(environ: dict[str, str], cores: int | None = None) -> str | None:
    """``XLA_FLAGS`` with XLA:CPU's memory-minimizing scheduler, 512-bit vectors and one CPU
    device per core (``cores``, default :func:`usable_cores`) added, or None when none is.

    None when ``NSTM_NO_XLA_TUNING`` is set. Each flag is left out where ``XLA_FLAGS`` already
    sets it; the scheduler's and the vector width's also where jaxlib is older than the
    versions known to accept them, the device count's on a single core.
    """
    flags = environ.get("XLA_FLAGS", "")
    if environ.get("NSTM_NO_XLA_TUNING"):
        return None
    added = []
    version = _jaxlib_version()
    known = version is not None and version >= _XLA_FLAGS_SINCE
    if known and "concurrency_optimized_scheduler" not in flags:
        added.append(XLA_SCHEDULER_FLAG)
    if known and "xla_cpu_prefer_vector_width" not in flags:
        added.append(XLA_VECTOR_WIDTH_FLAG)
    cores = usable_cores() if cores is None else cores
    if cores > 1 and XLA_DEVICE_COUNT_FLAG not in flags:
        added.append(f"{XLA_DEVICE_COUNT_FLAG}={cores}")
    return " ".join([flags, *added]).strip() if added else None


def tuned_env(environ: dict[str, str]) -> dict[str, str]:
    """``environ`` with every process setting of the ``nstm`` command that applies (the glibc
    huge-page tunable, XLA's scheduler, vector width and CPU devices), for running other
    processes as the command runs."""
    env = allocator_env(environ) or dict(environ)
    flags = xla_flags_env(env)
    return env if flags is None else {**env, "XLA_FLAGS": flags}


def tune_xla() -> None:
    """Apply :func:`xla_flags_env` to this process; call before JAX starts its backend."""
    flags = xla_flags_env(dict(os.environ))
    if flags is not None:
        os.environ["XLA_FLAGS"] = flags


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
