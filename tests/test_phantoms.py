from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from skimage.morphology import skeletonize

from nstm.simulation.phantoms import (
    DENSITIES,
    PHANTOMS,
    make_beads,
    make_color,
    make_density,
    make_phantom,
)

SHAPES = [(64, 64), (33, 47), (80, 41)]
RANDOM = ("cells", "blobs")


@pytest.mark.parametrize("name", PHANTOMS)
@pytest.mark.parametrize("shape", SHAPES)
def test_shape_dtype_and_physical_ranges(name, shape):
    absorption, phase = make_phantom(name, shape, rng=np.random.default_rng(0))
    for image in (absorption, phase):
        assert image.shape == shape
        assert image.dtype == np.float32
        assert np.all(np.isfinite(image))
    assert absorption.max() <= 0.0 and absorption.min() >= -0.5
    assert phase.min() >= 0.0 and phase.max() <= 4.0
    assert np.ptp(phase) > 0.1, "phantom must have structure"


@pytest.mark.parametrize("name", PHANTOMS)
def test_smooth_enough(name):
    # Light smoothing: no single-pixel jumps bigger than the phantom's own range.
    _, phase = make_phantom(name, (96, 96), rng=1)
    jump = max(np.abs(np.diff(phase, axis=0)).max(), np.abs(np.diff(phase, axis=1)).max())
    assert jump < 0.8 * phase.max()


def test_procedural_ranges():
    absorption, phase = make_phantom("cells", (128, 128), rng=3)
    assert phase.max() == pytest.approx(2.0, rel=0.05)
    assert absorption.min() == pytest.approx(-0.2, rel=0.1)
    absorption, phase = make_phantom("blobs", (128, 128), rng=3)
    assert phase.max() == pytest.approx(1.5, rel=0.05)
    assert absorption.min() == pytest.approx(-0.1, rel=0.1)


@pytest.mark.parametrize("name", PHANTOMS)
def test_deterministic_per_seed(name):
    first = make_phantom(name, (48, 56), rng=np.random.default_rng(7))
    second = make_phantom(name, (48, 56), rng=np.random.default_rng(7))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", RANDOM)
def test_random_phantoms_depend_on_seed(name):
    _, a = make_phantom(name, (48, 48), rng=1)
    _, b = make_phantom(name, (48, 48), rng=2)
    assert not np.allclose(a, b)


def test_resolution_has_fine_and_coarse_bars():
    _, phase = make_phantom("resolution", (128, 256))
    bars = phase > 0.75
    labels, count = ndimage.label(bars)
    assert count >= 30  # 3 bars per group, several groups
    # Bars of several widths: the narrowest (1.5 px) and widest (8 px) are both resolved.
    widths = [min(r.stop - r.start, c.stop - c.start) for r, c in ndimage.find_objects(labels)]
    assert min(widths) <= 2 and max(widths) >= 7


def test_c_elegans_is_the_worm_in_physical_units():
    absorption, phase = make_phantom("c-elegans", (146, 366))
    assert 2.0 <= phase.max() <= 4.0  # colour bar tops out at ~3.9 rad
    assert -0.5 <= absorption.min() <= -0.2
    # A thin worm on an empty background, not a ramp (colour bar) or a constant.
    assert 0.05 < np.mean(phase > 0.5) < 0.4
    assert np.median(phase) < 0.1 and np.median(absorption) > -0.05
    rows_mean = phase.mean(axis=1)
    assert np.ptp(rows_mean) < phase.max()  # no monotonic full-range ramp along rows
    assert np.std(phase) > 0.3
    # Absorption and phase are co-registered: the worm is where both are strong.
    worm = phase > 1.0
    assert absorption[worm].mean() < absorption[~worm].mean() - 0.05


def test_usaf_bars():
    absorption, phase = make_phantom("usaf", (100, 100))
    assert phase.max() == pytest.approx(1.5, abs=0.05)
    np.testing.assert_allclose(absorption, -0.1 / 1.5 * phase, atol=1e-6)
    assert 0.1 < np.mean(phase > 0.75) < 0.6


def test_unknown_name_lists_available():
    with pytest.raises(ValueError, match="c-elegans"):
        make_phantom("shepp-logan", (32, 32))


@pytest.mark.parametrize("shape", [(8, 64), (32,), (32.5, 32), "ab"])
def test_bad_shape(shape):
    with pytest.raises(ValueError, match="shape"):
        make_phantom("blobs", shape)


