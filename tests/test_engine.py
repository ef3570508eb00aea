"""The training engine: loss decreases, resume is exact, NaN and Ctrl-C are handled."""

import dataclasses
import json
import re
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstm.config import FieldConfig, ModelConfig, TrainConfig
from nstm.model import make_model
from nstm.systems.base import AbstractImagingSystem
from nstm.training import (
    NonFiniteLossError,
    TrainingInterrupted,
    fit,
    load_checkpoint,
    make_fit_step,
)
from nstm.training.checkpoint import FORMAT_VERSION
from nstm.training.engine import (
    _field_mask,
    data_parallel_devices,
    initial_params,
    make_optimizer,
    make_train_step,
)

CONFIG = ModelConfig(
    scene=FieldConfig(coarsest_cell_px=8.0, finest_cell_px=2.0, log2_table_size=12, mlp_width=16),
    motion=FieldConfig(num_levels=2, coarsest_cell_px=16.0, finest_cell_px=8.0, mlp_width=8),
)


class Snapshots(AbstractImagingSystem):
    """Measurement m is the scene at time t_m itself (a denoising toy system)."""

    channels: ClassVar[tuple[str, ...]] = ("value",)
    per_measurement: ClassVar[tuple[str, ...]] = ("frames", "times")
    frames: jnp.ndarray
    times: jnp.ndarray

    @property
    def grid_shape(self):
        return tuple(self.frames.shape[1:])

    @property
    def render_times(self):
        return self.times[:, None]

    def forward(self, scenes, index):
        return scenes[0, ..., 0]

    def measurement(self, index):
        return self.frames[index]

    def reconstruct_static(self):
        return {"value": np.asarray(self.frames).mean(0)}


def make_problem(frames=4, size=16):
    yy, xx = np.mgrid[:size, :size] / size
    times = np.linspace(-1, 1, frames, dtype=np.float32)
    data = np.stack([np.sin(6 * (xx - 0.05 * t)) * np.cos(4 * yy) for t in times])
    system = Snapshots(jnp.asarray(data, jnp.float32), jnp.asarray(times))
    model = make_model(
        CONFIG, grid_shape=(size, size), channels=1, num_times=frames, key=jax.random.key(0)
    )
    return model, system


def leaves(model):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))]


def test_loss_decreases_and_history_is_logged(tmp_path):
    model, system = make_problem()
    result = fit(
        model,
        system,
        TrainConfig(steps=40, log_every=5, scene_lr=2e-2),
        run_dir=tmp_path,
        progress=False,
    )
    losses = [h["loss"] for h in result.history]
    assert result.step == 40 and len(losses) == 8
    assert losses[-1] < 0.3 * losses[0]
    assert (tmp_path / "checkpoint.eqx").is_file()
    assert (tmp_path / "loss.csv").read_text().startswith("step,loss,data,reg,alpha")


