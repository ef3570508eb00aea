import numpy as np
import pytest
from scipy import ndimage

from nstm.simulation.motion import MOTIONS, displacement_field, fov_slices, warp, warp_sequence

TIMES = np.linspace(-1.0, 1.0, 9)


def _smooth_image(shape=(40, 48), seed=0):
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)


def _norm(field):
    return np.linalg.norm(field, axis=-1)


# --- warp ------------------------------------------------------------------------------------
def test_constant_displacement_matches_scipy_shift_with_opposite_sign():
    image = _smooth_image()
    d = np.array([1.3, -2.7])
    displacement = np.broadcast_to(d, (*image.shape, 2))
    warped = warp(image, displacement)
    # Backward warp: warped(r) = image(r + d), i.e. the content moves by -d.
    expected = ndimage.shift(image, -d, order=3, mode="nearest")
    np.testing.assert_allclose(warped, expected, atol=1e-5)


def test_integer_shift_sign():
    image = np.zeros((9, 9))
    image[4, 4] = 1.0
    displacement = np.broadcast_to(np.array([1.0, 2.0]), (9, 9, 2))
    warped = warp(image, displacement, order=1)
    # warped(r) = image(r + d) = 1 where r + d = (4, 4), i.e. r = (3, 2).
    assert np.unravel_index(np.argmax(warped), warped.shape) == (3, 2)


def test_zero_displacement_is_identity_and_float32():
    image = _smooth_image()
    warped = warp(image, np.zeros((*image.shape, 2)))
    assert warped.dtype == np.float32
    np.testing.assert_allclose(warped, image, atol=1e-6)


def test_warp_leading_batch_axes():
    stack = np.stack([_smooth_image(seed=s) for s in range(3)])  # (C, H, W)
    displacement = displacement_field(
        "elastic", stack.shape[1:], [0.7], max_displacement_px=2.0, rng=0
    )[0]
    batched = warp(stack, displacement)
    assert batched.shape == stack.shape
    for plane, out in zip(stack, batched, strict=True):
        np.testing.assert_allclose(out, warp(plane, displacement), atol=1e-6)


def test_warp_sequence_matches_per_frame_warp():
    image = _smooth_image()
    fields = displacement_field("rotation", image.shape, TIMES, max_displacement_px=3.0, rng=0)
    frames = warp_sequence(image, fields)
    assert frames.shape == (TIMES.size, *image.shape) and frames.dtype == np.float32
    np.testing.assert_allclose(frames[2], warp(image, fields[2]), atol=1e-6)
    np.testing.assert_allclose(frames[TIMES.size // 2], image, atol=1e-5)  # t = 0


def test_warp_shape_errors():
    with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
        warp(np.zeros((8, 8)), np.zeros((8, 9, 2)))
    with pytest.raises(ValueError, match="frames, H, W, 2"):
        warp_sequence(np.zeros((8, 8)), np.zeros((3, 8, 8)))
    with pytest.raises(ValueError, match="mode"):
        warp(np.zeros((8, 8)), np.zeros((8, 8, 2)), mode="bogus")


# --- displacement fields ---------------------------------------------------------------------
def test_none_is_zero():
    field = displacement_field("none", (20, 30), TIMES, max_displacement_px=5.0)
    assert field.shape == (TIMES.size, 20, 30, 2) and field.dtype == np.float32
    assert not field.any()


@pytest.mark.parametrize("kind", ["translation", "rotation", "elastic"])
@pytest.mark.parametrize("shape, fov", [((48, 64), None), ((71, 90), (41, 50))])
def test_max_displacement_is_reached_over_fov(kind, shape, fov):
    times = np.linspace(-1.0, 1.0, 129)
    max_d = 3.5
    field = displacement_field(kind, shape, times, max_displacement_px=max_d, rng=4, fov_shape=fov)
    assert field.shape == (times.size, *shape, 2) and field.dtype == np.float32
    rows, cols = fov_slices(shape, fov or shape)
    peak = _norm(field[:, rows, cols]).max()
    # Translation and rotation peak at |t| = 1; the elastic peak may fall between samples.
    assert peak == pytest.approx(max_d, rel=1e-4 if kind != "elastic" else 2e-3)
    assert peak <= max_d * (1 + 1e-5)


@pytest.mark.parametrize("kind", MOTIONS)
def test_zero_at_t0_and_consistent_across_time_sets(kind):
    a = displacement_field(kind, (32, 40), [-0.5, 0.0, 0.3], max_displacement_px=2.0, rng=9)
    b = displacement_field(kind, (32, 40), [0.3], max_displacement_px=2.0, rng=9)
    assert not a[1].any()
    np.testing.assert_allclose(a[2], b[0], atol=1e-6)


def test_translation_direction_and_linearity():
    field = displacement_field(
        "translation", (10, 12), [-1.0, 0.5], max_displacement_px=2.0, direction=(3.0, 4.0)
    )
    np.testing.assert_allclose(field[0], np.broadcast_to([-1.2, -1.6], (10, 12, 2)), atol=1e-6)
    np.testing.assert_allclose(field[1], np.broadcast_to([0.6, 0.8], (10, 12, 2)), atol=1e-6)


def test_rotation_is_rigid():
    shape = (40, 50)
    field = displacement_field("rotation", shape, [1.0], max_displacement_px=4.0, rng=0)[0]
    points = np.indices(shape).reshape(2, -1).T.astype(np.float64)
    moved = points + field.reshape(-1, 2)
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(points), size=(2, 200))
    np.testing.assert_allclose(
        np.linalg.norm(moved[i] - moved[j], axis=1),
        np.linalg.norm(points[i] - points[j], axis=1),
        atol=1e-4,
    )
    # Divergence-free (area preserving up to second order in the angle).
    div = np.gradient(field[..., 0], axis=0) + np.gradient(field[..., 1], axis=1)
    assert np.abs(div).max() < 0.02


def test_rotation_unreachable_max_raises():
    with pytest.raises(ValueError, match="max_displacement_px"):
        displacement_field("rotation", (5, 5), [1.0], max_displacement_px=100.0)


def test_elastic_is_smooth_and_varies_with_time():
    max_d = 4.0
    field = displacement_field(
        "elastic", (64, 64), np.linspace(-1, 1, 5), max_displacement_px=max_d, rng=2
    )
    second_y = np.abs(np.diff(field, n=2, axis=1)).max()
    second_x = np.abs(np.diff(field, n=2, axis=2)).max()
    assert max(second_y, second_x) < 0.05 * max_d
    # Non-rigid: the field varies in space, and its shape changes with t (not just its scale).
    assert np.std(field[-1], axis=(0, 1)).max() > 0.1
    a, b = field[0].ravel(), field[-1].ravel()
    assert abs(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))) < 0.999


