"""Parsing, statistics and constants shared by the benchmark's parent and its workers."""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path

SIM_FRAMES = 4
BORDER_PX = 16


def parse_shape(text: str) -> tuple[int, int]:
    """Parse ``"HxW"`` into ``(H, W)``.

    Raises
    ------
    argparse.ArgumentTypeError
        If ``text`` is not two positive integers joined by ``x``.
    """
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise argparse.ArgumentTypeError(f"expected a shape HxW such as 256x256, got {text!r}")
    return int(match[1]), int(match[2])


def parse_list(text: str) -> list[str]:
    """Split a comma-separated list; an empty string gives an empty list."""
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_assignment(item: str) -> tuple[str, str]:
    """Parse ``KEY=VALUE`` (the value may contain ``=``) into ``(KEY, VALUE)``.

    Raises
    ------
    argparse.ArgumentTypeError
        If ``item`` has no ``=`` or an empty key.
    """
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {item!r}")
    return key, value


def shape_name(shape: Sequence[int]) -> str:
    """``(256, 320) -> "256x320"``."""
    return "x".join(str(n) for n in shape)


def quantiles(samples: Sequence[float]) -> dict[str, float]:
    """Median, 10th and 90th percentiles, min and max of ``samples``."""
    s = sorted(samples)

    def pct(q: float) -> float:  # linear interpolation between closest ranks
        x = q * (len(s) - 1)
        lo = math.floor(x)
        hi = min(lo + 1, len(s) - 1)
        return s[lo] + (s[hi] - s[lo]) * (x - lo)

    return {
        "median": pct(0.5),
        "p10": pct(0.1),
        "p90": pct(0.9),
        "min": s[0],
        "max": s[-1],
        "n": len(s),
    }


def maxrss_to_mb(maxrss: float) -> float:
    """Convert ``ru_maxrss`` to MiB (KiB on Linux, bytes on macOS)."""
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024


def read_proc_field(path: str, field: str) -> str | None:
    """The value of the first ``field: value`` line of a /proc file, if readable."""
    try:
        for line in Path(path).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == field:
                return value.strip()
    except OSError:
        return None
    return None
