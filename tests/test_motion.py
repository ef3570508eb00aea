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
        ({"times": [[0.0]]}, "times: expected a 1-D"),
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


# --- 3D --------------------------------------------------------------------------------------
SHAPE_3D = (10, 24, 28)
FOV_3D = (6, 16, 20)


def _smooth_volume(shape=SHAPE_3D, seed=0):
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.standard_normal(shape), 1.5)


@pytest.mark.parametrize("kind", ["translation", "rotation", "elastic"])
def test_3d_max_displacement_is_reached_over_fov(kind):
    times = np.linspace(-1.0, 1.0, 129)
    field = displacement_field(
        kind, SHAPE_3D, times, max_displacement_px=2.5, rng=3, fov_shape=FOV_3D
    )
    assert field.shape == (times.size, *SHAPE_3D, 3) and field.dtype == np.float32
    peak = _norm(field[(slice(None), *fov_slices(SHAPE_3D, FOV_3D))]).max()
    assert peak == pytest.approx(2.5, rel=1e-4 if kind != "elastic" else 2e-3)
    assert peak <= 2.5 * (1 + 1e-5)


@pytest.mark.parametrize("kind", MOTIONS)
def test_3d_zero_at_t0_and_consistent_across_time_sets(kind):
    a = displacement_field(kind, SHAPE_3D, [-0.5, 0.0, 0.3], max_displacement_px=2.0, rng=9)
    b = displacement_field(kind, SHAPE_3D, [0.3], max_displacement_px=2.0, rng=9)
    assert a.shape == (3, *SHAPE_3D, 3)
    assert not a[1].any()
    np.testing.assert_allclose(a[2], b[0], atol=1e-6)


def test_3d_translation_is_uniform_with_the_requested_magnitude():
    field = displacement_field("translation", SHAPE_3D, [-1.0, 0.5], max_displacement_px=3.0, rng=1)
    step = field[1, 0, 0, 0]
    np.testing.assert_array_equal(field[1], np.broadcast_to(step, field[1].shape))
    assert np.linalg.norm(step) == pytest.approx(1.5, rel=1e-6)  # 3 px * |t|
    np.testing.assert_allclose(field[0, 0, 0, 0], -2 * step, rtol=1e-6)  # linear in t
    assert abs(step[0]) > 1e-3  # a random 3D direction has an axial part
    given = displacement_field(
        "translation", SHAPE_3D, [1.0], max_displacement_px=2.0, direction=(2.0, 0.0, -2.0)
    )
    np.testing.assert_allclose(given[0, 3, 4, 5], [np.sqrt(2), 0.0, -np.sqrt(2)], atol=1e-6)


def test_3d_translation_directions_are_isotropic_or_lateral():
    units = np.array(
        [
            displacement_field("translation", (1, 1, 1), [1.0], max_displacement_px=1.0, rng=s)[
                0, 0, 0, 0
            ]
            for s in range(400)
        ]
    )
    np.testing.assert_allclose(np.linalg.norm(units, axis=1), 1.0, rtol=1e-6)
    # Uniform on the sphere: mean 0 and E[u_i^2] = 1/3 (standard errors ~0.03 and ~0.015).
    np.testing.assert_allclose(units.mean(axis=0), 0.0, atol=0.12)
    np.testing.assert_allclose((units**2).mean(axis=0), 1 / 3, atol=0.06)
    lateral = displacement_field(
        "translation", SHAPE_3D, [1.0], max_displacement_px=2.0, rng=1, lateral=True
    )
    assert not lateral[..., 0].any()
    np.testing.assert_allclose(_norm(lateral), 2.0, rtol=1e-6)


def test_3d_rotation_about_z_is_the_2d_rotation_in_every_plane():
    times = [-1.0, 0.4]
    field = displacement_field(
        "rotation", SHAPE_3D, times, max_displacement_px=3.0, rng=5, fov_shape=FOV_3D
    )
    assert not field[..., 0].any()  # about the optical axis: dz = 0 exactly
    planar = displacement_field(
        "rotation", SHAPE_3D[1:], times, max_displacement_px=3.0, rng=5, fov_shape=FOV_3D[1:]
    )
    for z in range(SHAPE_3D[0]):
        np.testing.assert_allclose(field[:, z, ..., 1:], planar, atol=1e-5)