def test_elastic_depends_on_seed():
    def field(rng):
        return displacement_field("elastic", (32, 32), [1.0], max_displacement_px=1.0, rng=rng)

    a = field(0)
    np.testing.assert_array_equal(field(0), a)  # the same seed, the same field
    np.testing.assert_array_equal(field(np.random.default_rng(0)), a)  # as a seed or generator
    b = field(1)
    assert not np.allclose(a, b)
    # Both fields reach the same 1 px maximum: they differ in shape, not scale.
    assert np.abs(a).max() > 0.5 and np.abs(b).max() > 0.5
    assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.9


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kind": "wobble"}, "elastic"),
        ({"times": [0.0, 1.5]}, r"\[-1, 1\]"),
        ({"times": [np.nan]}, "finite"),
        ({"times": [[0.0]]}, "frames"),
        ({"max_displacement_px": -1.0}, ">= 0"),
        ({"fov_shape": (40, 10)}, "fov_shape"),
        ({"kind": "translation", "direction": (0.0, 0.0)}, "direction"),
        ({"kind": "translation", "center": (1, 1)}, "accepted"),
    ],
)
def test_validation(kwargs, match):
    args = {"kind": "elastic", "shape": (20, 20), "times": [0.0], "max_displacement_px": 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        displacement_field(args.pop("kind"), args.pop("shape"), args.pop("times"), **args)


def test_fov_slices_centered():
    rows, cols = fov_slices((10, 11), (4, 6))
    assert (rows.start, rows.stop, cols.start, cols.stop) == (3, 7, 2, 8)


# Pinned 2D fields (seed 2024, canvas (40, 48), FOV (32, 40), 5 times, 3 px): any change to the
# draws, their order or the arithmetic of the 2D fields breaks these numbers (the DPC simulator and
# earlier data sets rely on the same seed giving the same motion).
_PINNED_2D = {
    # kind: (sum |d|, sum d * sin(0.001 i), d[4, 5, 7, 0], d[0, 30, 40, 1])
    "translation": (23201.786727905273, 4945.61942572499, -2.6800973415374756, 1.34799063205719),
    "rotation": (15254.592784309294, -456.35160378811696, -1.8784034252166748, 1.1426042318344116),
    "elastic": (9843.344519608421, -87.10486059327309, -1.0160762071609497, -0.175015389919281),
}


@pytest.mark.parametrize("kind", sorted(_PINNED_2D))
def test_2d_fields_are_pinned(kind):
    times = np.linspace(-1, 1, 5)
    field = displacement_field(
        kind, (40, 48), times, max_displacement_px=3.0, rng=2024, fov_shape=(32, 40)
    ).astype(np.float64)
    weights = np.sin(np.arange(field.size) * 0.001).reshape(field.shape)
    total, weighted, a, b = _PINNED_2D[kind]
    # Tolerances allow a last-bit difference of a vectorized sin/cos on another CPU, no more.
    assert np.abs(field).sum() == pytest.approx(total, rel=1e-6)
    assert (field * weights).sum() == pytest.approx(weighted, rel=1e-5)
    assert field[4, 5, 7, 0] == pytest.approx(a, rel=1e-6)
    assert field[0, 30, 40, 1] == pytest.approx(b, rel=1e-6)
