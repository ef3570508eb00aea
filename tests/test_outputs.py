"""Tests for nstm.io.outputs: TIFF, figures and videos."""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from matplotlib.figure import Figure

from nstm.io import (
    read_tiff_spacing_um,
    save_comparison_figure,
    save_motion_figure,
    save_tiff,
    save_video,
)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


OME = "{http://www.openmicroscopy.org/Schemas/OME/2016-06}"


def ome_pixels(path) -> ET.Element:
    """The OME-XML <Pixels> element of the file's first image."""
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
        root = ET.fromstring(tif.ome_metadata)
    return root.find(f"{OME}Image/{OME}Pixels")


@pytest.mark.parametrize(
    ("shape", "axes", "spacing"),
    [
        ((20, 30), "YX", {"Y": 0.454, "X": 0.454}),
        ((3, 20, 30), "TYX", {"Y": 0.454, "X": 0.5}),
        ((3, 5, 20, 30), "TZYX", {"Z": 0.125, "Y": 0.08, "X": 0.08}),
        ((3, 2, 20, 30), "TCYX", {"Y": 0.3, "X": 0.3}),
    ],
)
def test_ome_tiff_round_trip_with_axes_and_physical_sizes(tmp_path, rng, shape, axes, spacing):
    data = rng.standard_normal(shape)
    path = tmp_path / "a.ome.tif"
    save_tiff(path, data, axes=axes, spacing_um=spacing)
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes == axes
        np.testing.assert_array_equal(tif.asarray(), data.astype(np.float32))
        resolution = tif.pages.first.resolution  # plain TIFF tags: pixels per cm
        assert tif.pages.first.resolutionunit == tifffile.RESUNIT.CENTIMETER
    # Rational tags: tifffile before 2026.2 rounds them to about 3e-6 (immaterial for a size).
    assert resolution == pytest.approx((1e4 / spacing["X"], 1e4 / spacing["Y"]), rel=1e-5)
    pixels = ome_pixels(path)
    for letter in "ZYX":
        if letter in spacing:
            assert float(pixels.get(f"PhysicalSize{letter}")) == spacing[letter]
            assert pixels.get(f"PhysicalSize{letter}Unit") == "\u00b5m"
        else:
            assert pixels.get(f"PhysicalSize{letter}") is None
    assert read_tiff_spacing_um(path) == spacing


def test_tiff_channel_names_and_time_increment(tmp_path, rng):
    motion = rng.standard_normal((4, 2, 16, 24))
    save_tiff(
        tmp_path / "m.ome.tiff",
        motion,
        axes="TCYX",
        channel_names=["dy", "dx"],
        time_interval=25,
        time_unit="ms",
    )
    pixels = ome_pixels(tmp_path / "m.ome.tiff")
    assert [c.get("Name") for c in pixels.findall(f"{OME}Channel")] == ["dy", "dx"]
    assert (pixels.get("TimeIncrement"), pixels.get("TimeIncrementUnit")) == ("25.0", "ms")
    assert (pixels.get("SizeT"), pixels.get("SizeC")) == ("4", "2")


def test_tiff_reorders_channel_last_to_tzcyx(tmp_path, rng):
    motion = rng.standard_normal((4, 16, 24, 2)).astype(np.float32)
    save_tiff(tmp_path / "m.tif", motion, axes="TYXC", channel_names=("dy", "dx"))
    with tifffile.TiffFile(tmp_path / "m.tif") as tif:
        assert tif.series[0].axes == "TCYX"
        np.testing.assert_array_equal(tif.asarray(), motion.transpose(0, 3, 1, 2))
    names = [c.get("Name") for c in ome_pixels(tmp_path / "m.tif").findall(f"{OME}Channel")]
    assert names == ["dy", "dx"]


def test_tiff_three_channels_are_not_rgb(tmp_path, rng):
    stack = rng.standard_normal((3, 8, 9))
    save_tiff(tmp_path / "c.ome.tif", stack, axes="CYX", channel_names=["a", "b", "c"])
    with tifffile.TiffFile(tmp_path / "c.ome.tif") as tif:
        assert tif.series[0].axes == "CYX"
        np.testing.assert_array_equal(tif.asarray(), stack.astype(np.float32))


