"""3D structured illumination microscopy (three-beam SIM): everything specific to it.

* :mod:`.bands`: the conventions shared by the parts (coordinates, orders, band OTFs);
* :mod:`.otf`: the widefield PSF and OTFs from the microscope, measured OTF files;
* :mod:`.forward`: the forward model (NumPy reference and JAX);
* :mod:`.estimation`: band separation, pattern vector, phases and modulation from the data;
* :mod:`.wiener`: the conventional (generalized Wiener) reconstruction and bead widths;
* :mod:`.data`: the data layout; :mod:`.simulation`: a moving sample with ground truth;
* :mod:`.system`: the NSTM system (:class:`SIM3D`) and its config; ``SPEC``.
"""

from __future__ import annotations

from ...config import RunConfig, TrainConfig
from ..registry import Demo, Simulation, SystemSpec
from .data import SIMData as SIMData
from .data import load_sim as load_sim
from .data import save_sim as save_sim
from .simulation import SIM3DSimulationConfig as SIM3DSimulationConfig
from .simulation import simulate_sim3d as simulate_sim3d
from .system import SIM3D as SIM3D
from .system import SIM3DConfig as SIM3DConfig
from .system import load_system as load_system


def _describe(sim: SIM3DSimulationConfig) -> str:
    z, y, x = sim.shape
    return (
        f"{sim.orientations} x {sim.phases} raw SIM stacks of {z} x {y} x {x} voxels "
        f"({sim.phantom}, {sim.motion} motion up to {sim.max_displacement_px} px, "
        f"{sim.timing} timing)"
    )


def _demo_simulation(size: int, phantom: str | None) -> SIM3DSimulationConfig:
    chosen = {} if phantom is None else {"phantom": phantom}
    return SIM3DSimulationConfig(shape=(8, size, size), **chosen)


def _default() -> RunConfig:
    """The package defaults, with 3 of the raw stacks per step: each renders the whole padded
    volume, so fitting all 15 at once costs 5x as much per step."""
    return RunConfig(system=SIM3DConfig(), train=TrainConfig(frames_per_step=3))


SPEC = SystemSpec(
    name="sim3d",
    config_cls=SIM3DConfig,
    load=load_system,
    description="3D structured illumination: a fluorescence volume from three-beam SIM stacks",
    data_help="raw stacks: .npz (keys raw (orientations, phases, Z, Y, X), pixel_size, z_step, "
    "wavelength_em, wavelength_ex, na, n_immersion, [times, background, k0, phases, "
    "modulation]) or a TIFF stack with --system.orientations and --system.phases",
    resume_may_change=("wiener",),
    presets={"default": _default},
    simulation=Simulation(
        config_cls=SIM3DSimulationConfig,
        simulate=simulate_sim3d,
        save=save_sim,
        describe=_describe,
    ),
    demo=Demo(simulation=_demo_simulation, min_size=16),
)
