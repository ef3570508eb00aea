"""Simulate DPC data of a moving sample, with ground truth.

By default the images are formed with the full partially coherent (Abbe) model on a canvas
larger than the field of view, and then cropped: the data are neither linear nor periodic, so
reconstructions that assume both (ours included) are not tested on their own model (no
"inverse crime").
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from ...optics import pupil
from ...simulation.motion import displacement_field, warp
from ...simulation.noise import shot_noise
from ...simulation.phantoms import make_phantom
from .abbe import abbe_dpc_images
from .data import DPCData
from .optics import (
    SourceConvention,
    apply_transfer_functions,
    dpc_sources,
    transfer_functions,
)


@dataclasses.dataclass(frozen=True)
class DPCSimulationConfig:
    """What to simulate. Units: pixels, micrometres, radians."""

    shape: tuple[int, int] = (256, 256)
    """Field of view (H, W) in pixels."""
    frames: int = 4
    """Number of frames, one per source pattern, at evenly spaced times in [-1, 1]."""
    phantom: str = "cells"
    """Sample: see nstm.simulation.phantoms.PHANTOMS. 'cells' (up to 2 rad) is a weak object,
    for which the linear DPC model holds; 'c-elegans' (up to 3.7 rad) strains it."""
    motion: str = "elastic"
    """Motion model: see 'nstm.simulation.motion.MOTIONS'."""
    max_displacement_px: float = 6.0
    """Largest displacement over the field of view and all frames, in pixels."""
    phase_scale: float = 1.0
    """Multiplies the phantom's phase (radians) and absorption."""
    wavelength_um: float = 0.525
    pixel_size_um: float = 0.454
    na: float = 0.25
    """Objective NA; the half-disc sources fill the same NA."""
    source_angles_deg: tuple[float, ...] = (0.0, 180.0, 90.0, 270.0)
    """Orientation of the half-disc source of each frame (cycled if frames exceed it); see
    'nstm.systems.dpc.optics.half_disc_source'."""
    source_convention: SourceConvention = "led"
    """Convention of the written source maps 's' (the images are formed accordingly): 'led',
    the original NSTM layout's (an LED at +u lights the sample with exp(-i 2 pi u.r)), or
    'wavevector' (the plane wave exp(+i 2 pi u.r)), for data to be read with
    '--system.source-convention wavevector'."""
    image_model: Literal["abbe", "linear"] = "abbe"
    """Abbe (partially coherent, exact) or the linear weak-object model."""
    periodic: bool = False
    """If False, simulate on a canvas with 'canvas_margin_px' more on each side and crop."""
    canvas_margin_px: int = 32
    photons_per_pixel: float | None = 1e5
    """Mean photon count of the background for shot noise; None for noiseless data."""
    seed: int = 0


def simulate_dpc(
    config: DPCSimulationConfig = DPCSimulationConfig(),
) -> tuple[DPCData, dict[str, np.ndarray]]:
    """Simulate a moving sample imaged by DPC.

    Returns
    -------
    data : DPCData
        Frames (zero-centred, I / I_background - 1), sources (unshifted, in
        ``config.source_convention``), times and optics.
    truth : dict
        ``absorption``, ``phase`` (frames, H, W) the sample at each frame's time;
        ``canonical_absorption``, ``canonical_phase`` (H, W) the undeformed sample;
        ``motion`` (frames, H, W, 2) in pixels, (dy, dx): frame k at pixel r is the canonical
        sample at r + motion[k, r].
    """
    if config.frames < 2:
        raise ValueError(f"frames must be >= 2, got {config.frames}")
    h, w = config.shape
    m = 0 if config.periodic else config.canvas_margin_px
    canvas = (h + 2 * m, w + 2 * m)
    fov = (slice(m, m + h), slice(m, m + w))
    rng = np.random.default_rng(config.seed)
    times = np.linspace(-1.0, 1.0, config.frames, dtype=np.float32)

    absorption0, phase0 = make_phantom(config.phantom, canvas, rng=rng)
    absorption0 = absorption0 * config.phase_scale
    phase0 = phase0 * config.phase_scale
    motion = displacement_field(
        config.motion,
        canvas,
        times,
        max_displacement_px=config.max_displacement_px,
        rng=rng,
        fov_shape=config.shape,
    )
    absorption = np.stack([warp(absorption0, d) for d in motion])
    phase = np.stack([warp(phase0, d) for d in motion])

    angles = [
        config.source_angles_deg[k % len(config.source_angles_deg)] for k in range(config.frames)
    ]
    optics = dict(wavelength_um=config.wavelength_um, pixel_size_um=config.pixel_size_um)
    canvas_sources = np.stack(
        [dpc_sources(canvas, na_illum=config.na, angles_deg=(a,), **optics)[0] for a in angles]
    )
    canvas_pupil = pupil(canvas, na=config.na, **optics)
    convention = config.source_convention
    if config.image_model == "abbe":
        images = abbe_dpc_images(
            np.exp(absorption + 1j * phase),
            canvas_sources,
            canvas_pupil,
            source_convention=convention,
        )
    elif config.image_model == "linear":
        hu, hp = transfer_functions(canvas_sources, canvas_pupil, source_convention=convention)
        images = np.stack(
            [
                apply_transfer_functions(a, p, hu[k : k + 1], hp[k : k + 1])[0]
                for k, (a, p) in enumerate(zip(absorption, phase, strict=True))
            ]
        )
    else:
        raise ValueError(f"image_model: expected 'abbe' or 'linear', got {config.image_model!r}")
    images = images[(slice(None), *fov)]
    if config.photons_per_pixel is not None:
        images = shot_noise(images, config.photons_per_pixel, rng)

    sources = np.stack(
        [
            dpc_sources(config.shape, na_illum=config.na, angles_deg=(a,), **optics)[0]
            for a in angles
        ]
    )
    data = DPCData(
        images=np.asarray(images, np.float32),
        sources=np.asarray(sources, np.float32),
        times=times,
        wavelength_um=config.wavelength_um,
        pixel_size_um=config.pixel_size_um,
        na=config.na,
    )
    truth = {
        "absorption": absorption[(slice(None), *fov)].astype(np.float32),
        "phase": phase[(slice(None), *fov)].astype(np.float32),
        "canonical_absorption": absorption0[fov].astype(np.float32),
        "canonical_phase": phase0[fov].astype(np.float32),
        "motion": motion[(slice(None), *fov)].astype(np.float32),
    }
    return data, truth
