"""Named run configurations of each imaging system.

Every system has ``default``: ``RunConfig(system=<its config>())``, the package-wide model and
training defaults (``nstm.config``) unless the system's spec gives its own. A system's spec may
add more (DPC's ``paper``: the original publication's settings, ``nstm.systems.dpc.presets``).
"""

from __future__ import annotations

from collections.abc import Callable

from .config import RunConfig
from .systems.registry import SystemSpec, get_system


def available_presets(spec: SystemSpec) -> dict[str, Callable[[], RunConfig]]:
    """The presets of a system by name: ``default`` and those its spec adds."""
    return {"default": lambda: RunConfig(system=spec.config_cls()), **spec.presets}


def preset(name: str, system: str = "dpc") -> RunConfig:
    """The run config named ``name`` for the imaging system ``system``."""
    found = available_presets(get_system(system))
    if name not in found:
        raise ValueError(f"unknown preset {name!r} for {system}; available: {sorted(found)}")
    return found[name]()
