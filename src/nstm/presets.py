"""Named run configurations.

* ``default``: our defaults, chosen for the physics and for speed (see docs/defaults.md).
* ``paper``: the original publication's DPC model and training (Cao et al. 2024, its DPC
  notebook), with its bugs fixed: the encoding levels open level-major, the finest level is
  not lost to float32 rounding, coordinates are clamped to the box, and phase is in radians.
"""

from __future__ import annotations

import dataclasses

from .config import FieldConfig, ModelConfig, TrainConfig
from .runs import RunConfig
from .systems.dpc import DPCConfig
from .systems.registry import get_system


def _paper(system_config):
    if isinstance(system_config, DPCConfig):
        system_config = dataclasses.replace(
            system_config,
            pad_px=0,
            loss_margin_px=5,
            phase_l2_weight=1e-4,
            absorption_negativity_weight=1e-4,
            tikhonov_reg_absorption=1e-4,
            tikhonov_reg_phase=1e-4,
        )
    scene = FieldConfig(
        num_levels=8,
        features_per_level=2,
        log2_table_size=16,
        coarsest_cell_px=20.0,  # 0.1 x dim cells over a box twice the image
        finest_cell_px=2.5,  # 0.8 x dim cells over the same box
        bbox_margin_px=0.0,
        bbox_margin_fraction=0.5,
        mlp_width=128,
        mlp_depth=2,
        activation="gelu",
    )
    motion = FieldConfig(
        num_levels=8,
        features_per_level=2,
        log2_table_size=16,
        coarsest_cell_px=1e9,  # one cell over the image
        finest_cell_px=1 / 0.012,  # round(0.4 x 0.03 x dim) cells
        time_cells=(1, 2),
        mlp_width=32,
        mlp_depth=2,
        activation="elu",
    )
    return RunConfig(
        system=system_config,
        model=ModelConfig(scene=scene, motion=motion, displacement_scale_px=None),
        train=TrainConfig(
            steps=5000,
            anneal_fraction=0.8,
            scene_lr=1e-3,
            motion_lr=1e-5,
            final_lr_fraction=0.1,
            adam_b1=0.9,
            adam_b2=0.99,
            adam_eps=1e-15,
            checkpoint_every=500,
            log_every=10,
        ),
    )


PRESETS = {
    "default": lambda system_config: RunConfig(system=system_config),
    "paper": _paper,
}


def preset(name: str, system: str = "dpc") -> RunConfig:
    """The run config named ``name`` for the imaging system ``system``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {sorted(PRESETS)}")
    return PRESETS[name](get_system(system).config_cls())
