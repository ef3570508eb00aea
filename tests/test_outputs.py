"""Tests for nstm.io.outputs: TIFF, figures and videos."""

from __future__ import annotations

import warnings

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from nstm.io import save_comparison_figure, save_motion_figure, save_tiff, save_video


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_tiff_round_trip_with_axes_and_resolution(tmp_path, rng):
    stack = rng.standard_normal((3, 20, 30))
    save_tiff(tmp_path / "a.tif", stack, axes="TYX", pixel_size_um=0.5)
    with tifffile.TiffFile(tmp_path / "a.tif") as tif:
        assert tif.is_imagej
        assert tif.series[0].axes == "TYX"
        np.testing.assert_array_equal(tif.asarray(), stack.astype(np.float32))
        assert tif.imagej_metadata["unit"] == "um"
        num, den = tif.pages[0].tags["XResolution"].value
        assert num / den == pytest.approx(2.0)  # pixels per µm


def test_tiff_reorders_channel_last_to_imagej(tmp_path, rng):
    motion = rng.standard_normal((4, 16, 24, 2)).astype(np.float32)
    save_tiff(tmp_path / "m.tif", motion, axes="TYXC")
    with tifffile.TiffFile(tmp_path / "m.tif") as tif:
        assert tif.series[0].axes == "TCYX"
        np.testing.assert_array_equal(tif.asarray(), motion.transpose(0, 3, 1, 2))


def test_tiff_2d(tmp_path, rng):
    image = rng.standard_normal((8, 9))
    save_tiff(tmp_path / "p.tiff", image, axes="YX")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "p.tiff"), image.astype(np.float32))


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


def test_motion_figure(tmp_path, rng):
    motion = rng.standard_normal((3, 24, 32, 2))
    times = np.linspace(-1, 1, 3)
    save_motion_figure(tmp_path / "m.png", motion, times)
    save_motion_figure(tmp_path / "mb.png", motion, times, background=motion[0, ..., 0], step=4)
    plain, with_background = iio.imread(tmp_path / "m.png"), iio.imread(tmp_path / "mb.png")
    assert plain.ndim == 3 and plain.shape[1] > plain.shape[0]  # 3 panels side by side
    assert with_background.shape == plain.shape and np.any(with_background != plain)
    with pytest.raises(ValueError, match=r"motion: expected shape \(frames, H, W, 2\)"):
        save_motion_figure(tmp_path / "x.png", motion[..., 0], times)
    with pytest.raises(ValueError, match=r"times: expected shape \(frames,\) = \(3,\)"):
        save_motion_figure(tmp_path / "x.png", motion, times[:2])


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