def test_image_file_phantom_maps_grey_to_phase_and_absorption(tmp_path):
    import imageio.v3 as iio

    image = np.zeros((40, 60, 3), np.uint8)
    image[10:30, 20:40] = (200, 100, 0)  # grey 100 on black: the bright square is the sample
    path = tmp_path / "sample.png"
    iio.imwrite(path, image)
    absorption, phase = make_phantom(str(path), (40, 60))
    # Same size, so no resampling: phase 1.5 rad and absorption -0.1 on the square (after the
    # 0.5 px smoothing every phantom gets), 0 far from it.
    assert phase[20, 30] == pytest.approx(1.5, abs=1e-3)
    assert absorption[20, 30] == pytest.approx(-0.1, abs=1e-4)
    assert phase[2, 2] == 0.0 and absorption[2, 2] == 0.0
    assert make_phantom(str(path), (20, 30))[1].shape == (20, 30)
    with pytest.raises(ValueError, match="path of an image file"):
        make_phantom(str(tmp_path / "missing.png"), (20, 30))
    (tmp_path / "broken.png").write_text("not an image")
    with pytest.raises(ValueError, match="cannot read"):
        make_phantom(str(tmp_path / "broken.png"), (20, 30))


# --- densities (fluorescence / intensity), 2D and 3D -------------------------------------------
DENSITY_SHAPES = [(48, 56), (6, 40, 48), (1, 32, 32)]
RANDOM_DENSITIES = ("beads", "cells", "filaments")


@pytest.mark.parametrize("name", DENSITIES)
@pytest.mark.parametrize("shape", DENSITY_SHAPES)
def test_density_shape_dtype_range_and_peak(name, shape):
    density = make_density(name, shape, rng=0)
    assert density.shape == shape and density.dtype == np.float32
    assert np.all(np.isfinite(density)) and density.min() >= 0.0
    assert density.max() == 1.0
    assert np.count_nonzero(density > 0.05) >= 3  # structure, not one stray pixel


@pytest.mark.parametrize("name", RANDOM_DENSITIES)
def test_density_deterministic_per_seed_and_random_across_seeds(name):
    first = make_density(name, (5, 40, 40), rng=np.random.default_rng(7))
    np.testing.assert_array_equal(make_density(name, (5, 40, 40), rng=7), first)
    assert not np.allclose(make_density(name, (5, 40, 40), rng=8), first)


@pytest.mark.parametrize("shape", [(64, 72), (8, 48, 64), (40, 40, 40)])
def test_point_beads_are_where_they_are_said_to_be(shape):
    density, positions = make_beads(shape, rng=3, spacing_px=6.0)
    assert positions.shape[1] == len(shape) and len(positions) >= 4
    # Single pixels of height 1 exactly at the positions, nothing elsewhere.
    order = np.lexsort(positions.T[::-1])  # np.argwhere lists pixels in raster order
    np.testing.assert_array_equal(np.argwhere(density > 0), positions[order].astype(int))
    np.testing.assert_array_equal(density[tuple(positions.astype(int).T)], 1.0)
    distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    assert distances[~np.eye(len(positions), dtype=bool)].min() >= 6.0
    for axis, n in enumerate(shape):
        if (
            n >= 12
        ):  # along axes of >= 2 spacings, beads are >= 3 px from the borders at -0.5, n - 0.5
            assert positions[:, axis].min() >= 2.5 and positions[:, axis].max() <= n - 3.5
    np.testing.assert_array_equal(make_density("beads", shape, rng=3, spacing_px=6.0), density)


@pytest.mark.parametrize("shape", [(64, 64), (9, 48, 48)])
def test_gaussian_beads_are_centred_on_their_subpixel_positions(shape):
    density, positions = make_beads(
        shape, rng=5, spacing_px=10.0, sigma_px=1.2, count=4, subpixel=True
    )
    assert len(positions) == 4
    assert np.any(positions != np.round(positions))
    grid = np.indices(shape, dtype=np.float64)
    nearest = np.round(positions).astype(int)
    # Each bead is exp(-|r - p|^2 / (2 sigma^2)), the whole scaled so that the brightest sample,
    # at the pixel nearest to some bead's centre, is 1.
    samples = np.exp(-np.sum((nearest - positions) ** 2, axis=1) / (2 * 1.2**2))
    np.testing.assert_allclose(density[tuple(nearest.T)], samples / samples.max(), rtol=1e-5)
    for p in positions:
        # Centroid over a window of 3.5 sigma, where the neighbours (>= 10 px away) do not reach.
        near = np.linalg.norm(grid - p.reshape(-1, *[1] * len(shape)), axis=0) < 4.2
        weights = density * near
        if p[0] > 4.2 and p[0] < shape[0] - 5.2:  # a window cut by the edge biases the centroid
            centroid = (grid * weights).reshape(len(shape), -1).sum(1) / weights.sum()
            np.testing.assert_allclose(centroid, p, atol=0.05)


