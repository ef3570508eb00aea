"""Child processes: run one, measure it, and read its result or why it failed."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import maxrss_to_mb

STDERR_TAIL_LINES = 25
# The script whose hidden commands (`perf.worker.WORKER_COMMANDS`) the workers run.
SCRIPT = Path(__file__).resolve().parents[1] / "performance.py"


@dataclasses.dataclass
class ChildResult:
    """Outcome of one child process."""

    returncode: int | None
    """Exit status (negative: killed by that signal); None if it timed out."""
    stdout: str
    stderr: str
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_mb: float
    """Peak resident set size of the child, from ``wait4``."""
    timed_out: bool


def run_child(
    cmd: Sequence[str], *, env: dict[str, str], timeout_s: float, cwd: Path
) -> ChildResult:
    """Run ``cmd`` and measure its wall time, CPU time and peak memory.

    The child is reaped with :func:`os.wait4`, so its resource usage is its own (not the
    maximum over every child so far, as ``RUSAGE_CHILDREN`` would give).
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        reaped: dict[str, Any] = {}

        def reap() -> None:
            _, status, usage = os.wait4(proc.pid, 0)
            reaped.update(status=status, usage=usage, end=time.perf_counter())

        waiter = threading.Thread(target=reap, daemon=True)
        waiter.start()
        waiter.join(timeout_s)
        timed_out = waiter.is_alive()
        if timed_out:
            os.kill(proc.pid, signal.SIGKILL)  # not proc.kill(): its poll() could reap the child
            waiter.join()
        status, usage = reaped["status"], reaped["usage"]
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped: tell Popen
        out.seek(0)
        err.seek(0)
        return ChildResult(
            returncode=None if timed_out else proc.returncode,
            stdout=out.read(),
            stderr=err.read(),
            wall_s=reaped["end"] - start,
            user_s=usage.ru_utime,
            sys_s=usage.ru_stime,
            maxrss_mb=maxrss_to_mb(usage.ru_maxrss),
            timed_out=timed_out,
        )


def last_json_line(stdout: str) -> dict[str, Any] | None:
    """The last line of ``stdout`` that parses as a JSON object, if any."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``text`` (at most 4000 characters)."""
    return "\n".join(text.rstrip().splitlines()[-lines:])[-4000:]


def child_figures(child: ChildResult) -> dict[str, Any]:
    """What the parent measured of a child, for the JSON."""
    return {
        "process_wall_s": round(child.wall_s, 3),
        "process_user_s": round(child.user_s, 3),
        "process_sys_s": round(child.sys_s, 3),
        "process_maxrss_mb": round(child.maxrss_mb, 1),
    }


def failure(child: ChildResult, what: str) -> dict[str, Any]:
    """A failed case: why, and the tail of the child's standard error."""
    if child.timed_out:
        reason = f"{what} timed out after {child.wall_s:.0f} s"
    elif child.returncode is not None and child.returncode < 0:
        reason = f"{what} killed by signal {-child.returncode}"
        if child.returncode == -9:
            reason += " (out of memory?)"
    elif child.returncode:
        reason = f"{what} exited with status {child.returncode}"
    else:
        reason = f"{what} printed no result"
    return {
        "status": "failed",
        "error": reason,
        "returncode": child.returncode,
        "stderr_tail": tail(child.stderr) or "(no standard error)",
        **child_figures(child),
    }


def run_worker(
    args: Sequence[str], what: str, *, env: dict[str, str], timeout_s: float, cwd: Path
) -> tuple[ChildResult, dict[str, Any]]:
    """Run a hidden worker command of the benchmark script and read its one-line JSON result.

    Returns
    -------
    child : ChildResult
    result : dict
        The worker's result, or `failure`'s description (``status`` ``"failed"``) naming
        ``what`` if it failed or printed no result.
    """
    child = run_child(self_command(*args), env=env, timeout_s=timeout_s, cwd=cwd)
    result = last_json_line(child.stdout) if child.returncode == 0 else None
    return child, result if result is not None else failure(child, what)


def worker_env(overrides: dict[str, str]) -> dict[str, str]:
    """The parent's environment with ``overrides`` applied, then the ``nstm`` command's process
    tuning (glibc huge pages, XLA's memory-minimizing CPU scheduler) where the overrides leave
    it to choose: workers run as the command does. ``--env NSTM_NO_ALLOCATOR_TUNING=1`` or
    ``--env NSTM_NO_XLA_TUNING=1`` turns either off."""
    from nstm.cli.environment import tuned_env

    return tuned_env({**os.environ, **overrides})


def self_command(*args: str) -> list[str]:
    """Command line that runs the benchmark script with ``args``."""
    return [sys.executable, str(SCRIPT), *args]
