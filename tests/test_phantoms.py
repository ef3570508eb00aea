import numpy as np
import pytest
from scipy import ndimage

from nstm.simulation.phantoms import PHANTOMS, make_phantom

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
