"""Imaging systems: the interface every system implements, and the systems themselves.

A new system is one module with one :class:`AbstractImagingSystem` subclass; see
``docs/add-your-own-system.md``.
"""

from .base import AbstractImagingSystem as AbstractImagingSystem
from .registry import SystemSpec as SystemSpec
from .registry import available_systems as available_systems
from .registry import get_system as get_system
