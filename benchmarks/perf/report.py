"""The report: markdown tables printed at the end of a run, and the JSON file."""

from __future__ import annotations

import datetime
import json
import math
import socket
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import shape_name


def fmt(value: Any, scale: float = 1.0, digits: int = 2) -> str:
    """A number for a table cell (``-`` when missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value * scale:.{digits}f}"


def fmt_psnr(values: Sequence[float] | None) -> str:
    """``"mean (min)"`` of per-frame PSNRs."""
    if not values:
        return "-"
    return f"{statistics.fmean(values):.2f} ({min(values):.2f})"


def fmt_ms_spread(seconds: dict[str, float]) -> str:
    """``"median (p10-p90)"`` in milliseconds."""
    return f"{seconds['median'] * 1e3:.1f} ({seconds['p10'] * 1e3:.1f}-{seconds['p90'] * 1e3:.1f})"


def failed_cell(case: dict[str, Any]) -> str:
    """Short status text of a case."""
    if case.get("status") == "ok":
        return "ok"
    return "FAILED: " + case.get("error", "?").replace("|", "/")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 3) -> str:
    """A markdown table whose first ``left`` columns are left-aligned, the others right."""
    align = ["---"] * left + ["---:"] * (len(headers) - left)
    return "\n".join(f"| {' | '.join(cells)} |" for cells in (headers, align, *rows))


def case_cells(case: dict[str, Any]) -> list[str]:
    """The cells that begin every row: preset, shape and status."""
    return [case["preset"], shape_name(case["shape"]), failed_cell(case)]


def step_table(cases: Sequence[dict[str, Any]]) -> str:
    """Markdown table of the step-time cases."""
    headers = (
        "preset|shape|status|points/step|setup s|compile s|step ms median (p10-p90)|min ms"
        "|pipelined ms|Mpoints/s|peak RSS MB|RSS before MB|device peak MB"
    ).split("|")
    rows = []
    for c in cases:
        ok = c.get("status") == "ok"
        rate = c["points_per_step"] / c["step_s"]["median"] / 1e6 if ok else None
        rows.append(
            [
                *case_cells(c),
                str(c.get("points_per_step", "-")),
                fmt(c.get("setup_s")),
                fmt(c.get("compile_s")),
                fmt_ms_spread(c["step_s"]) if ok else "-",
                fmt(c["step_s"]["min"], 1e3, 1) if ok else "-",
                fmt(c.get("pipelined_step_s"), 1e3, 1),
                fmt(rate),
                fmt(c.get("peak_rss_mb", c.get("process_maxrss_mb")), digits=0),
                fmt(c.get("rss_mb_before_first_step"), digits=0),
                fmt(c.get("peak_device_mb"), digits=0),
            ]
        )
    return markdown_table(headers, rows)


def quality_table(cases: Sequence[dict[str, Any]]) -> str:
    """Markdown table of the quality cases (PSNR: mean over frames, worst frame in brackets)."""
    headers = (
        "preset|shape|status|steps|wall s|train s|NSTM phase PSNR|NSTM phase SSIM"
        "|baseline phase PSNR|tuned Tikhonov phase PSNR|NSTM abs PSNR|baseline abs PSNR"
        "|peak RSS MB"
    ).split("|")
    rows = []
    for c in cases:
        ssim = c.get("nstm_phase_ssim")
        rows.append(
            [
                *case_cells(c),
                str(c.get("steps", "-")),
                fmt(c.get("wall_s"), digits=1),
                fmt(c.get("train_s"), digits=1),
                fmt_psnr(c.get("nstm_phase_psnr")),
                fmt(statistics.fmean(ssim), digits=3) if ssim else "-",
                fmt_psnr(c.get("baseline_phase_psnr")),
                fmt_psnr(c.get("tuned_tikhonov_phase_psnr")),
                fmt_psnr(c.get("nstm_absorption_psnr")),
                fmt_psnr(c.get("baseline_absorption_psnr")),
                fmt(c.get("process_maxrss_mb"), digits=0),
            ]
        )
    return markdown_table(headers, rows)


def failures_section(cases: Sequence[dict[str, Any]]) -> str:
    """The standard-error tails of the failed cases ('' if none failed)."""
    parts = []
    for c in cases:
        if c.get("status") != "ok":
            title = f"{c['kind']} {c['preset']} {shape_name(c['shape'])}: {c.get('error')}"
            parts.append(f"#### {title}\n\n```\n{c.get('stderr_tail', '')}\n```")
    return "\n\n".join(parts)


def render_report(report: dict[str, Any]) -> str:
    """The markdown printed at the end of a run."""
    machine = report["machine"]
    jax_view = machine.get("jax", {})
    lines = [
        f"## nstm performance — {machine['hostname']}, {machine['date_utc']}",
        "",
        f"{machine['cpu_model']}, {machine['cpu_affinity']}/{machine['cpu_count']} CPUs, "
        f"{machine['ram_gb']} GB; JAX {machine['versions'].get('jax')} "
        f"({jax_view.get('backend', '?')}: "
        f"{jax_view.get('device_kind') or jax_view.get('devices', '?')}); "
        f"commit {machine['git_commit']}{' (dirty)' if machine['git_dirty'] else ''}",
    ]
    if machine["env_overrides"]:
        lines.append(f"env: {machine['env_overrides']}")
    if report["step_cases"]:
        s = report["settings"]
        lines += [
            "",
            f"### Step time ({s['steps']} timed steps after {s['warmup']} warm-up, "
            f"{s['pipelined_steps']} pipelined)",
            "",
            step_table(report["step_cases"]),
        ]
    if report["quality_cases"]:
        tik = report.get("quality_simulation", {}).get("tuned_tikhonov", {})
        lines += [
            "",
            "### Time to quality (PSNR dB: mean over frames (worst frame); border 16 px)",
            "",
            quality_table(report["quality_cases"]),
        ]
        if tik:
            lines.append(f"\ntuned Tikhonov regularization: {tik['reg']:.1e}")
    failed = failures_section(report["step_cases"] + report["quality_cases"])
    if failed:
        lines += ["", "### Failures", "", failed]
    return "\n".join(lines)


def write_json(path: Path, report: dict[str, Any]) -> None:
    """Write ``report`` to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(path)


def default_json_path(repo: Path) -> Path:
    """``benchmarks/results/performance-<hostname>-<UTC date>.json``."""
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    return repo / "benchmarks" / "results" / f"performance-{socket.gethostname()}-{date}.json"
