"""Process settings of the nstm command: allocator re-exec and the compilation cache."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nstm.cli import environment
from nstm.cli.main import USAGE


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
    # Every interpreter start (an exec keeps the process id) logs its pid and tunables.
    site = tmp_path / "site"
    site.mkdir()
    log = tmp_path / "starts.log"
    (site / "sitecustomize.py").write_text(
        "import os\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(f\"{os.getpid()} {os.environ.get('GLIBC_TUNABLES', '-')}\\n\")\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "NSTM_CACHE_DIR": str(tmp_path / "cache"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(site),
    }
    out = subprocess.run(
        [sys.executable, "-m", "nstm.cli", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # The command's usage and its list of systems, printed once.
    assert out.stdout.startswith(USAGE + "\n") and out.stdout.count(USAGE) == 1
    assert "SYSTEM is one of:" in out.stdout
    starts = [line.split() for line in log.read_text().splitlines()]
    if environment.allocator_env(env) is None:  # this machine's huge pages: nothing to tune
        assert [tunables for _, tunables in starts] == ["-"]
    else:  # one re-exec, in place, with the tunable; the second start does not exec again
        assert [tunables for _, tunables in starts] == ["-", environment.HUGEPAGE_TUNABLE]
        assert starts[0][0] == starts[1][0]
    assert (tmp_path / "cache").is_dir()  # the compilation cache where NSTM_CACHE_DIR says


DEVICES = "--xla_force_host_platform_device_count"


def test_xla_flags_add_the_scheduler_vector_width_and_a_device_per_core(monkeypatch):
    monkeypatch.setattr(environment, "_jaxlib_version", lambda: (0, 10))
    flags = f"{environment.XLA_SCHEDULER_FLAG} {environment.XLA_VECTOR_WIDTH_FLAG}"
    assert environment.xla_flags_env({}, cores=1) == flags
    assert environment.xla_flags_env({}, cores=4) == f"{flags} {DEVICES}=4"
    assert (
        environment.xla_flags_env({"XLA_FLAGS": "--xla_dump_to=/d"}, cores=2)
        == f"--xla_dump_to=/d {flags} {DEVICES}=2"
    )


@pytest.mark.parametrize(
    ("version", "environ", "expected"),
    [
        # a jaxlib that may not know the scheduler flag (XLA aborts on unknown flags)
        ((0, 4), {}, f"{DEVICES}=2"),
        (None, {}, f"{DEVICES}=2"),  # jaxlib's version unknown
        (
            (0, 11),
            {
                "XLA_FLAGS": "--xla_cpu_enable_concurrency_optimized_scheduler=true "
                f"--xla_cpu_prefer_vector_width=256 {DEVICES}=3"
            },
            None,
        ),
        ((0, 11), {"NSTM_NO_XLA_TUNING": "1"}, None),  # opted out
    ],
)
def test_xla_flags_the_user_set_are_left_alone(monkeypatch, version, environ, expected):
    monkeypatch.setattr(environment, "_jaxlib_version", lambda: version)
    assert environment.xla_flags_env(environ, cores=2) == expected


def test_usable_cores_is_the_affinity_else_the_cpu_count(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert environment.usable_cores() == 3
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert environment.usable_cores() == 6


def test_installed_jaxlib_accepts_the_flags(tmp_path):
    # The gate's promise: where a flag is added, XLA accepts it (it aborts on unknown flags),
    # and the devices it asks for exist.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "JAX_PLATFORMS": "cpu"}
    flags = environment.xla_flags_env(env, cores=3)
    if environment.XLA_SCHEDULER_FLAG not in flags:
        pytest.skip("jaxlib older than the versions known to accept the scheduler flag")
    code = "import jax, jax.numpy as jnp; print(float(jnp.ones(3).sum()), len(jax.devices()))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "XLA_FLAGS": flags},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["3.0", "3"]


def test_tuned_env_applies_both_settings(thp, monkeypatch):
    thp("always [madvise] never\n")
    monkeypatch.setattr(environment, "_jaxlib_version", lambda: (0, 10))
    env = environment.tuned_env({"PATH": "/bin"})
    assert env == {
        "PATH": "/bin",
        "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1",
        "XLA_FLAGS": f"{environment.XLA_SCHEDULER_FLAG} {environment.XLA_VECTOR_WIDTH_FLAG}"
        + (f" {DEVICES}={environment.usable_cores()}" if environment.usable_cores() > 1 else ""),
    }


@pytest.mark.parametrize(
    ("program", "expected"),
    [((), ("-m", "nstm.cli")), (("/path/bench.py",), ("/path/bench.py",))],
)
def test_reexec_runs_the_given_program_with_the_tunable(thp, monkeypatch, program, expected):
    thp("always [madvise] never\n")
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("NSTM_NO_ALLOCATOR_TUNING", raising=False)
    calls = []
    monkeypatch.setattr(environment.os, "execve", lambda *a: calls.append(a))
    environment.reexec_with_tuned_allocator(["--x", "1"], *([program] if program else []))
    ((executable, args, env),) = calls
    assert args == [sys.executable, *expected, "--x", "1"]
    assert env["GLIBC_TUNABLES"] == environment.HUGEPAGE_TUNABLE
