"""Every registered imaging system, built-in or plug-in, passes the same checks: its data round
trip, shapes, jit equals eager, finite gradients, linearity and adjointness where it claims
linearity, one training step (on one device and split across two, which equal each other), and
a clear error for a malformed data file."""

import dataclasses
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstm.config import FieldConfig, ModelConfig, TrainConfig, from_dict, to_dict
from nstm.runs import build_model
from nstm.systems import available_systems, get_system
from nstm.training import fit
from nstm.training.engine import (
    _field_mask,
    initial_params,
    make_optimizer,
    make_train_step,
    split_fields,
)

PLUGIN = Path(__file__).parent / "plugin"
SMALL = ModelConfig(
    scene=FieldConfig(log2_table_size=12, mlp_width=16),
    motion=FieldConfig(num_levels=2, coarsest_cell_px=32.0, finest_cell_px=16.0, mlp_width=8),
)


@pytest.fixture(scope="module", autouse=True)
def plugin_on_path():
    """The test plug-in's distribution (entry point) on the path, as if installed."""
    sys.path.insert(0, str(PLUGIN))
    yield
    sys.path.remove(str(PLUGIN))


def system_names():
    sys.path.insert(0, str(PLUGIN))
    try:
        return sorted(available_systems())
    finally:
        sys.path.remove(str(PLUGIN))


def test_the_plugin_is_among_the_systems_checked():
    assert {"dpc", "motion-blur", "tiles"} <= set(system_names())


@pytest.fixture(scope="module", params=system_names())
def case(request, tmp_path_factory):
    """(spec, system, truth) for a small simulated acquisition, through the data layout."""
    spec = get_system(request.param)
    assert spec.simulation is not None, f"{spec.name} has no simulator"
    # The smallest case each system demonstrates keeps the checks quick.
    sim = (
        spec.demo.simulation(spec.demo.min_size, None)
        if spec.demo
        else spec.simulation.config_cls()
    )
    data, truth = spec.simulation.simulate(sim)
    path = tmp_path_factory.mktemp(spec.name) / "data.npz"
    spec.simulation.save(path, data)
    return spec, spec.load(path, spec.config_cls()), truth, path


def random_scenes(system, key, renders=None):
    renders = system.render_times.shape[1] if renders is None else renders
    shape = (renders, *system.render_shape, len(system.channels))
    return jax.random.normal(key, shape, jnp.float32)


def test_configs_round_trip_and_channels_are_named(case):
    spec, system, truth, _ = case
    config = spec.config_cls()
    assert from_dict(spec.config_cls, to_dict(config)) == config
    sim = spec.simulation.config_cls()
    assert from_dict(spec.simulation.config_cls, to_dict(sim)) == sim
    assert system.channels and len(set(system.channels)) == len(system.channels)
    assert set(system.channel_units) <= set(system.channels)
    for name in (*system.per_measurement, *system.trainable):
        assert dataclasses.is_dataclass(system) or hasattr(system, name), name


def test_shapes_and_times(case):
    _, system, truth, _ = case
    times = np.asarray(system.render_times)
    m = system.num_measurements
    assert times.ndim == 2 and times.shape[0] == m and np.all(np.abs(times) <= 1)
    outputs = np.asarray(system.output_times)
    assert outputs.ndim == 1 and np.all(np.abs(outputs) <= 1)
    origins = system.render_origins
    if origins is not None:
        origins = np.asarray(origins)
        assert origins.shape == (*times.shape, len(system.grid_shape))
        assert np.all(origins >= 0)
        assert np.all(origins + np.asarray(system.render_shape) <= np.asarray(system.grid_shape))
    for name in system.per_measurement:
        for leaf in jax.tree.leaves(eqx.filter(getattr(system, name), eqx.is_array)):
            assert leaf.shape[0] == m, f"{name}: leading axis {leaf.shape[0]} != {m} measurements"
    scenes = random_scenes(system, jax.random.key(0))
    for index in sorted({0, m - 1}):
        assert system.forward(scenes, index).shape == system.measurement(index).shape
    # The truth is written at the output times, on the field of view.
    fov_shape = tuple(len(range(n)[s]) for n, s in zip(system.grid_shape, system.fov, strict=True))
    for name in system.channels:
        if name in truth:
            assert truth[name].shape == (len(outputs), *fov_shape)
    baseline = system.reconstruct_static()
    assert set(system.channels) <= set(baseline)  # and any extra references (SIM: widefield)
    for value in baseline.values():
        assert value.shape == fov_shape and np.all(np.isfinite(value))