def test_beads_errors():
    with pytest.raises(ValueError, match=r"count: expected an integer in 1\.\.4 "):
        make_beads((32, 32), spacing_px=8.0, count=5)
    with pytest.raises(ValueError, match="subpixel: continuous positions need sigma_px > 0"):
        make_beads((32, 32), subpixel=True)
    with pytest.raises(ValueError, match="spacing_px: expected a distance >= 1 px"):
        make_beads((32, 32), spacing_px=0.5)
    with pytest.raises(ValueError, match="sigma_px: expected a finite value >= 0"):
        make_beads((32, 32), sigma_px=-1.0)


def _ring_and_interior(plane):
    """Mean density in the 3 px rim of a single cell's footprint and deeper inside it."""
    mask = ndimage.binary_fill_holes(plane > 0.05)
    ring = mask & ~ndimage.binary_erosion(mask, iterations=3)
    inner = ndimage.binary_erosion(mask, iterations=5)
    return plane[ring].mean(), plane[inner].mean()


@pytest.mark.parametrize("seed", range(4))
def test_cells_have_a_bright_shell_around_a_dimmer_cytoplasm(seed):
    plane = make_density("cells", (96, 96), rng=seed, count=1)
    assert ndimage.label(plane > 0.05)[1] == 1  # one cell
    ring, inner = _ring_and_interior(plane)
    assert ring > 1.5 * inner > 0
    volume = make_density("cells", (12, 96, 96), rng=seed, count=1)
    # The plane through the middle of the cell (the density's mean z: the shell is symmetric).
    z = np.arange(12) @ volume.sum(axis=(1, 2)) / volume.sum()
    ring, inner = _ring_and_interior(volume[int(round(z))])
    assert ring > 1.5 * inner > 0
    # Closed in z too: the planes at the volume's top and bottom are dark.
    assert volume[[0, -1]].max() < 0.05


def test_cells_count():
    density = make_density("cells", (128, 128), rng=1, count=3)
    labels, count = ndimage.label(ndimage.binary_fill_holes(density > 0.05))
    assert 2 <= count <= 3  # cells may touch


def _thickness(mask):
    """Area over skeleton length: the width of a thin curve (px)."""
    return mask.sum() / max(1, skeletonize(mask).sum())


@pytest.mark.parametrize("seed", range(4))
def test_filaments_are_thin_curves_of_the_requested_width(seed):
    thin = make_density("filaments", (96, 96), rng=seed, count=1, width_px=1.0)
    wide = make_density("filaments", (96, 96), rng=seed, count=1, width_px=2.5)
    # The same curve; the full width at half maximum of a Gaussian of sigma 1 px is 2.4 px.
    assert 1.5 < _thickness(thin > 0.5) < 4.0
    assert _thickness(wide > 0.5) > 1.8 * _thickness(thin > 0.5)
    assert np.mean(thin > 0.1) < 0.2  # a curve, not a blob
    assert skeletonize(thin > 0.5).sum() > 0.3 * 96 * 0.4  # most of its >= 38 px show


def test_filaments_meander_in_3d():
    volume = make_density("filaments", (16, 64, 64), rng=0)
    z = np.nonzero(volume > 0.5)[0]
    assert np.ptp(z) >= 8  # not confined to a plane


def test_usaf_slab_is_the_2d_target_times_a_gaussian_profile():
    image = make_density("usaf", (64, 64))
    volume = make_density("usaf", (9, 64, 64), slab_fwhm_px=3.0)
    profile = np.exp(-4 * np.log(2) * (np.arange(9) - 4.0) ** 2 / 3.0**2)
    np.testing.assert_allclose(volume, profile[:, None, None] * image, atol=1e-6)
    # Even Z: centred between the two middle planes, which share the peak.
    even = make_density("usaf", (8, 64, 64))
    np.testing.assert_allclose(even[3], even[4])
    assert even.max() == 1.0


