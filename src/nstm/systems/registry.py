"""The imaging systems the command line knows, by name, and what it needs to know about each.

A system is one folder, ``nstm/systems/<name>/``, whose package exports a :class:`SystemSpec`
named ``SPEC``. The command line, the presets and the outputs dispatch through the spec only.
Built-in systems are listed here; other packages add theirs through the ``nstm.systems``
entry-point group (each entry point names a :class:`SystemSpec`), with no edit to nstm::

    [project.entry-points."nstm.systems"]
    mysystem = "mypackage.mysystem:SPEC"
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np

from .base import AbstractImagingSystem

_BUILTIN = {
    "dpc": "nstm.systems.dpc:SPEC",
    "motion-blur": "nstm.systems.motion_blur:SPEC",
    "sim3d": "nstm.systems.sim3d:SPEC",
}


@dataclasses.dataclass(frozen=True)
class Simulation:
    """How ``nstm simulate SYSTEM`` makes a moving sample with its ground truth.

    The truth is a dict of arrays: one ``(outputs, *fov_shape)`` array per scene channel at
    the system's ``output_times``, and optionally ``motion`` ``(outputs, *fov_shape, ndim)`` in
    pixels, pull convention (``docs/conventions.md``); other entries are kept but not scored.
    """

    config_cls: type
    """Frozen dataclass of the simulation's settings (``--sim.FIELD`` flags, written as
    ``simulation.yaml``)."""
    simulate: Callable[[Any], tuple[Any, dict[str, np.ndarray]]]
    """``simulate(config) -> (data, truth)``."""
    save: Callable[[Path, Any], None]
    """``save(path, data)`` writes ``data`` in the layout the spec's ``load`` reads."""
    describe: Callable[[Any], str] = lambda config: "a simulated moving sample"
    """One line saying what ``config`` simulates, for the demo."""


@dataclasses.dataclass(frozen=True)
class DemoReport:
    """What a system adds to the demo's table: extra metrics and rows."""

    metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Written to ``metrics.json`` beside the generic scores."""
    rows: Mapping[str, list[tuple[str, Any]]] = dataclasses.field(default_factory=dict)
    """Extra ``(label, per-frame values)`` rows, by table title (e.g. "phase PSNR per frame
    (dB)"); titles of the generic tables add to them."""
    baseline_label: str | None = None
    """How to name the conventional reconstruction in the table (default "conventional")."""


@dataclasses.dataclass(frozen=True)
class Demo:
    """The case ``nstm demo SYSTEM`` simulates, reconstructs and scores."""

    simulation: Callable[[int, str | None], Any]
    """``simulation(size_px, phantom or None) -> Simulation.config_cls`` instance."""
    min_size: int = 32
    """Smallest ``--size`` in pixels."""
    default_size: int = 256
    """``--size`` when none is given."""
    report: (
        Callable[[AbstractImagingSystem, dict[str, np.ndarray], int, Path], DemoReport] | None
    ) = None
    """``report(system, truth, border_px, run_folder)``: extra rows, e.g. the baseline at its
    best setting found with the truth, or scores read from the run's outputs."""


def square_demo(config_cls: type) -> Callable[[int, str | None], Any]:
    """A :attr:`Demo.simulation` for simulation configs with ``shape`` (H, W) and ``phantom``
    fields: a ``size x size`` field of view, the given phantom or the config's default."""

    def simulation(size: int, phantom: str | None) -> Any:
        chosen = {} if phantom is None else {"phantom": phantom}
        return config_cls(shape=(size, size), **chosen)

    return simulation


@dataclasses.dataclass(frozen=True)
class SystemSpec:
    """How the command line builds, simulates, configures and demonstrates a system."""

    name: str
    config_cls: type
    """Frozen dataclass of the system's parameters (a section ``system:`` of the run config)."""
    load: Callable[[Path, Any], AbstractImagingSystem]
    """``load(data_path, system_config) -> system``."""
    description: str = ""
    data_help: str = "the measurements"
    """What the DATA argument of ``nstm reconstruct`` is (formats, keys), for ``--help``."""
    resume_may_change: tuple[str, ...] = ()
    """Fields of ``config_cls`` that a resumed run may change: those that only affect the
    outputs (e.g. the conventional reconstruction's regularization), not the model or data."""
    presets: Mapping[str, Callable[[], Any]] = dataclasses.field(default_factory=dict)
    """Named run configs (``nstm.config.RunConfig``) by name. ``"default"`` is
    ``RunConfig(system=config_cls())`` unless given here."""
    simulation: Simulation | None = None
    demo: Demo | None = None
    figures: Callable[[Path, AbstractImagingSystem, Mapping[str, np.ndarray]], None] | None = None
    """``figures(folder, system, outputs)``: figures of the system's own beside the generic
    ones (comparison, motion, video), written into ``folder`` as ``figure_*.png`` (or
    ``.gif``/``.mp4``); ``outputs`` holds ``reconstruction`` arrays by channel, ``motion``,
    ``times`` and, when there is one, ``baseline_<channel>``."""


def _resolve(target: str) -> SystemSpec:
    module, _, attr = target.partition(":")
    spec = getattr(importlib.import_module(module), attr)
    if not isinstance(spec, SystemSpec):
        raise TypeError(f"{target} is not a nstm.systems.SystemSpec (got {type(spec).__name__})")
    return spec


def available_systems() -> dict[str, str]:
    """Names of the known systems mapped to their ``module:attribute`` specs."""
    found = dict(_BUILTIN)
    for ep in entry_points(group="nstm.systems"):
        found.setdefault(ep.name, ep.value)
    return found


def get_system(name: str) -> SystemSpec:
    """The :class:`SystemSpec` registered under ``name``."""
    systems = available_systems()
    if name not in systems:
        raise ValueError(f"unknown imaging system {name!r}; available: {sorted(systems)}")
    return _resolve(systems[name])
