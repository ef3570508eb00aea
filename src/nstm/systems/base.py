"""The imaging-system interface every system implements.

A *measurement* is one unit of data the loss compares against: a raw DPC frame, a SIM z-stack,
a window of a rolling-shutter image, a motion-blurred frame. Measurement ``m`` depends on the
scene rendered at ``render_times[m]``, a row of ``R`` times in [-1, 1]:

* DPC, SIM in "fast mode": ``R = 1`` (the scene at the frame's time);
* SIM with one time per z-plane: the planes are rendered at their own times;
* rolling-shutter DiffuserCam or exposure blur: ``R`` time steps integrate into one image.

The engine renders the scene at those times, ``scenes`` of shape ``(R, *render_shape,
channels)``, and calls :meth:`AbstractImagingSystem.data_loss`. By default every render is the
whole grid; a measurement that needs only part of it (a SIM plane: the slab within the PSF's
axial reach; a tile: its window) gives :attr:`~AbstractImagingSystem.render_origins`, and each
render is then the box of ``render_shape`` pixels from its origin.

Systems are Equinox modules: their arrays (transfer functions, measurements) are pytree leaves
passed into the jitted step, never baked-in constants, and ``forward`` is pure. Fields listed in
``per_measurement`` hold one row per measurement (leading axis); when a step is split across
devices, each device holds only its share of their rows and calls the methods with indices into
its share, so every field that is indexed by measurement must be listed there. Fields listed in
``trainable`` may be trained with the networks (``train.system_lr``; frozen by default).

Package-wide conventions (coordinates, time, units, FFT layouts): ``nstm.conventions``.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int


class AbstractImagingSystem(eqx.Module):
    """A differentiable measurement model y_m = A_m(x(t_m1), ..., x(t_mR)).

    Subclasses define the class variable :attr:`channels` and implement the abstract methods.
    See ``docs/add-your-own-system.md`` for a worked example.
    """

    channels: ClassVar[tuple[str, ...]]
    """Names of the scene channels, e.g. ``("absorption", "phase")``."""
    channel_units: ClassVar[Mapping[str, str]] = MappingProxyType({})
    """Unit of each channel, e.g. ``{"phase": "rad"}`` (figures and metadata)."""
    per_measurement: ClassVar[tuple[str, ...]] = ()
    """Array fields whose leading axis indexes the measurements (split across devices)."""
    trainable: ClassVar[tuple[str, ...]] = ()
    """Array fields that ``train.system_lr > 0`` trains with the networks."""
    volume_view: ClassVar[str] = "auto"
    """How figures show a volume: "mip" (maximum projections), "middle" (middle planes) or
    "auto" (projections for non-negative channels, middle planes for signed ones)."""
    linear: ClassVar[bool] = False
    """Whether :meth:`forward` is linear in the scene (the contract tests then check it, and
    its adjoint by the dot-product test)."""

    @property
    @abc.abstractmethod
    def grid_shape(self) -> tuple[int, ...]:
        """Shape of the grid the scene is rendered on, ``(H, W)`` or ``(Z, H, W)`` (pixels).

        May be larger than the measured field of view (padding for non-periodic data)."""

    @property
    @abc.abstractmethod
    def render_times(self) -> Float[Array, "measurements renders"]:
        """Times in [-1, 1] at which the scene is rendered for each measurement."""

    @abc.abstractmethod
    def forward(
        self, scenes: Float[Array, "renders *box channels"], index: Int[Array, ""]
    ) -> Array:
        """Predict measurement ``index`` from the scene rendered at its ``render_times`` (the
        whole grid, or the boxes of :attr:`render_shape` at its :attr:`render_origins`)."""

    @abc.abstractmethod
    def measurement(self, index: Int[Array, ""]) -> Array:
        """The recorded measurement ``index``, shaped like :meth:`forward`'s output."""

    @abc.abstractmethod
    def reconstruct_static(self) -> dict[str, np.ndarray]:
        """The conventional reconstruction that assumes a static scene (the baseline).

        Returns one ``(*fov_shape)`` array per channel name."""

    # ----------------------------------------------------------------- overridable defaults
    @property
    def num_measurements(self) -> int:
        """Number of measurements."""
        return int(self.render_times.shape[0])

    @property
    def fov(self) -> tuple[slice, ...]:
        """Slices of the rendered grid that are the measured field of view (no padding)."""
        return tuple(slice(None) for _ in self.grid_shape)

    @property
    def measurement_times(self) -> np.ndarray:
        """A representative time per measurement, ``(measurements,)``: the mean render time."""
        return np.asarray(self.render_times).mean(axis=1)

    @property
    def output_times(self) -> np.ndarray:
        """Times in [-1, 1] at which the reconstruction is written, ``(outputs,)``: by default
        :attr:`measurement_times` (a DiffuserCam writes one frame per shutter step, SIM one
        volume per raw stack)."""
        return self.measurement_times

    @property
    def render_shape(self) -> tuple[int, ...]:
        """Shape of each render: :attr:`grid_shape` unless :attr:`render_origins` is given."""
        return tuple(self.grid_shape)

    @property
    def render_origins(self) -> Int[Array, "measurements renders ndim"] | None:
        """Grid index of the first pixel of each render's box of :attr:`render_shape`, or None
        (the default) to render the whole grid. A field listed in ``per_measurement``."""
        return None

    @property
    def bandwidth_cycles_per_px(self) -> float | tuple[float, ...]:
        """Highest spatial frequency (cycles/pixel) the system transmits, one value or one per
        grid axis (lateral and axial differ in 3D); sizes the scene's finest encoding level.
        Defaults to the pixel grid's Nyquist frequency."""
        return 0.5

    @property
    def spacing_um(self) -> tuple[float, ...] | None:
        """Physical size of a grid pixel per axis in micrometres, or None if unknown (written
        into the outputs' metadata)."""
        return None

    def data_loss(
        self, scenes: Float[Array, "renders *box channels"], index: Int[Array, ""]
    ) -> Float[Array, ""]:
        """Misfit of measurement ``index``; the mean squared error by default."""
        residual = self.forward(scenes, index) - self.measurement(index)
        return jnp.mean(jnp.square(residual))

    def regularization(self, scenes: Float[Array, "renders *box channels"]) -> Float[Array, ""]:
        """Prior on the rendered scene added to the loss; none by default."""
        del scenes
        return jnp.zeros(())

    def parameters(self) -> dict[str, object]:
        """The system's parameters as used (estimated from the data or given), written as
        ``parameters.json`` in the run folder; nothing by default."""
        return {}

    def baseline_info(self) -> dict[str, object]:
        """How :meth:`reconstruct_static` reconstructs (method, parameters), written beside its
        result as ``baseline.json``; empty by default."""
        return {}

    def motion_output(self, motion: np.ndarray) -> np.ndarray:
        """The motion written to the outputs, ``(times, *fov_shape, ndim)``, from the model's
        (in grid pixels); the default keeps grid pixels. A system whose users count in other
        units (SIM: raw voxels, whose lateral pixels are ``zoom`` grid pixels) converts here,
        and gives their size in :attr:`motion_spacing_um`."""
        return motion

    @property
    def motion_spacing_um(self) -> tuple[float, ...] | None:
        """Physical size per axis of :meth:`motion_output`'s unit; :attr:`spacing_um` by
        default."""
        return self.spacing_um

    def outputs(self, scenes: Float[Array, "times *grid channels"]) -> dict[str, np.ndarray]:
        """Split rendered scenes into named ``(times, *fov_shape)`` arrays, one per channel."""
        scenes = np.asarray(scenes)[(slice(None), *self.fov)]
        return {name: scenes[..., i] for i, name in enumerate(self.channels)}