def test_tiff_2d_without_metadata_has_no_physical_size(tmp_path, rng):
    image = rng.standard_normal((8, 9))
    save_tiff(tmp_path / "p.tiff", image, axes="YX")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "p.tiff"), image.astype(np.float32))
    assert ome_pixels(tmp_path / "p.tiff").get("PhysicalSizeX") is None
    assert read_tiff_spacing_um(tmp_path / "p.tiff") == {}


@pytest.mark.parametrize(
    ("shape", "axes", "match"),
    [
        ((3, 8, 8), "YX", r"expected 2 dimensions to match axes 'YX', got shape \(3, 8, 8\)"),
        ((8, 8), "AB", "axes: expected distinct letters"),
        ((8, 8, 8), "TXX", "axes: expected distinct letters"),
    ],
)
def test_tiff_validation(tmp_path, shape, axes, match):
    with pytest.raises(ValueError, match=match):
        save_tiff(tmp_path / "x.tif", np.zeros(shape), axes=axes)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"spacing_um": {"X": 0.0, "Y": 0.5}}, ValueError, r"spacing_um\['X'\]: .*positive.*µm"),
        ({"spacing_um": {"X": float("nan")}}, ValueError, r"spacing_um\['X'\]: .*finite"),
        ({"spacing_um": {"Z": 0.5}}, ValueError, r"key 'Z' is not a spatial axis of axes 'TYX'"),
        ({"spacing_um": {"T": 0.5}}, ValueError, r"key 'T' is not a spatial axis"),
        ({"spacing_um": {"X": "0.5"}}, TypeError, r"spacing_um\['X'\]: expected a number in µm"),
        ({"spacing_um": 0.5}, TypeError, "spacing_um: expected a dict"),
        ({"channel_names": ["a"]}, ValueError, "channel_names: given, but axes has no 'C'"),
        ({"time_interval": -1.0}, ValueError, "time_interval: expected a positive"),
        ({"time_unit": "ms"}, ValueError, r"time_unit: given \('ms'\) without time_interval"),
        ({"time_interval": 1.0, "time_unit": "fortnight"}, ValueError, "time_unit: expected one"),
    ],
)
def test_tiff_metadata_validation(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        save_tiff(tmp_path / "x.ome.tif", np.zeros((2, 8, 8)), axes="TYX", **kwargs)
    assert not (tmp_path / "x.ome.tif").exists()  # refused before writing


def test_tiff_channel_names_must_match_channel_count(tmp_path):
    with pytest.raises(
        ValueError, match=r"channel_names: expected one name per channel \(C = 2\), got 3"
    ):
        save_tiff(
            tmp_path / "x.tif", np.zeros((2, 8, 8)), axes="CYX", channel_names=["a", "b", "c"]
        )
    with pytest.raises(TypeError, match="channel_names: expected a sequence of strings"):
        save_tiff(tmp_path / "x.tif", np.zeros((2, 8, 8)), axes="CYX", channel_names="ab")
    with pytest.raises(ValueError, match=r"path: expected a file ending in \.ome\.tif"):
        save_tiff(tmp_path / "x.png", np.zeros((8, 8)), axes="YX")


def test_comparison_figure(tmp_path, rng):
    panels = {
        name: {"absorption": rng.standard_normal((32, 48)), "phase": rng.standard_normal((32, 48))}
        for name in ("NSTM (t=-1.00)", "Tikhonov (static)", "Ground truth")
    }
    path = tmp_path / "cmp.png"
    save_comparison_figure(path, panels, title="test")
    img = iio.imread(path)
    assert img.ndim == 3 and img.shape[1] > img.shape[0]  # 3 columns x 2 rows: landscape
    del panels["Ground truth"]["phase"]
    with pytest.raises(ValueError, match=r"panels\['Ground truth'\]: missing channel 'phase'"):
        save_comparison_figure(path, panels)


@pytest.fixture
def saved_figures(monkeypatch):
    """Every matplotlib Figure saved during the test, to inspect what was drawn."""
    figures = []
    original = Figure.savefig

    def savefig(self, *args, **kwargs):
        figures.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return figures


def colourbar_labels(fig) -> list[str]:
    return [ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]


def test_comparison_figure_units_only_where_given(tmp_path, rng, saved_figures):
    panels = {"a": {"absorption": rng.random((8, 8)), "phase": rng.random((8, 8))}}
    save_comparison_figure(tmp_path / "c.png", panels, units={"phase": "rad"})
    assert colourbar_labels(saved_figures[-1]) == ["absorption", "phase [rad]"]


def test_comparison_figure_volumes_as_orthoviews(tmp_path, rng, saved_figures):
    # Non-negative channel -> maximum projections; signed channel -> middle planes ("auto").
    shape = (6, 20, 30)
    panels = {
        m: {"intensity": rng.random(shape), "phase": rng.standard_normal(shape)}
        for m in ("NSTM", "conventional")
    }
    path = tmp_path / "cmp3d.png"
    save_comparison_figure(path, panels, channels=("intensity", "phase"), title="3D")
    img = iio.imread(path)
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > img.shape[0]
    fig = saved_figures[-1]
    drawn = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(drawn) == 2 * 2 * 3  # channels x methods x (XY, YZ, XZ)
    vol = panels["NSTM"]["intensity"].astype(np.float32)
    np.testing.assert_array_equal(drawn[0], vol.max(axis=0))  # XY: MIP along z
    np.testing.assert_array_equal(drawn[1], vol.max(axis=2).T)  # YZ: (H, Z)
    np.testing.assert_array_equal(drawn[2], vol.max(axis=1))  # XZ: (Z, W)
    signed = panels["NSTM"]["phase"].astype(np.float32)
    np.testing.assert_array_equal(drawn[6], signed[3])  # middle z plane
    np.testing.assert_array_equal(drawn[7], signed[:, :, 15].T)
    np.testing.assert_array_equal(drawn[8], signed[:, 10, :])
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert "intensity (mip)" in labels and "phase (middle)" in labels
    save_comparison_figure(path, panels, channels=("phase",), volume_view="mip")
    drawn = [ax.images[0].get_array() for ax in saved_figures[-1].axes if ax.images]
    np.testing.assert_array_equal(drawn[0], signed.max(axis=0))


def test_comparison_figure_anisotropic_voxels_keep_proportions(tmp_path, rng, saved_figures):
    panels = {"a": {"x": rng.random((10, 40, 40))}}

    def xz_over_xy_height() -> float:
        xy, _, xz = (ax for ax in saved_figures[-1].axes if ax.images)
        return xz.get_position().height / xy.get_position().height

    save_comparison_figure(tmp_path / "iso.png", panels, channels=["x"])
    assert xz_over_xy_height() == pytest.approx(10 / 40, rel=0.05)  # Z / H voxels
    save_comparison_figure(
        tmp_path / "tall.png", panels, channels=["x"], spacing_um={"Z": 4, "Y": 1, "X": 1}
    )
    assert xz_over_xy_height() == pytest.approx(10 * 4 / 40, rel=0.05)  # in µm


def test_comparison_figure_rejects_mixed_dimensions(tmp_path, rng):
    panels = {"vol": {"phase": rng.random((4, 8, 8))}, "img": {"phase": rng.random((8, 8))}}
    with pytest.raises(ValueError, match=r"panels\['img'\]\['phase'\]: expected 3D"):
        save_comparison_figure(tmp_path / "x.png", panels, channels=["phase"])
    with pytest.raises(ValueError, match="volume_view: expected one of"):
        save_comparison_figure(
            tmp_path / "x.png", {"vol": panels["vol"]}, channels=["phase"], volume_view="sum"
        )
    with pytest.raises(ValueError, match=r"expected shape \(H, W\) or \(Z, H, W\)"):
        save_comparison_figure(
            tmp_path / "x.png", {"a": {"phase": np.zeros((2, 2, 8, 8))}}, channels=["phase"]
        )


def test_motion_figure(tmp_path, rng):
    motion = rng.standard_normal((3, 24, 32, 2))
    times = np.linspace(-1, 1, 3)
    save_motion_figure(tmp_path / "m.png", motion, times)
    save_motion_figure(tmp_path / "mb.png", motion, times, background=motion[0, ..., 0], step=4)
    plain, with_background = iio.imread(tmp_path / "m.png"), iio.imread(tmp_path / "mb.png")
    assert plain.ndim == 3 and plain.shape[1] > plain.shape[0]  # 3 panels side by side
    assert with_background.shape == plain.shape and np.any(with_background != plain)
    with pytest.raises(ValueError, match=r"motion: expected shape \(frames, H, W, 2\) with"):
        save_motion_figure(tmp_path / "x.png", motion[..., 0], times)
    with pytest.raises(ValueError, match=r"times: expected shape \(frames,\) = \(3,\)"):
        save_motion_figure(tmp_path / "x.png", motion, times[:2])


def test_motion_figure_3d_middle_plane_and_dz(tmp_path, rng, saved_figures):
    motion = rng.standard_normal((3, 5, 24, 32, 3))  # (frames, Z, H, W, (dz, dy, dx))
    times = np.linspace(-1, 1, 3)
    save_motion_figure(tmp_path / "m3.png", motion, times)
    fig = saved_figures[-1]
    # Upper row: |(dy, dx)| of the middle plane z = 2; lower row: its dz.
    magnitudes = [ax.images[0].get_array() for ax in fig.axes[:3]]
    expected = np.hypot(motion[1, 2, ..., 1], motion[1, 2, ..., 2])
    np.testing.assert_allclose(magnitudes[1], expected, rtol=1e-6)
    dz = [ax.images[0].get_array() for ax in fig.axes[3:6]]
    np.testing.assert_allclose(dz[2], motion[2, 2, ..., 0], rtol=1e-6)
    assert colourbar_labels(fig) == ["|(dy, dx)| [px]", "dz [px]"]
    flat = iio.imread(tmp_path / "m3.png")
    save_motion_figure(tmp_path / "m2.png", motion[:, 2, ..., 1:], times)
    assert flat.shape[0] > 1.5 * iio.imread(tmp_path / "m2.png").shape[0]  # two rows of panels

    spacing = {"Z": 0.5, "Y": 0.2, "X": 0.2}
    save_motion_figure(
        tmp_path / "um.png", motion, times, spacing_um=spacing, background=motion[0, ..., 0]
    )
    fig = saved_figures[-1]
    assert colourbar_labels(fig) == ["|(dy, dx)| [µm]", "dz [µm]"]
    dz_um = [ax.images[0].get_array() for ax in fig.axes[3:6]]
    np.testing.assert_allclose(dz_um[0], 0.5 * motion[0, 2, ..., 0], rtol=1e-6)
    with pytest.raises(ValueError, match="spacing_um: missing axis 'Z'"):
        save_motion_figure(tmp_path / "x.png", motion, times, spacing_um={"Y": 1, "X": 1})
    with pytest.raises(ValueError, match=r"\(frames, Z, H, W, 3\) with \(dz, dy, dx\)"):
        save_motion_figure(tmp_path / "x.png", motion[..., :2], times)


def test_motion_figure_2d_in_micrometres(tmp_path, rng, saved_figures):
    motion = rng.standard_normal((2, 16, 16, 2))
    save_motion_figure(tmp_path / "m.png", motion, [0.0, 1.0], spacing_um={"Y": 0.25, "X": 0.25})
    fig = saved_figures[-1]
    assert colourbar_labels(fig) == ["|(dy, dx)| [µm]"]
    np.testing.assert_allclose(
        fig.axes[0].images[0].get_array(), 0.25 * np.hypot(motion[0, ..., 0], motion[0, ..., 1]),
        rtol=1e-6,
    )  # fmt: skip


def test_gif_frame_count_and_size(tmp_path, rng):
    frames = rng.standard_normal((7, 40, 56)).astype(np.float32)
    labels = [f"t = {t:.2f}" for t in np.linspace(-1, 1, 7)]
    save_video(tmp_path / "v.gif", frames, fps=5, labels=labels)
    video = iio.imread(tmp_path / "v.gif")
    assert video.shape[:3] == (7, 40, 56)


def test_gif_rgb_and_fixed_clim(tmp_path):
    # A few colours (GIF's palette holds them exactly): clim (low, high) maps low to 0 and high
    # to 255 in every channel and frame, clipping outside it; no per-frame or robust rescaling.
    frames = np.zeros((4, 16, 20, 3))
    frames[0] = (0.25, 0.5, 1.0)
    frames[1] = (-0.5, 0.75, 2.0)
    frames[2, :8] = 0.5
    frames[3] = np.linspace(0.0, 1.0, 20)[None, :, None]
    for high in (1.0, 2.0):
        save_video(tmp_path / "rgb.gif", frames, clim=(0.0, high))
        video = iio.imread(tmp_path / "rgb.gif")
        assert video.shape == (4, 16, 20, 3)
        expected = np.round(np.clip(frames / high, 0.0, 1.0) * 255)
        np.testing.assert_allclose(video, expected, atol=1)


def test_gif_shared_clim_across_frames(tmp_path):
    # A dim and a bright constant frame must stay dim and bright (no per-frame rescaling).
    frames = np.stack([np.full((8, 8), 0.0), np.full((8, 8), 1.0), np.full((8, 8), 0.5)])
    save_video(tmp_path / "c.gif", frames)
    video = iio.imread(tmp_path / "c.gif")
    grey = video if video.ndim == 3 else video[..., 0]
    means = grey.reshape(3, -1).mean(axis=1)
    assert means[0] < means[2] < means[1]


@pytest.mark.parametrize("value", [0.0, -3.0, 1e21])
def test_gif_of_a_constant_video_is_mid_grey_without_warnings(tmp_path, value):
    # A run that diverged to a huge constant (1e21: x +- 0.5 is x in float32) still writes its
    # video: one grey level, no division by an empty range.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_video(tmp_path / "c.gif", np.full((2, 8, 8), value, np.float32))
    video = iio.imread(tmp_path / "c.gif")
    grey = video if video.ndim == 3 else video[..., 0]
    assert np.unique(grey).size == 1 and 100 < grey.flat[0] < 156


@pytest.mark.parametrize(
    ("view", "expected"), [("mip", [[255, 255], [0, 255]]), ("middle", [[255, 0], [0, 0]])]
)
def test_gif_of_volumes_shows_projection_or_middle_plane(tmp_path, view, expected):
    # (T, Z, H, W): plane 1 of 3 (the middle) lights pixel (0, 0), plane 2 lights two more.
    volumes = np.zeros((2, 3, 2, 2))
    volumes[:, 1, 0, 0] = 1.0
    volumes[:, 2, 0, 1] = volumes[:, 2, 1, 1] = 1.0
    volumes[1] *= 0.5  # a dimmer second frame so the GIF keeps both frames
    save_video(tmp_path / "v.gif", volumes, clim=(0.0, 1.0), volume_view=view)
    video = iio.imread(tmp_path / "v.gif")
    grey = video if video.ndim == 3 else video[..., 0]
    assert grey.shape == (2, 2, 2)
    np.testing.assert_allclose(grey[0], expected, atol=1)
    np.testing.assert_allclose(grey[1], np.round(np.array(expected) * 0.5), atol=1)


def test_gif_of_volumes_auto_view_and_size(tmp_path, rng):
    volumes = rng.random((4, 6, 40, 56))
    save_video(tmp_path / "v.gif", volumes, labels=[f"t = {t}" for t in range(4)])
    assert iio.imread(tmp_path / "v.gif").shape[:3] == (4, 40, 56)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"labels": ["a"]}, r"labels: expected one label per frame \(3\), got 1"),
        ({"fps": 0}, "fps: expected a positive"),
        ({"clim": (1.0, 0.0)}, "clim: expected finite low < high"),
    ],
)
def test_video_validation(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        save_video(tmp_path / "v.gif", np.zeros((3, 8, 8)), **kwargs)


def test_video_bad_extension_and_shape(tmp_path):
    with pytest.raises(ValueError, match=r"\.gif or \.mp4"):
        save_video(tmp_path / "v.avi", np.zeros((3, 8, 8)))
    with pytest.raises(ValueError, match=r"frames: expected shape \(T, H, W\)"):
        save_video(tmp_path / "v.gif", np.zeros((8, 8)))


def test_mp4_without_ffmpeg_suggests_gif(tmp_path):
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"imageio-ffmpeg.*\.gif"):
            save_video(tmp_path / "v.mp4", np.zeros((3, 8, 8)))
    else:
        save_video(tmp_path / "v.mp4", np.random.default_rng(0).uniform(size=(3, 9, 11)))
        assert (tmp_path / "v.mp4").stat().st_size > 0