def test_density_from_image_files(tmp_path):
    import imageio.v3 as iio
    import tifffile

    image = np.zeros((40, 60, 3), np.uint8)
    image[10:30, 20:40] = (200, 100, 0)
    iio.imwrite(tmp_path / "square.png", image)
    density = make_density(str(tmp_path / "square.png"), (40, 60))
    assert density[20, 30] == 1.0 and density[2, 2] == 0.0
    assert np.mean(density == 1.0) == pytest.approx(20 * 20 / (40 * 60))
    # A crop (box) of the output's size: rows 5-35 and the square's columns, as they are.
    crop = make_density(str(tmp_path / "square.png"), (30, 20), box=(5, 35, 20, 40))
    np.testing.assert_array_equal(crop[5:25], 1.0)
    np.testing.assert_array_equal(crop[:5], 0.0)
    slab = make_density(str(tmp_path / "square.png"), (5, 40, 60), slab_fwhm_px=2.0)
    np.testing.assert_allclose(slab[2], density)
    assert slab[0, 20, 30] == pytest.approx(np.exp(-4 * np.log(2) * 4 / 4), rel=1e-5)
    stack = np.zeros((2, 32, 32), np.uint16)
    stack[1, :16] = 1000  # frame 1: bright top half
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    second = make_density(str(tmp_path / "stack.tif"), (32, 32), frame=1)
    assert second[:16].min() == 1.0 and second[16:].max() == 0.0
    with pytest.raises(ValueError, match="box: expected"):
        make_density(str(tmp_path / "square.png"), (32, 32), box=(0, 50, 0, 10))
    with pytest.raises(ValueError, match="slab_fwhm_px: only for a 3D shape"):
        make_density(str(tmp_path / "square.png"), (32, 32), slab_fwhm_px=2.0)


def test_density_errors():
    with pytest.raises(ValueError, match=r"name: expected one of \('beads', 'cells', 'filaments'"):
        make_density("stars", (32, 32))
    with pytest.raises(ValueError, match=r"options: unknown option\(s\) \['sigma_px'\].*count"):
        make_density("cells", (32, 32), sigma_px=1.0)
    for shape in [(2, 8, 32, 32), (0, 32, 32), (4, 8, 32), (32,)]:
        with pytest.raises(ValueError, match="shape: expected"):
            make_density("cells", shape)


# --- colour ------------------------------------------------------------------------------------
def test_color_from_file_keeps_colour_balance(tmp_path):
    import imageio.v3 as iio

    image = np.zeros((40, 60, 4), np.uint8)
    image[10:30, 20:40] = (200, 100, 0, 255)
    image[..., 3] = 255
    iio.imwrite(tmp_path / "square.png", image)
    rgb = make_color(str(tmp_path / "square.png"), (40, 60))
    assert rgb.shape == (40, 60, 3) and rgb.dtype == np.float32
    np.testing.assert_allclose(rgb[20, 30], [1.0, 0.5, 0.0])
    np.testing.assert_array_equal(rgb[2, 2], 0.0)
    grey = np.full((32, 32), 7, np.uint8)
    grey[:, 16:] = 70
    iio.imwrite(tmp_path / "grey.png", grey)
    rgb = make_color(str(tmp_path / "grey.png"), (32, 32))
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])
    assert rgb[5, 5, 1] == pytest.approx(0.1, rel=1e-5)


@pytest.mark.parametrize("name", RANDOM_DENSITIES)
def test_color_scene_is_the_density_in_varying_colours(name):
    rgb = make_color(name, (64, 80), rng=2)
    assert rgb.shape == (64, 80, 3) and rgb.dtype == np.float32
    assert rgb.min() >= 0.0 and rgb.max() == 1.0
    density = make_density(name, (64, 80), rng=2)
    for c in range(3):  # same structure: dark exactly where the density is
        np.testing.assert_array_equal(rgb[..., c] > 0, density > 0)
    lit = density > 0.3
    ratio = rgb[..., 0][lit] / rgb[..., 1][lit]
    assert np.std(np.log(ratio)) > 0.05  # hues vary across the scene
    assert ratio.min() >= 0.2 and ratio.max() <= 5.0  # each channel keeps >= 20 %


def test_color_errors(tmp_path):
    with pytest.raises(ValueError, match=r"shape: expected a shape \(H, W\)"):
        make_color("cells", (4, 32, 32))
    with pytest.raises(ValueError, match="name: expected one of"):
        make_color("stars", (32, 32))
    with pytest.raises(ValueError, match=r"options: unknown option\(s\) \['slab_fwhm_px'\]"):
        import imageio.v3 as iio

        iio.imwrite(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
        make_color(str(tmp_path / "a.png"), (32, 32), slab_fwhm_px=2.0)


SHARED_TENNIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "Diffcam-tennis.gif"


@pytest.mark.skipif(not SHARED_TENNIS.is_file(), reason="shared sample images not present")
def test_color_from_the_shared_tennis_video():
    rgb = make_color(str(SHARED_TENNIS), (90, 110), box=(30, 210, 254, 472), frame=3)
    assert rgb.shape == (90, 110, 3) and rgb.max() == 1.0
    # A dark scene with a bright yellow-green ball: red and green well above blue somewhere.
    assert np.median(rgb) < 0.2
    assert np.max(rgb[..., 1] - rgb[..., 2]) > 0.3