def test_resumed_run_ends_with_the_same_parameters(tmp_path):
    model, system = make_problem()
    config = TrainConfig(steps=30, frames_per_step=2, checkpoint_every=10, log_every=5)
    straight = fit(model, system, config, progress=False)
    fit(model, system, config, run_dir=tmp_path, stop_at=13, progress=False)
    resumed = fit(model, system, config, run_dir=tmp_path, resume=True, progress=False)
    assert resumed.step == 30
    for a, b in zip(leaves(straight.model), leaves(resumed.model), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [h["step"] for h in resumed.history] == [h["step"] for h in straight.history]


def test_same_seed_same_result_different_seed_differs():
    model, system = make_problem()
    config = TrainConfig(steps=5, frames_per_step=1)
    a = leaves(fit(model, system, config, progress=False).model)
    b = leaves(fit(model, system, config, progress=False).model)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    # The seed draws the frames of each step: another seed trains on other frames.
    c = leaves(fit(model, system, dataclasses.replace(config, seed=1), progress=False).model)
    assert any(not np.array_equal(x, z) for x, z in zip(a, c, strict=True))


def test_non_finite_data_stop_at_the_first_step_without_a_checkpoint(tmp_path):
    model, system = make_problem()
    bad = eqx.tree_at(lambda s: s.frames, system, system.frames.at[2, 3, 3].set(jnp.inf))
    with pytest.raises(NonFiniteLossError, match="at step 0.*check the data") as err:
        fit(model, bad, TrainConfig(steps=5), run_dir=tmp_path, progress=False)
    assert err.value.checkpoint_step is None
    assert not (tmp_path / "checkpoint.eqx").exists()  # no state with a finite loss to keep


def test_divergence_mid_way_keeps_a_state_that_lower_rates_continue_from(tmp_path):
    # Six good steps, then a learning rate high enough to blow the loss up within a few steps
    # (overflowing to inf). The state kept must be one that training continues from with
    # lower rates, as the error message advises: the one with the lowest loss, whose loss is
    # finite (the last finite states before an overflow are already blown up).
    model, system = make_problem()
    good = TrainConfig(steps=12, log_every=1)
    fit(model, system, good, run_dir=tmp_path, stop_at=6, progress=False)
    diverging = dataclasses.replace(good, scene_lr=1e7, motion_lr=1e7)
    with pytest.raises(NonFiniteLossError, match="training diverged") as err:
        fit(model, system, diverging, run_dir=tmp_path, resume=True, progress=False)
    bad, kept = err.value.step, err.value.checkpoint_step
    assert bad > 6 and 6 <= kept < bad
    assert f"at step {bad}:" in str(err.value) and "--resume --train.scene-lr" in str(err.value)
    (saved, _), step, history = load_checkpoint(tmp_path / "checkpoint.eqx", (model, None))
    assert step == kept and [h["step"] for h in history] == list(range(1, kept + 1))
    assert all(np.isfinite(x).all() for x in leaves(saved))
    # The same settings diverge again; the first ones continue to the end, the loss going down.
    with pytest.raises(NonFiniteLossError, match="training diverged"):
        fit(model, system, diverging, run_dir=tmp_path, resume=True, progress=False)
    result = fit(model, system, good, run_dir=tmp_path, resume=True, progress=False)
    assert result.start_step == kept and result.step == 12
    losses = [h["loss"] for h in result.history]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[kept - 1]


def test_ctrl_c_saves_a_checkpoint_that_resumes(tmp_path, monkeypatch):
    model, system = make_problem()
    config = TrainConfig(steps=10, log_every=1)
    import nstm.training.engine as engine

    real = engine.make_train_step
    calls = {"n": 0}

    def interrupting(*args, **kwargs):
        step = real(*args, **kwargs)

        def wrapped(*a):
            calls["n"] += 1
            if calls["n"] == 4:
                raise KeyboardInterrupt
            return step(*a)

        return wrapped

    monkeypatch.setattr(engine, "make_train_step", interrupting)
    with pytest.raises(TrainingInterrupted, match="--resume"):
        fit(model, system, config, run_dir=tmp_path, progress=False)
    monkeypatch.setattr(engine, "make_train_step", real)
    resumed = fit(model, system, config, run_dir=tmp_path, resume=True, progress=False)
    straight = fit(model, system, config, progress=False)
    for a, b in zip(leaves(straight.model), leaves(resumed.model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_train_config_is_rejected():
    model, system = make_problem()
    with pytest.raises(ValueError, match="frames_per_step"):
        fit(model, system, TrainConfig(steps=2, frames_per_step=9), progress=False)
    with pytest.raises(ValueError, match="anneal_fraction"):
        fit(model, system, TrainConfig(steps=2, anneal_fraction=1.5), progress=False)


def test_progress_bar_says_compiling_before_the_first_step(capsys):
    model, system = make_problem()
    fit(model, system, TrainConfig(steps=3), progress=True)
    frames = capsys.readouterr().err.strip().split("\r")  # the bar's successive states
    assert any(f.startswith("compiling") and "0/3" in f for f in frames)
    assert "3/3" in frames[-1] and "compiling" not in frames[-1]


def test_checkpoint_of_another_format_is_refused_clearly(tmp_path):
    model, system = make_problem()
    fit(model, system, TrainConfig(steps=2), run_dir=tmp_path, progress=False)
    path = tmp_path / "checkpoint.eqx"
    header, _, rest = path.read_bytes().partition(b"\n")
    old = json.loads(header) | {"format": FORMAT_VERSION - 1}  # as an earlier version wrote
    path.write_bytes(json.dumps(old).encode() + b"\n" + rest)
    with pytest.raises(ValueError, match=f"format {FORMAT_VERSION - 1} cannot be resumed"):
        fit(model, system, TrainConfig(steps=4), run_dir=tmp_path, resume=True, progress=False)


def test_step_compiled_ahead_with_compiler_options_matches_first_call_compile():
    # Benchmarks compile the step ahead with XLA options to compare them in one process; with
    # options that change nothing numerically it must give the first-call compile's result.
    model, system = make_problem()
    results = []
    for options in (None, {"xla_cpu_enable_fast_math": False}):
        step, opt_state, key = make_fit_step(model, system, TrainConfig(steps=5))
        params = initial_params(model, system, TrainConfig(steps=5))
        args = (params, opt_state, system, jnp.asarray(1, jnp.int32), key)
        if options is not None:
            step.compile(*args, compiler_options=options)
        results.append(step(*args)[2]["loss"])
    assert float(results[0]) == float(results[1])
    with pytest.raises(Exception, match="no_such_option"):
        step.compile(*args, compiler_options={"no_such_option": True})


@pytest.fixture
def without_persistent_cache():
    # A program loaded from the suite's persistent cache keeps the operation names of the run
    # that compiled it: the cache key leaves them out.
    enabled = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    yield
    jax.config.update("jax_enable_compilation_cache", enabled)


def test_compiled_step_names_its_components_for_profiles(without_persistent_cache):
    # benchmarks/profile_step.py --trace groups the step's operations by these scopes.
    model, system = make_problem()
    step, opt_state, key = make_fit_step(model, system, TrainConfig(steps=5))
    assert step.as_text() is None  # not compiled yet
    params = initial_params(model, system, TrainConfig(steps=5))
    step.compile(params, opt_state, system, jnp.asarray(1, jnp.int32), key)
    op_names = " ".join(re.findall(r'op_name="([^"]*)"', step.as_text()))
    for scope in ("motion", "scene", "system", "optimizer", "_encode", "_forward"):
        assert re.search(rf"\b{scope}\b", op_names), scope


@pytest.mark.parametrize(
    ("frames", "devices", "expected"),
    [(4, "ab", "ab"), (4, "abcd", "abcd"), (6, "abcd", "abc"), (3, "ab", "a"), (5, "abcd", "a")],
)
def test_data_parallel_devices_give_every_device_the_same_share(frames, devices, expected):
    assert data_parallel_devices(frames, list(devices)) == list(expected)


def test_the_suite_has_two_cpu_devices():
    # conftest makes them, as the nstm command does on two cores; the tests below need them.
    assert len(jax.devices("cpu")) >= 2
    assert len(data_parallel_devices(4)) == 2


@pytest.mark.parametrize(
    ("frames_per_step", "chunk_points", "divide"),
    [(4, None, False), (2, None, False), (4, 100, False), (4, None, True), (2, None, True)],
)
def test_step_split_across_devices_matches_one_device(frames_per_step, chunk_points, divide):
    """Split across two devices, with every array on both or the measurements' rows divided
    between them, a step computes what one device computes (for a full batch; a partial one
    draws its measurements per device when divided, so the draws differ and only the loss
    scale is compared)."""
    model, system = make_problem(frames=4)
    config = TrainConfig(steps=10, frames_per_step=frames_per_step, scene_lr=2e-2)
    params = initial_params(model, system, config)
    optimizer = make_optimizer(config)
    results = []
    for devices in (jax.devices("cpu")[:1], jax.devices("cpu")[:2]):
        split = divide and len(devices) > 1
        mask = _field_mask(system, ("frames", "times") if split else ())
        step = make_train_step(
            optimizer,
            num_measurements=4,
            frames_per_step=frames_per_step,
            anneal_steps=5,
            chunk_points=chunk_points,
            devices=devices,
            system_split=mask,
        )
        mesh = jax.sharding.Mesh(np.asarray(devices), ("batch",))
        whole = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
        state = jax.device_put((params, optimizer.init(eqx.filter(params, eqx.is_array))), whole)
        sys_ = eqx.tree_at(
            lambda s: (s.frames, s.times),
            system,
            tuple(
                jax.device_put(x, rows if split else whole) for x in (system.frames, system.times)
            ),
        )
        if split:  # each device holds two of the four frames
            assert {s.data.shape for s in sys_.frames.addressable_shards} == {(2, 16, 16)}
        p, opt_state = state
        losses = []
        for i in range(3):
            p, opt_state, stats = step(p, opt_state, sys_, jnp.asarray(i), jax.random.key(1))
            losses.append(float(stats["loss"]))
        results.append((losses, leaves(p[0]), stats))
    (one_losses, one_params, one_stats), (two_losses, two_params, two_stats) = results
    if divide and frames_per_step < 4:
        np.testing.assert_allclose(two_losses[0], one_losses[0], rtol=0.5)
        return
    np.testing.assert_allclose(two_losses, one_losses, rtol=1e-5)
    for key in ("data", "reg"):
        np.testing.assert_allclose(float(two_stats[key]), float(one_stats[key]), rtol=1e-5)
    for a, b in zip(one_params, two_params, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_fit_divides_the_measurements_rows_and_trains_on_partial_batches():
    """fit divides a system's per-measurement arrays between the two devices (each holds two of
    the four frames) and, drawing one frame per device per step, still fits all four."""
    model, system = make_problem(frames=4)
    config = TrainConfig(steps=60, frames_per_step=2, scene_lr=2e-2, log_every=60)
    train_step, opt_state, key = make_fit_step(model, system, config)
    placed = train_step.place((initial_params(model, system, config), opt_state, system))
    assert {s.data.shape for s in placed[2].frames.addressable_shards} == {(2, 16, 16)}
    result = fit(model, system, config, progress=False)
    rendered = np.asarray(result.model.render(system.times, alpha=1.0))[..., 0]
    errors = np.mean((rendered - np.asarray(system.frames)) ** 2, axis=(1, 2))
    assert np.all(errors < 0.1 * np.mean(np.asarray(system.frames) ** 2)), errors


def test_split_step_needs_a_batch_the_devices_divide():
    model, _ = make_problem()
    with pytest.raises(ValueError, match="multiple of the number of devices"):
        make_train_step(
            make_optimizer(TrainConfig()),
            num_measurements=4,
            frames_per_step=3,
            anneal_steps=5,
            devices=jax.devices("cpu")[:2],
        )


def test_fit_splits_steps_and_returns_the_model_on_one_device():
    model, system = make_problem()
    train_step, opt_state, _ = make_fit_step(model, system, TrainConfig(steps=3))
    assert len(train_step.devices) == 2
    params = initial_params(model, system, TrainConfig(steps=3))
    placed = train_step.place((params, opt_state, system))
    for x in jax.tree_util.tree_leaves(eqx.filter(placed, eqx.is_array)):
        assert len(x.devices()) == 2
    # Placing what is already placed (every step's arguments) passes the arrays through.
    again = train_step.place(placed)
    for a, b in zip(
        jax.tree_util.tree_leaves(placed), jax.tree_util.tree_leaves(again), strict=True
    ):
        assert a is b
    result = fit(model, system, TrainConfig(steps=3), progress=False)
    for x in jax.tree_util.tree_leaves(eqx.filter(result.model, eqx.is_array)):
        assert len(x.devices()) == 1
