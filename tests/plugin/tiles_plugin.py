"""A plug-in imaging system from outside nstm, found through the ``nstm.systems`` entry point.

"Tiles": a camera records frames of a moving scene, and each measurement is one tile of one
frame, rendered as a box of the grid (``render_origins``): a step renders only the tiles it
fits. The reconstruction is written at the frame times (``output_times``), not per tile.
Layout: an ``.npz`` with ``frames`` (F, H, W) and ``times`` (F,) in [-1, 1].
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from nstm.simulation.motion import displacement_field, warp
from nstm.systems import AbstractImagingSystem
from nstm.systems.registry import Demo, Simulation, SystemSpec


@dataclasses.dataclass(frozen=True)
class TilesConfig:
    tiles_per_axis: int = 2
    """Tiles per axis of each frame (the frame size must be a multiple)."""


@dataclasses.dataclass(frozen=True)
class TilesSimulation:
    shape: tuple[int, int] = (32, 32)
    frames: int = 3
    max_displacement_px: float = 3.0
    seed: int = 0


class Tiles(AbstractImagingSystem):
    channels: ClassVar[tuple[str, ...]] = ("value",)
    per_measurement: ClassVar[tuple[str, ...]] = ("tiles", "times", "origins")
    linear: ClassVar[bool] = True

    tiles: jnp.ndarray  # (F * n * n, h, w) the measured tiles
    times: jnp.ndarray  # (F * n * n,)
    origins: jnp.ndarray  # (F * n * n, 1, 2) first pixel of each tile
    frame_times: tuple[float, ...] = eqx.field(static=True)
    shape: tuple[int, int] = eqx.field(static=True)
    tile: tuple[int, int] = eqx.field(static=True)

    @property
    def grid_shape(self):
        return self.shape

    @property
    def render_times(self):
        return self.times[:, None]

    @property
    def render_shape(self):
        return self.tile

    @property
    def render_origins(self):
        return self.origins

    @property
    def output_times(self):
        return np.asarray(self.frame_times, np.float32)

    def forward(self, scenes, index):
        return scenes[0, ..., 0]

    def measurement(self, index):
        return self.tiles[index]

    def reconstruct_static(self):
        n = len(self.frame_times)
        frames = np.asarray(self.tiles).reshape(n, -1, *self.tile)
        return {"value": _untile(frames.mean(axis=0), self.shape)}


def _untile(tiles, shape):
    h, w = tiles.shape[-2:]
    n = shape[1] // w
    return tiles.reshape(shape[0] // h, n, h, w).transpose(0, 2, 1, 3).reshape(shape)


def load(path: Path, config: TilesConfig) -> Tiles:
    try:
        with np.load(path) as npz:
            frames, times = npz["frames"].astype(np.float32), npz["times"].astype(np.float32)
    except (OSError, ValueError, EOFError, KeyError) as err:
        raise ValueError(
            f"{Path(path).name}: expected an .npz with frames and times ({err})"
        ) from None
    n = config.tiles_per_axis
    f, height, width = frames.shape
    if height % n or width % n:
        raise ValueError(f"tiles_per_axis: {n} does not divide the frames' {height} x {width}")
    h, w = height // n, width // n
    tiles = frames.reshape(f, n, h, n, w).transpose(0, 1, 3, 2, 4).reshape(-1, h, w)
    corners = [(i * h, j * w) for i in range(n) for j in range(n)]
    return Tiles(
        tiles=jnp.asarray(tiles),
        times=jnp.asarray(np.repeat(times, n * n)),
        origins=jnp.asarray(np.tile(corners, (f, 1))[:, None, :], jnp.int32),
        frame_times=tuple(float(t) for t in times),
        shape=(height, width),
        tile=(h, w),
    )


def simulate(sim: TilesSimulation):
    rng = np.random.default_rng(sim.seed)
    yy, xx = np.mgrid[: sim.shape[0], : sim.shape[1]]
    scene = sum(
        np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s**2))
        for cy, cx, s in rng.uniform([4, 4, 2], [sim.shape[0] - 4, sim.shape[1] - 4, 4], (8, 3))
    ).astype(np.float32)
    times = np.linspace(-1, 1, sim.frames, dtype=np.float32)
    motion = displacement_field(
        "translation", sim.shape, times, max_displacement_px=sim.max_displacement_px, rng=rng
    )
    frames = np.stack([warp(scene, d) for d in motion]).astype(np.float32)
    return {"frames": frames, "times": times}, {"value": frames, "motion": motion}


def figures(folder: Path, system: Tiles, outputs) -> None:
    """The first reconstructed frame with the tiles' borders drawn in (a system's own figure)."""
    import imageio.v3 as iio

    frame = outputs["value"][0]
    span = float(np.ptp(frame)) or 1.0
    image = (255 * (frame - frame.min()) / span).astype(np.uint8)
    h, w = system.tile
    image[::h, :] = 255
    image[:, ::w] = 255
    iio.imwrite(folder / "figure_tiles.png", image)


SPEC = SystemSpec(
    name="tiles",
    config_cls=TilesConfig,
    load=load,
    description="test plug-in: frames measured tile by tile",
    simulation=Simulation(
        config_cls=TilesSimulation,
        simulate=simulate,
        save=lambda path, data: np.savez(path, **data),
    ),
    demo=Demo(simulation=lambda size, phantom: TilesSimulation(shape=(size, size))),
    figures=figures,
)
