import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstm.config import FieldConfig, ModelConfig
from nstm.model import make_model, motion_fields, param_labels, render_scenes

SMALL = ModelConfig(
    scene=FieldConfig(coarsest_cell_px=8.0, finest_cell_px=2.0, log2_table_size=12, mlp_width=16),
    motion=FieldConfig(num_levels=2, coarsest_cell_px=16.0, finest_cell_px=8.0, mlp_width=8),
)


def small_model(grid=(20, 24), channels=2, key=0, config=SMALL):
    return make_model(
        config, grid_shape=grid, channels=channels, num_times=4, key=jax.random.key(key)
    )


def randomize_motion(model, key=1):
    """Give the zero-initialized motion output layer random weights."""
    mlp = model.motion_mlp
    keys = jax.random.split(jax.random.key(key), 2)
    w = 0.1 * jax.random.normal(keys[0], mlp.weights[-1].shape)
    b = 0.1 * jax.random.normal(keys[1], mlp.biases[-1].shape)
    return eqx.tree_at(lambda m: (m.motion_mlp.weights[-1], m.motion_mlp.biases[-1]), model, (w, b))


def test_initial_motion_is_zero_so_the_scene_does_not_depend_on_time():
    model = small_model()
    scenes = model.render(jnp.array([-1.0, 0.3, 1.0]))
    assert scenes.shape == (3, 20, 24, 2)
    np.testing.assert_array_equal(scenes[0], scenes[1])
    np.testing.assert_array_equal(scenes[2], scenes[1])
    np.testing.assert_array_equal(motion_fields(model, [-1.0, 0.5]), 0.0)
    assert np.asarray(scenes).std() > 0  # a scene that is there, not zeros


def test_scene_is_canonical_scene_read_at_displaced_coordinates():
    model = randomize_motion(small_model())
    r = jnp.array([[3.0, 4.0], [10.5, 7.25]])
    d = model.displacement(r, 0.4)
    np.testing.assert_allclose(model(r, 0.4), model.canonical(r + d), rtol=1e-6)
    assert np.abs(np.asarray(d)).max() > 0


def test_displacement_is_in_pixels_scaled_by_displacement_scale():
    model = randomize_motion(small_model())
    doubled = dataclasses.replace(SMALL, displacement_scale_px=16.0)
    model2 = randomize_motion(small_model(config=doubled))
    r = jnp.array([[5.0, 6.0]])
    np.testing.assert_allclose(
        model2.displacement(r, 0.1), 2 * model.displacement(r, 0.1), rtol=1e-6
    )


def test_chunked_render_equals_single_pass_and_batch_equals_vmap():
    model = randomize_motion(small_model())
    times = np.array([-1.0, -0.2, 0.9], np.float32)
    full = np.asarray(model.render(times))
    np.testing.assert_allclose(render_scenes(model, times, chunk_points=37), full, atol=1e-6)
    coords = model.grid_coords()[:10]
    batched = model(coords, 0.3)
    single = jax.vmap(lambda r: model(r, 0.3))(coords)
    np.testing.assert_allclose(batched, single, atol=1e-6)
    # The motion field is the model's displacement at every pixel, whatever the chunking.
    motion = motion_fields(model, times, chunk_points=50)
    assert motion.shape == (3, 20, 24, 2) and np.abs(motion).max() > 1e-3
    grid = model.grid_coords()
    for k, t in enumerate(times):
        expected = np.asarray(model.displacement(grid, t)).reshape(20, 24, 2)
        np.testing.assert_allclose(motion[k], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(motion_fields(model, times), motion)


def test_render_rejects_times_outside_unit_interval():
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        render_scenes(small_model(), [0.0, 1.5])


def test_scene_resolution_follows_system_bandwidth():
    coarse = make_model(
        ModelConfig(),
        grid_shape=(64, 64),
        channels=2,
        bandwidth_cycles_per_px=0.125,
        key=jax.random.key(0),
    )
    fine = make_model(
        ModelConfig(),
        grid_shape=(64, 64),
        channels=2,
        bandwidth_cycles_per_px=0.45,
        key=jax.random.key(0),
    )
    extent = 63 + 2 * ModelConfig().scene.bbox_margin_px
    # Finest cell = 1 / (2 * bandwidth) px: Nyquist for what the system transmits.
    assert coarse.scene_encoding.level_resolutions[-1][0] == int(np.ceil(extent / 4.0))
    assert fine.scene_encoding.level_resolutions[-1][0] == int(np.ceil(extent * 0.9))


def test_param_labels_split_scene_and_motion():
    model = small_model()
    labels = param_labels(eqx.filter(model, eqx.is_array))
    assert set(jax.tree_util.tree_leaves(labels.motion_mlp)) == {"motion"}
    assert set(jax.tree_util.tree_leaves(labels.motion_encoding)) == {"motion"}
    assert set(jax.tree_util.tree_leaves(labels.scene_mlp)) == {"scene"}
    assert set(jax.tree_util.tree_leaves(labels.scene_encoding)) == {"scene"}


def test_volume_model_renders_3d_grid():
    model = make_model(SMALL, grid_shape=(3, 8, 10), channels=1, key=jax.random.key(0))
    model = randomize_motion(model)
    rendered = model.render(jnp.array([0.0, 0.6]))
    assert rendered.shape == (2, 3, 8, 10, 1)
    # Voxel (z, y, x) of the render is the model at those coordinates, row-major over the grid.
    grid = model.grid_coords()
    assert grid.shape == (3 * 8 * 10, 3)
    np.testing.assert_array_equal(grid[1 * 80 + 2 * 10 + 7], [1.0, 2.0, 7.0])
    for k, t in enumerate((0.0, 0.6)):
        expected = np.asarray(model(grid, t)).reshape(3, 8, 10, 1)
        np.testing.assert_allclose(rendered[k], expected, rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(model.displacement(grid, 0.6))).max() > 1e-3


def test_chunked_render_matches_full_render_and_gradients():
    """Chunked (rematerialized) rendering is the same function, values and gradients."""
    model = make_model(SMALL, grid_shape=(12, 9), channels=2, num_times=3, key=jax.random.key(3))
    # Non-zero motion so the warp is exercised.
    model = eqx.tree_at(
        lambda m: m.motion_mlp.weights[-1], model, jnp.full_like(model.motion_mlp.weights[-1], 0.1)
    )
    times = jnp.array([-1.0, 0.2, 1.0])

    def loss(m, chunk):
        return jnp.sum(jnp.sin(m.render(times, alpha=0.7, chunk_points=chunk)))

    full, g_full = eqx.filter_value_and_grad(loss)(model, None)
    # 3 x 108 queries in chunks of 50: the last chunk is padded.
    chunked, g_chunk = eqx.filter_value_and_grad(loss)(model, 50)
    np.testing.assert_allclose(chunked, full, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g_chunk), jax.tree.leaves(g_full), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="chunk_points"):
        model.render(times, chunk_points=0)


