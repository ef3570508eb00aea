"""Motion blur: each frame integrates the moving scene over its exposure.

Frame ``m`` is the mean of the scene at ``R_m`` times evenly spaced over its exposure window
``[t_m - e_m / 2, t_m + e_m / 2]`` (normalized times), times a gain ``g_m``:

    y_m = g_m / R_m * sum_r x(t_{m,r}).

Frames may have different exposures, hence different render counts: the render times are
padded to the largest count and the padding weighs 0 (the "pad and mask" way of measurements
of different sizes). The gains (one per frame: lamp flicker, automatic exposure) are 1 and
frozen unless ``train.system_lr > 0``, which trains them with the networks. NSTM recovers a
sharp scene at any time from a few blurred frames; the conventional reconstruction is the mean
frame.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ...validation import check_positive
from ..base import AbstractImagingSystem
from .data import MotionBlurData, load_motion_blur


@dataclasses.dataclass(frozen=True)
class MotionBlurConfig:
    """Motion-blur system parameters."""

    render_step: float = 0.05
    """Normalized time between the renders that sample an exposure (a frame of exposure e is
    the mean of max(2, ceil(e / render_step) + 1) renders)."""


def render_grid(
    centres: np.ndarray, exposures: np.ndarray, render_step: float
) -> tuple[np.ndarray, np.ndarray]:
    """Render times and weights of frames with the given exposure windows.

    Parameters
    ----------
    centres, exposures : (frames,) ndarray
        Centre and length of each exposure window, in normalized time.
    render_step : float
        Largest normalized time between consecutive renders of one window.

    Returns
    -------
    times : (frames, renders) ndarray of float32
        Evenly spaced over each window; rows of fewer renders repeat their last time.
    weights : (frames, renders) ndarray of float32
        ``1 / R_m`` for the ``R_m`` renders of frame ``m``, 0 for the padding.
    """
    counts = [max(2, math.ceil(e / render_step - 1e-9) + 1) for e in exposures]
    renders = max(counts)
    times = np.empty((len(centres), renders), np.float32)
    weights = np.zeros((len(centres), renders), np.float32)
    for m, (c, e, n) in enumerate(zip(centres, exposures, counts, strict=True)):
        row = np.linspace(c - e / 2, c + e / 2, n)
        times[m] = np.concatenate([row, np.full(renders - n, row[-1])])
        weights[m, :n] = 1.0 / n
    return times, weights


class MotionBlur(AbstractImagingSystem):
    """Blurred frames and their forward model. Build it with :meth:`from_data`."""

    channels: ClassVar[tuple[str, ...]] = ("intensity",)
    channel_units: ClassVar[Mapping[str, str]] = MappingProxyType({"intensity": "counts"})
    per_measurement: ClassVar[tuple[str, ...]] = ("frames", "times", "weights", "gains")
    trainable: ClassVar[tuple[str, ...]] = ("gains",)
    linear: ClassVar[bool] = True

    frames: Float[Array, "frames H W"]
    """Recorded frames."""
    times: Float[Array, "frames renders"]
    """Normalized times of each frame's renders."""
    weights: Float[Array, "frames renders"]
    """Weight of each render in its frame (0 for padding)."""
    gains: Float[Array, " frames"]
    """Gain of each frame (1: none)."""
    centres: tuple[float, ...] = eqx.field(static=True)
    """Exposure centres, the output times."""

    @classmethod
    def from_data(cls, data: MotionBlurData, config: MotionBlurConfig = MotionBlurConfig()):
        """Build the system from loaded data."""
        check_positive("render_step", config.render_step, "normalized time")
        times, weights = render_grid(data.centres, data.exposures, config.render_step)
        return cls(
            frames=jnp.asarray(data.frames, jnp.float32),
            times=jnp.asarray(times),
            weights=jnp.asarray(weights),
            gains=jnp.ones(len(data.centres), jnp.float32),
            centres=tuple(float(c) for c in data.centres),
        )

    @property
    def grid_shape(self) -> tuple[int, int]:
        return tuple(self.frames.shape[1:])

    @property
    def render_times(self) -> Float[Array, "frames renders"]:
        return self.times

    @property
    def output_times(self) -> np.ndarray:
        return np.asarray(self.centres, np.float32)

    def forward(
        self, scenes: Float[Array, "renders H W 1"], index: Int[Array, ""]
    ) -> Float[Array, "H W"]:
        """The gain times the weighted mean of the renders over the exposure."""
        blurred = jnp.tensordot(self.weights[index], scenes[..., 0], axes=1)
        return self.gains[index] * blurred

    def measurement(self, index: Int[Array, ""]) -> Float[Array, "H W"]:
        return self.frames[index]

    def reconstruct_static(self) -> dict[str, np.ndarray]:
        """The mean frame: what a static model of blurred frames gives."""
        return {"intensity": np.asarray(self.frames).mean(axis=0)}

    def baseline_info(self) -> dict[str, object]:
        return {"method": "mean frame"}


def load_system(path: str | Path, config: MotionBlurConfig = MotionBlurConfig()) -> MotionBlur:
    """Load blurred frames (``.npz``, see :mod:`.data`) and build the system."""
    return MotionBlur.from_data(load_motion_blur(path), config)
