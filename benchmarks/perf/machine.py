"""The machine, the software and the environment, written with the figures."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import re
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import read_proc_field
from .processes import run_worker

ENV_PREFIXES = ("JAX_", "XLA_", "CUDA_", "NVIDIA_", "OMP_", "MKL_", "OPENBLAS_", "MALLOC_")
ENV_NAMES = ("GLIBC_TUNABLES", "LD_PRELOAD")
PACKAGES = ("jax", "jaxlib", "equinox", "optax", "numpy", "jax-cuda12-plugin", "jax-cuda13-plugin")


def transparent_hugepage_mode() -> str | None:
    """The kernel's transparent huge page mode (``always``, ``madvise``, ``never``), if known."""
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return None
    match = re.search(r"\[(\w+)\]", text)
    return match[1] if match else None


def git_commit(repo: Path) -> dict[str, Any]:
    """Short commit hash and whether the tree has uncommitted changes (None if unknown)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, timeout=30, check=True
        ).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": bool(status.strip())}


def package_versions(names: Sequence[str]) -> dict[str, str | None]:
    """Installed versions of ``names`` (None when not installed); imports nothing."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def relevant_env(env: dict[str, str]) -> dict[str, str]:
    """Environment variables that can change performance (JAX, XLA, CUDA, threads, malloc)."""
    return {k: v for k, v in sorted(env.items()) if k.startswith(ENV_PREFIXES) or k in ENV_NAMES}


def describe_machine(
    repo: Path, env: dict[str, str], overrides: dict[str, str], timeout_s: float
) -> dict[str, Any]:
    """The machine, the software and the environment; JAX's view comes from a worker."""
    mem_total = read_proc_field("/proc/meminfo", "MemTotal")
    try:
        affinity: int | None = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = None
    machine = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_model": read_proc_field("/proc/cpuinfo", "model name") or platform.processor(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "ram_gb": round(int(mem_total.split()[0]) / 2**20, 2) if mem_total else None,
        "transparent_hugepage": transparent_hugepage_mode(),
        "python": sys.version.split()[0],
        "versions": package_versions(PACKAGES),
        **git_commit(repo),
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "env_overrides": overrides,
        "env_relevant": relevant_env(env),
    }
    _, machine["jax"] = run_worker(
        ["_describe"], "jax description", env=env, timeout_s=timeout_s, cwd=repo
    )
    return machine
