"""Process settings of the nstm command: allocator re-exec and the compilation cache."""

import subprocess
import sys
from pathlib import Path

import pytest

from nstm.cli import environment


@pytest.fixture
def thp(tmp_path, monkeypatch):
    """Point the THP mode file at a temporary file; returns a setter."""
    path = tmp_path / "enabled"
    monkeypatch.setattr(environment, "_THP_MODE", path)
    monkeypatch.setattr(sys, "platform", "linux")

    def set_mode(text: str) -> None:
        path.write_text(text)

    return set_mode


def test_allocator_env_adds_hugepage_tunable_in_madvise_mode(thp):
    thp("always [madvise] never\n")
    env = environment.allocator_env({"PATH": "/bin"})
    assert env == {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}


def test_allocator_env_keeps_existing_tunables(thp):
    thp("always [madvise] never\n")
    env = environment.allocator_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"


@pytest.mark.parametrize(
    ("mode", "environ"),
    [
        ("[always] madvise never\n", {}),  # huge pages already used
        ("always madvise [never]\n", {}),  # nothing to gain
        ("always [madvise] never\n", {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}),  # user's
        ("always [madvise] never\n", {"NSTM_NO_ALLOCATOR_TUNING": "1"}),  # opted out
    ],
)
def test_allocator_env_leaves_process_alone(thp, mode, environ):
    thp(mode)
    assert environment.allocator_env(environ) is None


def test_allocator_env_without_thp_file(monkeypatch, tmp_path):
    monkeypatch.setattr(environment, "_THP_MODE", tmp_path / "missing")
    assert environment.allocator_env({}) is None


def test_compilation_cache_dir(tmp_path):
    assert environment.compilation_cache_dir({"NSTM_CACHE_DIR": str(tmp_path)}) == tmp_path
    assert environment.compilation_cache_dir({"NSTM_CACHE_DIR": ""}) is None
    assert environment.compilation_cache_dir({"XDG_CACHE_HOME": "/c"}) == Path("/c/nstm/jax")


def test_console_entry_point_reexecs_once_and_runs(tmp_path):
    """``python -m nstm.cli`` re-executes itself with the tunable (where it applies) and runs."""
    env = {
        "PATH": "/usr/bin:/bin",
        "NSTM_CACHE_DIR": str(tmp_path / "cache"),
        "HOME": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "-m", "nstm.cli", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "nstm reconstruct dpc DATA" in out.stdout
