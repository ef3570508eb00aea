"""Differential phase contrast (DPC) microscopy with asymmetric illumination.

Frame ``j`` is recorded under source pattern ``S_j`` (e.g. a half disc of LEDs). For a weak
object with complex transmittance ``exp(mu + i phi)`` (``mu`` = absorption as natural-log
amplitude, ``phi`` = phase in radians) the background-normalized frame is linear in the scene
(Tian & Waller, Opt. Express 23, 11394 (2015)):

    I_j / I_background - 1 = Re F^-1{ Hu_j F{mu} + Hp_j F{phi} },

with ``Hu_j(0) = 2``. When the sample moves, frame ``j`` sees the scene at its own time ``t_j``.
Source maps are read in the original NSTM's LED convention by default (a point at ``+u`` is an
LED lighting the sample with ``exp(-i 2 pi u . r)``; ``DPCConfig.source_convention``).

The scene is rendered on a grid padded by ``pad_px`` on every side and the loss is computed on
the measured central region only, so the periodic FFT model does not wrap the image border
around: real data are not periodic.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, Int

from ...metrics import psnr_per_frame
from ...optics import pupil
from ..base import AbstractImagingSystem
from .data import DPCData, load_dpc
from .optics import SourceConvention, transfer_functions
from .regularization import choose_tikhonov_reg
from .tikhonov import tikhonov_dpc


@dataclasses.dataclass(frozen=True)
class DPCConfig:
    """DPC system parameters. Physical values given here override those stored in the data."""

    wavelength_um: float | None = None
    """Illumination wavelength in micrometres (npz key 'wavelength')."""
    pixel_size_um: float | None = None
    """Sample-plane pixel size in micrometres (npz key 'pixel_size')."""
    na: float | None = None
    """Objective numerical aperture (npz key 'na')."""
    sources: str | None = None
    """Path to source maps (frames, H, W) in unshifted FFT layout (.npy/.npz/.tif); overrides
    the data's 's' (required for TIFF stacks)."""
    source_convention: SourceConvention = "led"
    """How a point of the source maps at frequency +u lights the sample. 'led' (the original
    NSTM's and LED-array DPC data's convention): it is an LED on the +u side, whose plane wave
    exp(-i 2 pi u.r) travels towards -u. 'wavevector': it is the plane wave exp(+i 2 pi u.r)
    (nstm before 0.2). The wrong one inverts the sign of the reconstructed phase."""
    times: tuple[float, ...] | None = None
    """Normalized time of each frame in [-1, 1]; overrides the data's 'times'."""
    normalize: bool = False
    """Normalize raw intensities on load: I / mean(I) - 1 per frame."""
    pad_px: int = 16
    """Padding of the rendered grid on each side, in pixels (0: periodic model)."""
    loss_margin_px: int = 0
    """Pixels at the edge of each frame left out of the loss."""
    phase_l2_weight: float = 0.0
    """Weight of mean(phase^2) in the loss (the original used 1e-4)."""
    absorption_negativity_weight: float = 0.0
    """Weight of mean(min(absorption, 0)^2) in the loss (the original used 1e-4)."""
    tikhonov_reg_absorption: float | None = None
    """Tikhonov weight of absorption in the conventional reconstruction; None (with
    tikhonov_reg_phase None): one weight for both, chosen from the data by generalized
    cross-validation (nstm.systems.dpc.regularization)."""
    tikhonov_reg_phase: float | None = None
    """Tikhonov weight of phase in the conventional reconstruction; None: see
    tikhonov_reg_absorption."""


