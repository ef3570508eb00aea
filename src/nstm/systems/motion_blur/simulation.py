"""A simulated moving scene recorded as motion-blurred frames, with its ground truth."""

from __future__ import annotations

import dataclasses

import numpy as np

from ...simulation.motion import displacement_field, warp
from ...simulation.phantoms import make_phantom
from .data import MotionBlurData
from .system import render_grid


@dataclasses.dataclass(frozen=True)
class MotionBlurSimulationConfig:
    """What to simulate. Units: pixels and normalized time."""

    shape: tuple[int, int] = (64, 64)
    """Field of view (H, W) in pixels."""
    frames: int = 4
    """Number of frames, their exposures centred at evenly spaced times."""
    exposure: float = 0.4
    """Length of each exposure in normalized time (the frames span [-1, 1])."""
    phantom: str = "blobs"
    """Scene: a phantom of nstm.simulation.phantoms (its phase map, scaled to a peak of 1)."""
    motion: str = "translation"
    """Motion model of nstm.simulation.motion."""
    max_displacement_px: float = 6.0
    """Largest displacement over the field of view and all times, in pixels."""
    photons: float | None = 1e4
    """Photons at an intensity of 1, for shot noise; None for noiseless frames."""
    seed: int = 0


def simulate_motion_blur(
    config: MotionBlurSimulationConfig = MotionBlurSimulationConfig(),
) -> tuple[MotionBlurData, dict[str, np.ndarray]]:
    """Simulate blurred frames of a moving scene.

    Returns
    -------
    data : MotionBlurData
    truth : dict
        ``intensity`` (frames, H, W) the scene at each exposure's centre; ``motion``
        (frames, H, W, 2) in pixels, (dy, dx), pull convention; ``canonical_intensity``.
    """
    if config.frames < 2:
        raise ValueError(f"frames: expected at least 2, got {config.frames}")
    rng = np.random.default_rng(config.seed)
    half = 1.0 - config.exposure / 2
    if half <= 0:
        raise ValueError(f"exposure: expected less than 2 (normalized time), got {config.exposure}")
    centres = np.linspace(-half, half, config.frames, dtype=np.float32)
    exposures = np.full(config.frames, config.exposure, np.float32)
    times, weights = render_grid(centres, exposures, render_step=0.02)
    _, scene = make_phantom(config.phantom, config.shape, rng=rng)
    scene = (scene / max(scene.max(), 1e-12)).astype(np.float32)
    every = np.concatenate([centres, times.ravel()])
    motion = displacement_field(
        config.motion,
        config.shape,
        every,
        max_displacement_px=config.max_displacement_px,
        rng=rng,
    )
    at_centres, at_renders = motion[: config.frames], motion[config.frames :]
    renders = np.stack([warp(scene, d) for d in at_renders]).reshape(*times.shape, *config.shape)
    frames = np.einsum("fr,frhw->fhw", weights, renders)
    if config.photons is not None:
        frames = rng.poisson(np.clip(frames, 0, None) * config.photons) / config.photons
    data = MotionBlurData(frames.astype(np.float32), centres, exposures)
    truth = {
        "intensity": np.stack([warp(scene, d) for d in at_centres]).astype(np.float32),
        "motion": at_centres.astype(np.float32),
        "canonical_intensity": scene,
    }
    return data, truth
