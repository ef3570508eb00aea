"""A volume system runs end to end into a run folder: arrays, OME-TIFFs with the z step,
figures, motion and video for (Z, H, W) scenes with (dz, dy, dx) motion."""

import xml.etree.ElementTree as ET
from typing import ClassVar

import jax.numpy as jnp
import numpy as np
import pytest
import tifffile

from nstm.config import FieldConfig, ModelConfig, RenderConfig, RunConfig, TrainConfig
from nstm.runs import build_model, write_baseline, write_outputs
from nstm.systems.base import AbstractImagingSystem
from nstm.training import fit


class Volumes(AbstractImagingSystem):
    """Measurement m is the volume at time t_m itself."""

    channels: ClassVar[tuple[str, ...]] = ("density",)
    channel_units: ClassVar[dict] = {"density": "counts"}
    per_measurement: ClassVar[tuple[str, ...]] = ("volumes", "times")
    volumes: jnp.ndarray
    times: jnp.ndarray

    @property
    def grid_shape(self):
        return tuple(self.volumes.shape[1:])

    @property
    def render_times(self):
        return self.times[:, None]

    @property
    def bandwidth_cycles_per_px(self):
        return (0.25, 0.5, 0.5)  # coarser along z, as a microscope's axial resolution

    @property
    def spacing_um(self):
        return (0.3, 0.1, 0.1)

    def forward(self, scenes, index):
        return scenes[0, ..., 0]

    def measurement(self, index):
        return self.volumes[index]

    def reconstruct_static(self):
        return {"density": np.asarray(self.volumes).mean(axis=0)}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run3d")
    zz, yy, xx = np.mgrid[:6, :12, :12]
    times = np.linspace(-1, 1, 4, dtype=np.float32)
    volumes = np.stack(
        [np.exp(-((zz - 2.5) ** 2 / 4 + (yy - 6 - t) ** 2 / 8 + (xx - 5) ** 2 / 8)) for t in times]
    ).astype(np.float32)
    system = Volumes(jnp.asarray(volumes), jnp.asarray(times))
    small = ModelConfig(
        scene=FieldConfig(log2_table_size=12, mlp_width=16),
        motion=FieldConfig(num_levels=2, coarsest_cell_px=16.0, finest_cell_px=8.0, mlp_width=8),
    )
    config = RunConfig(system=None, model=small, train=TrainConfig(steps=5), render=RenderConfig(4))
    model = build_model(system, small, seed=0)
    result = fit(model, system, config.train, progress=False)
    baseline = write_baseline(out, system)
    write_outputs(out, system, result.model, config, baseline=baseline, history=result.history)
    return out


def test_arrays_have_the_volume_shapes(run):
    with np.load(run / "reconstruction.npz") as recon:
        assert recon["density"].shape == (4, 6, 12, 12)
        assert recon["motion"].shape == (4, 6, 12, 12, 3)
    with np.load(run / "interpolated.npz") as video:
        assert video["density"].shape == (4, 6, 12, 12)


def test_ome_tiffs_carry_the_z_step_and_pixel_size(run):
    with tifffile.TiffFile(run / "reconstruction_density.ome.tif") as tif:
        assert tif.series[0].axes == "TZYX" and tif.series[0].shape == (4, 6, 12, 12)
        pixels = ET.fromstring(tif.ome_metadata).find(".//{*}Pixels").attrib
    assert float(pixels["PhysicalSizeZ"]) == pytest.approx(0.3)
    assert float(pixels["PhysicalSizeX"]) == pytest.approx(0.1)
    assert pixels["PhysicalSizeZUnit"] == "µm"
    with tifffile.TiffFile(run / "motion.ome.tif") as tif:
        assert tif.series[0].axes == "TZCYX" and tif.series[0].shape == (4, 6, 3, 12, 12)
    with tifffile.TiffFile(run / "baseline_density.ome.tif") as tif:
        assert tif.series[0].axes == "ZYX"


def test_figures_and_video_are_written(run):
    import imageio.v3 as iio

    for name in ("comparison.png", "motion.png", "loss.png"):
        assert iio.imread(run / name).shape[0] > 100, name
    # The volume's z projection, (H, W) per frame (identical frames of a barely trained model
    # are merged by the GIF writer, so their number is not checked).
    video = iio.imread(run / "video_density.gif", index=None)
    assert video.ndim >= 3 and video.shape[1:3] == (12, 12)


def test_the_system_chooses_how_figures_show_its_volumes(run, monkeypatch, tmp_path):
    """A system's volume_view reaches the comparison figure (SIM: projections, whatever the
    sign of the Wiener's ringing)."""
    import nstm.runs
    from nstm.systems.sim3d import SIM3D

    assert SIM3D.volume_view == "mip" and Volumes.volume_view == "auto"
    seen = {}
    monkeypatch.setattr(nstm.runs, "save_comparison_figure", lambda *a, **k: seen.update(k))

    class Projected(Volumes):
        volume_view: ClassVar[str] = "mip"

    with np.load(run / "reconstruction.npz") as recon:
        frames = recon["density"].shape[0]
    zz = np.zeros((frames, 6, 12, 12), np.float32)
    system = Projected(jnp.asarray(zz), jnp.asarray(np.linspace(-1, 1, frames, dtype=np.float32)))
    small = ModelConfig(
        scene=FieldConfig(log2_table_size=10, mlp_width=8),
        motion=FieldConfig(num_levels=2, coarsest_cell_px=16.0, finest_cell_px=8.0, mlp_width=8),
    )
    config = RunConfig(system=None, model=small, render=RenderConfig(2))
    write_outputs(tmp_path, system, build_model(system, small, seed=0), config)
    assert seen["volume_view"] == "mip"