def _moving(model):
    """The model with a non-zero motion output layer, so displacements are non-trivial."""
    w = model.motion_mlp.weights[-1]
    return eqx.tree_at(lambda m: m.motion_mlp.weights[-1], model, jnp.full_like(w, 0.3))


def test_motion_lattice_is_exact_at_nodes_and_interpolates_between():
    model = _moving(small_model(grid=(23, 18)))  # (22, 17) extents: last cells partial
    assert model.motion_stride_px == 4
    t = jnp.float32(0.4)
    nodes = jnp.array([[0.0, 0.0], [8.0, 4.0], [20.0, 16.0]])
    np.testing.assert_allclose(
        model.displacement(nodes, t), model.motion_network(nodes, t), rtol=1e-5, atol=1e-6
    )
    # Half-way between two nodes along x: the mean of the two.
    mid = model.displacement(jnp.array([[8.0, 6.0]]), t)
    ends = model.motion_network(jnp.array([[8.0, 4.0], [8.0, 8.0]]), t)
    np.testing.assert_allclose(mid[0], ends.mean(0), rtol=1e-5, atol=1e-6)
    # The lattice path used in training agrees with the pointwise one at every grid point.
    grid = model.grid_coords()
    lattice = model._lattice_displacement(jnp.array([t]), None)  # (ndim, 1, H, W)
    np.testing.assert_allclose(
        lattice.reshape(2, -1).T,
        model.displacement(grid, t),
        rtol=1e-5,
        atol=1e-5,
    )


def test_motion_stride_one_is_the_network_and_bad_stride_is_rejected():
    exact = _moving(small_model(config=dataclasses.replace(SMALL, motion_stride_px=1)))
    grid = exact.grid_coords()
    np.testing.assert_array_equal(exact.displacement(grid, 0.1), exact.motion_network(grid, 0.1))
    with pytest.raises(ValueError, match="motion_stride_px"):
        small_model(config=dataclasses.replace(SMALL, motion_stride_px=0))


def test_scene_resolution_per_axis_bandwidth():
    """Lateral and axial bandwidths differ in 3D: each axis's finest cell follows its own."""
    model = make_model(
        ModelConfig(),
        grid_shape=(16, 64, 64),
        channels=1,
        bandwidth_cycles_per_px=(0.1, 0.4, 0.4),
        key=jax.random.key(0),
    )
    margin = ModelConfig().scene.bbox_margin_px
    finest = model.scene_encoding.level_resolutions[-1]
    assert finest[0] == int(np.ceil((15 + 2 * margin) / 5.0))  # 1 / (2 * 0.1) = 5 px
    assert finest[1] == finest[2] == int(np.ceil((63 + 2 * margin) / 1.25))
    with pytest.raises(ValueError, match="bandwidth_cycles_per_px"):
        make_model(
            ModelConfig(), grid_shape=(8, 8), channels=1, bandwidth_cycles_per_px=(0.2, 0.0),
            key=jax.random.key(0),
        )  # fmt: skip


@pytest.mark.parametrize("stride", [1, 4])
@pytest.mark.parametrize("grid", [(20, 24), (6, 12, 10)])
def test_render_boxes_equal_the_same_region_of_the_whole_grid(grid, stride):
    """A render of a box from an origin is that region of the whole grid's render, each time
    with its own box, on and off the motion lattice, in 2D and 3D, with and without chunks."""
    config = dataclasses.replace(SMALL, motion_stride_px=stride)
    model = randomize_motion(small_model(grid=grid, config=config))
    times = jnp.array([-0.8, 0.1, 0.9])
    box = tuple(n // 2 for n in grid)
    far = [n - b for n, b in zip(grid, box, strict=True)]  # the box at the far corner
    origins = np.array([[0] * len(grid), far, [1] * len(grid)])
    whole = np.asarray(model.render(times, alpha=0.7))
    for chunk in (None, 37):
        boxes = np.asarray(
            model.render(times, alpha=0.7, origins=origins, box=box, chunk_points=chunk)
        )
        assert boxes.shape == (3, *box, 2)
        for i, origin in enumerate(origins):
            region = tuple(slice(o, o + b) for o, b in zip(origin, box, strict=True))
            np.testing.assert_allclose(boxes[i], whole[i][region], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="box"):
        model.render(times, origins=origins, box=tuple(n + 1 for n in grid))