@pytest.mark.parametrize("opts", [{"tilt_deg": 20.0}, {"axis": (1.0, 2.0, -1.0)}])
def test_3d_rotation_is_rigid(opts):
    field = displacement_field("rotation", SHAPE_3D, [1.0], max_displacement_px=3.0, rng=2, **opts)
    field = field[0]
    if "tilt_deg" in opts:
        assert np.abs(field[..., 0]).max() > 0.1  # a tilted axis moves voxels along z
    points = np.indices(SHAPE_3D).reshape(3, -1).T.astype(np.float64)
    moved = points + field.reshape(-1, 3)
    i, j = np.random.default_rng(0).integers(0, len(points), size=(2, 300))
    np.testing.assert_allclose(
        np.linalg.norm(moved[i] - moved[j], axis=1),
        np.linalg.norm(points[i] - points[j], axis=1),
        atol=1e-4,
    )
    # Volume preserving: the divergence of a rigid rotation's field is 1 - cos(theta) small.
    div = sum(np.gradient(field[..., a], axis=a) for a in range(3))
    assert np.abs(div).max() < 0.05


def test_3d_rotation_about_a_given_axis_moves_perpendicular_to_it():
    axis = np.array([1.0, 2.0, -1.0]) / np.sqrt(6.0)
    center = (4.5, 11.5, 13.5)  # the FOV centre (the whole canvas)
    field = displacement_field(
        "rotation", SHAPE_3D, [1.0], max_displacement_px=3.0, rng=2, axis=axis, center=center
    )[0]
    np.testing.assert_allclose(field @ axis, 0.0, atol=1e-5)
    assert _norm(field).max() == pytest.approx(3.0, rel=1e-5)  # at the farthest corner
    # Every voxel moves by 2 sin(theta / 2) times its distance from the axis (0 on the axis).
    offset = np.stack(np.indices(SHAPE_3D), -1) - np.array(center)
    distance = np.linalg.norm(offset - np.multiply.outer(offset @ axis, axis), axis=-1)
    np.testing.assert_allclose(
        _norm(field), 2 * np.sin(_angle(field, distance) / 2) * distance, rtol=1e-5, atol=1e-6
    )


def _angle(field, distance):
    """The rotation angle, from the voxel farthest from the axis (|d| = 2 sin(theta / 2) rho)."""
    k = np.unravel_index(np.argmax(distance), distance.shape)
    return 2 * np.arcsin(_norm(field)[k] / (2 * distance[k]))


def test_3d_elastic_is_smooth_bounded_and_3d():
    max_d = 3.0
    times = np.linspace(-1, 1, 5)
    field = displacement_field("elastic", (16, 40, 40), times, max_displacement_px=max_d, rng=2)
    for axis in (1, 2, 3):  # z, y, x
        assert np.abs(np.diff(field, n=2, axis=axis)).max() < 0.05 * max_d
    assert _norm(field).max() <= max_d * (1 + 1e-5)
    # All three components move and vary in space; the shape changes with time.
    assert np.std(field[-1], axis=(0, 1, 2)).min() > 0.1
    a, b = field[0].ravel(), field[-1].ravel()
    assert abs(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))) < 0.999
    lateral = displacement_field(
        "elastic", (16, 40, 40), times, max_displacement_px=max_d, rng=2, lateral=True
    )
    assert not lateral[..., 0].any() and _norm(lateral).max() <= max_d * (1 + 1e-5)


def test_3d_elastic_correlation_length_per_axis():
    field = displacement_field(
        "elastic",
        (24, 48, 48),
        [1.0],
        max_displacement_px=1.0,
        rng=4,
        correlation_length_px=(2.0, 12.0, 12.0),
    )[0, ..., 1]

    def lag2(axis):
        a = np.moveaxis(field, axis, 0)
        return np.corrcoef(a[:-2].ravel(), a[2:].ravel())[0, 1]

    # Autocorrelation exp(-lag^2 / (2 l^2)) at lag 2: 0.37 along z (l = 2), 0.99 along y, x.
    assert lag2(0) == pytest.approx(np.exp(-4 / 8), abs=0.15)
    assert lag2(1) > 0.95 and lag2(2) > 0.95


