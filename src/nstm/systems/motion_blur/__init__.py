"""Motion blur: a sharp moving scene from frames that each integrate it over an exposure.

The smallest complete system, the worked example of ``docs/add-your-own-system.md``:

* :mod:`.system`: the forward model (:class:`MotionBlur`) and its config;
* :mod:`.data`: the ``.npz`` layout, its loader and writer;
* :mod:`.simulation`: a moving scene recorded with blur, with ground truth;
* ``SPEC``: how the command line uses them.
"""

from __future__ import annotations

from ..registry import Demo, Simulation, SystemSpec, square_demo
from .data import MotionBlurData as MotionBlurData
from .data import load_motion_blur as load_motion_blur
from .data import save_motion_blur as save_motion_blur
from .simulation import MotionBlurSimulationConfig as MotionBlurSimulationConfig
from .simulation import simulate_motion_blur as simulate_motion_blur
from .system import MotionBlur as MotionBlur
from .system import MotionBlurConfig as MotionBlurConfig
from .system import load_system as load_system


def _describe(sim: MotionBlurSimulationConfig) -> str:
    h, w = sim.shape
    return (
        f"{sim.frames} motion-blurred {h} x {w} frames ({sim.phantom}, {sim.motion} motion up "
        f"to {sim.max_displacement_px} px, exposures of {sim.exposure} in normalized time)"
    )


SPEC = SystemSpec(
    name="motion-blur",
    config_cls=MotionBlurConfig,
    load=load_system,
    description="motion blur: sharp frames of a moving scene from frames blurred by their exposure",
    data_help="blurred frames: .npz with keys frames (frames, H, W), times (frames,) and "
    "exposure (normalized time)",
    simulation=Simulation(
        config_cls=MotionBlurSimulationConfig,
        simulate=simulate_motion_blur,
        save=save_motion_blur,
        describe=_describe,
    ),
    demo=Demo(simulation=square_demo(MotionBlurSimulationConfig), min_size=32),
)