def resample_sources(sources: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample source maps to the frequency grid of a larger (padded) image.

    Sources are piecewise constant (discs of LEDs), so each frequency of the new grid takes the
    value of the nearest frequency of the old grid (both in cycles/pixel of the same pixel size).

    Parameters
    ----------
    sources : (n, H, W) ndarray, unshifted FFT layout
    shape : (H2, W2)

    Returns
    -------
    (n, H2, W2) ndarray, unshifted FFT layout
    """
    h, w = sources.shape[-2:]
    if (h, w) == tuple(shape):
        return sources
    iy = np.rint(np.fft.fftfreq(shape[0]) * h).astype(int) % h
    ix = np.rint(np.fft.fftfreq(shape[1]) * w).astype(int) % w
    return sources[:, iy[:, None], ix[None, :]]


class DPC(AbstractImagingSystem):
    """DPC measurements and their linear forward model.

    Build it with :meth:`DPC.from_data`. Scene channels: ``absorption`` (natural-log amplitude)
    and ``phase`` (radians).
    """

    channels: ClassVar[tuple[str, ...]] = ("absorption", "phase")
    channel_units: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"absorption": "log-amplitude", "phase": "rad"}
    )
    per_measurement: ClassVar[tuple[str, ...]] = ("images", "times", "absorption_tf", "phase_tf")
    linear: ClassVar[bool] = True

    images: Float[Array, "frames H W"]
    times: Float[Array, " frames"]
    absorption_tf: Complex[Array, "frames Hp Wp"]
    phase_tf: Complex[Array, "frames Hp Wp"]
    pad_px: int = eqx.field(static=True)
    loss_margin_px: int = eqx.field(static=True)
    phase_l2_weight: float = eqx.field(static=True)
    absorption_negativity_weight: float = eqx.field(static=True)
    tikhonov_reg: tuple[float, float] = eqx.field(static=True)
    tikhonov_reg_chosen_by: str = eqx.field(static=True)
    """"config" (given) or the rule that chose it from the data ("gcv")."""
    bandwidth: float = eqx.field(static=True)
    pixel_size_um: float = eqx.field(static=True)

    @classmethod
    def from_data(cls, data: DPCData, config: DPCConfig = DPCConfig()) -> DPC:
        """Build the system from loaded data; transfer functions on the padded grid."""
        if config.pad_px < 0:
            raise ValueError(f"pad_px must be >= 0 pixels, got {config.pad_px}")
        n, h, w = data.images.shape
        if not 0 <= 2 * config.loss_margin_px < min(h, w):
            raise ValueError(
                f"loss_margin_px must be in [0, {min(h, w) // 2}) pixels for {h}x{w} frames, "
                f"got {config.loss_margin_px}"
            )
        shape = (h + 2 * config.pad_px, w + 2 * config.pad_px)
        p = pupil(
            shape, wavelength_um=data.wavelength_um, na=data.na, pixel_size_um=data.pixel_size_um
        )
        hu, hp = transfer_functions(
            resample_sources(data.sources, shape), p, source_convention=config.source_convention
        )
        # Bright-field DPC transmits up to 2 NA / wavelength (source and pupil within the NA).
        bandwidth = min(0.5, 2 * data.na / data.wavelength_um * data.pixel_size_um)
        regs = (config.tikhonov_reg_absorption, config.tikhonov_reg_phase)
        chosen_by = "config"
        if None in regs:
            if regs != (None, None):
                raise ValueError(
                    "tikhonov_reg_absorption, tikhonov_reg_phase: give both weights or neither "
                    f"(neither: one chosen from the data), got {regs}"
                )
            choice = choose_tikhonov_reg(data.images, hu, hp, pad=config.pad_px)
            regs, chosen_by = (choice.reg, choice.reg), choice.method
        return cls(
            images=jnp.asarray(data.images, jnp.float32),
            times=jnp.asarray(data.times, jnp.float32),
            absorption_tf=jnp.asarray(hu, jnp.complex64),
            phase_tf=jnp.asarray(hp, jnp.complex64),
            pad_px=config.pad_px,
            loss_margin_px=config.loss_margin_px,
            phase_l2_weight=config.phase_l2_weight,
            absorption_negativity_weight=config.absorption_negativity_weight,
            tikhonov_reg=(float(regs[0]), float(regs[1])),
            tikhonov_reg_chosen_by=chosen_by,
            bandwidth=float(bandwidth),
            pixel_size_um=float(data.pixel_size_um),
        )

    # ------------------------------------------------------------------- interface
    @property
    def grid_shape(self) -> tuple[int, int]:
        return tuple(self.absorption_tf.shape[1:])

    @property
    def render_times(self) -> Float[Array, "frames 1"]:
        return self.times[:, None]

    @property
    def fov(self) -> tuple[slice, slice]:
        p = self.pad_px
        h, w = self.images.shape[1:]
        return slice(p, p + h), slice(p, p + w)

    @property
    def bandwidth_cycles_per_px(self) -> float:
        return self.bandwidth

    @property
    def spacing_um(self) -> tuple[float, float]:
        return (self.pixel_size_um, self.pixel_size_um)

    def forward(
        self, scenes: Float[Array, "1 Hp Wp 2"], index: Int[Array, ""]
    ) -> Float[Array, "H W"]:
        """Frame ``index`` predicted from the scene at its time (only that pattern)."""
        scene = scenes[0]
        spectrum = self.absorption_tf[index] * jnp.fft.fft2(scene[..., 0]) + self.phase_tf[
            index
        ] * jnp.fft.fft2(scene[..., 1])
        return jnp.real(jnp.fft.ifft2(spectrum))[self.fov]

    def measurement(self, index: Int[Array, ""]) -> Float[Array, "H W"]:
        return self.images[index]

    def data_loss(self, scenes, index):
        m = self.loss_margin_px
        residual = self.forward(scenes, index) - self.measurement(index)
        if m:
            residual = residual[m:-m, m:-m]
        return jnp.mean(jnp.square(residual))

    def regularization(self, scenes: Float[Array, "renders Hp Wp 2"]) -> Float[Array, ""]:
        reg = jnp.zeros(())
        if self.phase_l2_weight:
            reg += self.phase_l2_weight * jnp.mean(jnp.square(scenes[..., 1]))
        if self.absorption_negativity_weight:
            reg += self.absorption_negativity_weight * jnp.mean(
                jnp.square(jnp.minimum(scenes[..., 0], 0.0))
            )
        return reg

    def baseline_info(self) -> dict[str, object]:
        """How the conventional reconstruction was made: Tikhonov, its weights and their
        origin (given in the config, or chosen from the data by a rule)."""
        return {
            "method": "tikhonov",
            "reg_absorption": self.tikhonov_reg[0],
            "reg_phase": self.tikhonov_reg[1],
            "chosen_by": self.tikhonov_reg_chosen_by,
        }

    def reconstruct_static(self) -> dict[str, np.ndarray]:
        """Tikhonov reconstruction assuming a static sample (on the padded grid when padded)."""
        absorption, phase = tikhonov_dpc(
            np.asarray(self.images),
            np.asarray(self.absorption_tf),
            np.asarray(self.phase_tf),
            reg_absorption=self.tikhonov_reg[0],
            reg_phase=self.tikhonov_reg[1],
            pad=self.pad_px,
            tol=1e-5,  # float32 data: a tighter residual is below the noise of the arithmetic
            max_iter=300,
        )
        return {"absorption": absorption, "phase": phase}


def best_tikhonov_reg(
    system: DPC,
    truth_phase: np.ndarray,
    *,
    border: int = 16,
    candidates: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """The Tikhonov weight whose static phase best matches a known truth (an oracle).

    Only for simulated data, where the truth is known: it shows how good the conventional
    reconstruction can be at its best, next to the weight chosen from the data.

    Parameters
    ----------
    system : DPC
    truth_phase : (frames, H, W) or (H, W) ndarray
        The true phase (radians), at each frame's time or static.
    border : int
        Pixels left out at each edge when scoring.
    candidates : 1D array of float, optional
        Weights to try (the same for absorption and phase); default 1e-6 ... 1e-1, 2 per decade.

    Returns
    -------
    reg : float
        The weight with the highest mean phase PSNR over frames.
    psnr : (frames,) ndarray
        Its phase PSNR per frame (dB, mean removed; see `nstm.metrics.psnr_per_frame`).
    """
    candidates = np.logspace(-6, -1, 11) if candidates is None else np.asarray(candidates)
    truth_phase = np.asarray(truth_phase)
    truth = truth_phase if truth_phase.ndim == 3 else truth_phase[None]
    best_reg, best = float("nan"), None
    for reg in candidates:
        trial = dataclasses.replace(system, tikhonov_reg=(float(reg), float(reg)))
        with warnings.catch_warnings():  # the weakest weights may stop CG short: scored anyway
            warnings.filterwarnings("ignore", "tikhonov_dpc: conjugate gradients stopped")
            phase = trial.reconstruct_static()["phase"]
        score = psnr_per_frame(np.broadcast_to(phase, truth.shape), truth, border=border)
        if best is None or score.mean() > best.mean():
            best_reg, best = float(reg), score
    return best_reg, best


def load_system(path: str | Path, config: DPCConfig = DPCConfig()) -> DPC:
    """Load DPC data (``.npz`` or TIFF stack) and build the system; config values win."""
    data = load_dpc(
        path,
        wavelength_um=config.wavelength_um,
        pixel_size_um=config.pixel_size_um,
        na=config.na,
        times=None if config.times is None else np.asarray(config.times, np.float32),
        sources=config.sources,
        normalize=config.normalize,
    )
    return DPC.from_data(data, config)
