"""The imaging systems the command line knows, by name.

Built-in systems are listed here; other packages add theirs through the ``nstm.systems``
entry-point group (each entry point names a :class:`SystemSpec`), with no edit to nstm.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .base import AbstractImagingSystem

_BUILTIN = {"dpc": "nstm.systems.dpc:SPEC"}


@dataclasses.dataclass(frozen=True)
class SystemSpec:
    """How the command line builds a system from a data file and its config."""

    name: str
    config_cls: type
    """Frozen dataclass of the system's parameters (a section ``system:`` of the run config)."""
    load: Callable[[Path, Any], AbstractImagingSystem]
    """``load(data_path, system_config) -> system``."""
    description: str = ""
    resume_may_change: tuple[str, ...] = ()
    """Fields of ``config_cls`` that a resumed run may change: those that only affect the
    outputs (e.g. the conventional reconstruction's regularization), not the model or data."""


def _resolve(target: str) -> SystemSpec:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


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
