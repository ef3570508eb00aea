"""Differential phase contrast (DPC) microscopy: everything specific to it.

* :mod:`.system`: the forward model (:class:`DPC`), its config and the system spec;
* :mod:`.optics`: LED source maps and the weak-object transfer functions;
* :mod:`.data`: the data layout, its loader and writer;
* :mod:`.tikhonov`, :mod:`.regularization`: the conventional reconstruction and its weight;
* :mod:`.abbe`, :mod:`.simulation`: a simulated moving sample with ground truth;
* :mod:`.presets`: the original publication's settings.
"""

from .system import DPC as DPC
from .system import SPEC as SPEC
from .system import DPCConfig as DPCConfig
from .system import best_tikhonov_reg as best_tikhonov_reg
from .system import load_system as load_system
from .system import resample_sources as resample_sources