def test_jit_equals_eager_and_gradients_are_finite(case):
    _, system, _, _ = case
    scenes = random_scenes(system, jax.random.key(1))
    index = jnp.asarray(system.num_measurements - 1)
    eager = system.forward(scenes, index)
    jitted = eqx.filter_jit(lambda s, x, i: s.forward(x, i))(system, scenes, index)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-5, atol=1e-6)

    def loss(x):
        return system.data_loss(x, index) + system.regularization(x)

    grad = jax.grad(loss)(scenes)
    assert np.all(np.isfinite(np.asarray(grad))) and float(jnp.abs(grad).max()) > 0


def test_linear_systems_are_linear_with_a_true_adjoint(case):
    _, system, _, _ = case
    if not system.linear:
        pytest.skip(f"{type(system).__name__} does not claim a linear forward model")
    kx, ky, kz = jax.random.split(jax.random.key(2), 3)
    x, y = random_scenes(system, kx), random_scenes(system, ky)
    index = jnp.asarray(0)

    def forward(v):
        return system.forward(v, index)

    np.testing.assert_allclose(
        np.asarray(forward(2.0 * x - 3.0 * y)),
        np.asarray(2.0 * forward(x) - 3.0 * forward(y)),
        rtol=1e-4,
        atol=1e-4 * float(jnp.abs(forward(x)).max()),
    )
    ax, adjoint = jax.vjp(forward, x)
    w = jax.random.normal(kz, ax.shape, ax.dtype)
    (atw,) = adjoint(w)
    left, right = float(jnp.vdot(ax, w)), float(jnp.vdot(x, atw))
    assert left == pytest.approx(right, rel=1e-4, abs=1e-6 * float(jnp.linalg.norm(w)))


def test_one_step_trains_and_two_devices_equal_one(case):
    _, system, _, _ = case
    model = build_model(system, SMALL, seed=0)
    result = fit(model, system, TrainConfig(steps=2, log_every=1), progress=False)
    assert all(np.isfinite(h["loss"]) for h in result.history)
    m = system.num_measurements
    if m % 2:
        pytest.skip("an odd number of measurements is not split across two devices")
    config = TrainConfig(steps=2)
    params = initial_params(model, system, config)
    optimizer = make_optimizer(config)
    losses = []
    for devices in (jax.devices("cpu")[:1], jax.devices("cpu")[:2]):
        fields = split_fields(system, config, devices, m)
        step = make_train_step(
            optimizer,
            num_measurements=m,
            frames_per_step=m,
            anneal_steps=1,
            devices=devices,
            system_split=_field_mask(system, fields),
        )
        mesh = jax.sharding.Mesh(np.asarray(devices), ("batch",))
        whole = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
        placed = eqx.tree_at(
            lambda s, fields=fields: tuple(getattr(s, n) for n in fields),
            system,
            tuple(jax.device_put(getattr(system, n), rows) for n in fields),
        )
        state = jax.device_put((params, optimizer.init(eqx.filter(params, eqx.is_array))), whole)
        _, _, stats = step(*state, placed, jnp.asarray(0), jax.random.key(0))
        losses.append(float(stats["loss"]))
    # Divided arrays index each device's rows: a field indexed by measurement but not listed
    # in per_measurement would read the wrong rows and change the loss.
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)


def test_malformed_data_is_refused_naming_the_file(case, tmp_path):
    spec, _, _, _ = case
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    unrelated = tmp_path / "unrelated.npz"
    np.savez(unrelated, something_else=np.zeros(3))
    for path in (empty, unrelated):
        with pytest.raises((ValueError, TypeError, OSError)) as caught:
            spec.load(path, spec.config_cls())
        assert path.name in str(caught.value), str(caught.value)