# --- 3D warping ------------------------------------------------------------------------------
def test_warp_volume_by_integer_translation_is_a_shift():
    volume = _smooth_volume()
    d = np.array([1.0, -2.0, 3.0])
    warped = warp(volume, np.broadcast_to(d, (*volume.shape, 3)))
    expected = np.roll(volume, (-1, 2, -3), axis=(0, 1, 2))  # warped(r) = volume(r + d)
    interior = (slice(1, -1), slice(2, -2), slice(3, -3))
    np.testing.assert_allclose(warped[interior], expected[interior], atol=1e-5)


def test_warp_volume_batch_and_sequence():
    volume = _smooth_volume()
    fields = displacement_field("elastic", SHAPE_3D, TIMES, max_displacement_px=1.5, rng=0)
    stack = np.stack([volume, 2 * volume])  # (C, Z, H, W)
    batched = warp(stack, fields[1])
    np.testing.assert_allclose(batched[1], 2 * warp(volume, fields[1]), atol=1e-5)
    frames = warp_sequence(volume, fields)
    assert frames.shape == (TIMES.size, *SHAPE_3D) and frames.dtype == np.float32
    np.testing.assert_allclose(frames[2], warp(volume, fields[2]), atol=1e-6)
    np.testing.assert_allclose(frames[TIMES.size // 2], volume, atol=1e-5)  # t = 0


def test_warp_3d_shape_errors():
    with pytest.raises(ValueError, match=r"\(Z, H, W, 3\) = \(4, 5, 6, 3\)"):
        warp(np.zeros((4, 5, 6)), np.zeros((4, 5, 7, 3)))
    with pytest.raises(ValueError, match=r"\(H, W, 2\) for an image or \(Z, H, W, 3\)"):
        warp(np.zeros((4, 5, 6)), np.zeros((4, 5, 6, 2)))
    with pytest.raises(ValueError, match=r"frames, Z, H, W, 3"):
        warp_sequence(np.zeros((4, 5, 6)), np.zeros((2, 4, 5, 6, 2)))
    with pytest.raises(ValueError, match=r"image: expected an image \(H, W\) or a volume"):
        warp_sequence(np.zeros((2, 4, 5, 6)), np.zeros((2, 4, 5, 6, 3)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"shape": (4, 8, 8, 8)}, r"shape: expected a shape \(H, W\) or \(Z, H, W\)"),
        ({"shape": (8,)}, "shape: expected"),
        ({"fov_shape": (8, 8)}, r"fov_shape: expected a shape \(Z, H, W\)"),
        ({"fov_shape": (9, 4, 4)}, "fov_shape: expected a window inside"),
        ({"times": [0.0, -1.01]}, r"times: expected normalized times in \[-1, 1\]"),
        ({"kind": "translation", "direction": (1.0, 0.0)}, r"direction: .*\(dz, dy, dx\)"),
        ({"kind": "translation", "direction": (1, 0, 0), "lateral": True}, "lateral"),
        ({"kind": "rotation", "axis": (0, 0, 0)}, "axis: expected a non-zero"),
        ({"kind": "rotation", "tilt_deg": 120.0}, r"tilt_deg: expected an angle in \[0, 90\]"),
        ({"kind": "rotation", "center": (1.0, 2.0)}, r"center: .*\(z, y, x\)"),
        ({"correlation_length_px": (2.0, 3.0)}, "correlation_length_px: .*per axis"),
        ({"correlation_length_px": -1.0}, "correlation_length_px: expected a positive"),
    ],
)
def test_3d_validation(kwargs, match):
    args = {"kind": "elastic", "shape": (8, 8, 8), "times": [0.0], "max_displacement_px": 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        displacement_field(args.pop("kind"), args.pop("shape"), args.pop("times"), **args)


@pytest.mark.parametrize("option", [{"lateral": True}, {"tilt_deg": 5.0}])
def test_3d_only_options_are_refused_in_2d(option):
    kind = "rotation" if "tilt_deg" in option else "translation"
    with pytest.raises(ValueError, match="only for a 3D shape"):
        displacement_field(kind, (8, 8), [0.0], max_displacement_px=1.0, **option)


def test_fov_slices_any_number_of_axes():
    assert fov_slices((10, 11, 12), (4, 6, 12)) == (slice(3, 7), slice(2, 8), slice(0, 12))
    assert fov_slices((9,), (3,)) == (slice(3, 6),)
    with pytest.raises(ValueError, match=r"fov_shape: expected a shape \(Z, H, W\)"):
        fov_slices((10, 11, 12), (4, 6))
    with pytest.raises(ValueError, match="shape: expected a shape"):
        fov_slices(12, (4,))
