import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstm.model import mlp as mlp_module
from nstm.model.mlp import MLP

ACTIVATIONS = ["relu", "gelu", "elu", "silu", "tanh"]


def numpy_forward(mlp, x):
    acts = {
        "relu": lambda z: np.maximum(z, 0),
        "tanh": np.tanh,
        "silu": lambda z: z / (1 + np.exp(-z)),
        "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
        "gelu": lambda z: 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3))),
    }
    x = np.asarray(x, np.float64)
    weights = [np.asarray(w, np.float64) for w in mlp.weights]
    biases = [np.asarray(b, np.float64) for b in mlp.biases]
    for w, b in zip(weights[:-1], biases[:-1], strict=True):
        x = acts[mlp.activation](x @ w + b)
    return x @ weights[-1] + biases[-1]


def test_shapes_and_init():
    mlp = MLP(5, 3, width=16, depth=2, key=jax.random.key(0))
    assert [w.shape for w in mlp.weights] == [(5, 16), (16, 16), (16, 3)]
    assert [b.shape for b in mlp.biases] == [(16,), (16,), (3,)]
    assert all(w.dtype == jnp.float32 for w in mlp.weights + mlp.biases)
    assert all(np.all(np.asarray(b) == 0) for b in mlp.biases)
    for w in map(np.asarray, mlp.weights):
        limit = np.sqrt(6 / sum(w.shape))  # Glorot uniform: U[-limit, limit]
        assert np.abs(w).max() <= limit and w.std() > limit / 4
    assert (mlp.in_size, mlp.out_size, mlp.depth, mlp.activation) == (5, 3, 2, "gelu")
    assert mlp(jnp.zeros((2, 7, 5))).shape == (2, 7, 3)
    assert mlp(jnp.zeros(5)).shape == (3,)

    linear = MLP(5, 3, depth=0, key=jax.random.key(0))
    assert [w.shape for w in linear.weights] == [(5, 3)]
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    np.testing.assert_allclose(linear(x), x @ np.asarray(linear.weights[0]), rtol=1e-5, atol=1e-6)


@pytest.fixture(autouse=True)
def _float32_matmuls():
    # These tests compare against float32 references; GPUs multiply float32 matrices in TF32
    # (a 10-bit mantissa) unless asked for full precision.
    with jax.default_matmul_precision("highest"):
        yield


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_matches_numpy_forward(activation):
    mlp = MLP(5, 3, width=16, depth=2, activation=activation, key=jax.random.key(1))
    # Random biases so that the bias path is exercised too.
    rng = np.random.default_rng(2)
    biases = tuple(jnp.asarray(rng.normal(size=b.shape), jnp.float32) for b in mlp.biases)
    mlp = eqx.tree_at(lambda m: m.biases, mlp, biases)
    x = rng.normal(size=(10, 5)).astype(np.float32)
    np.testing.assert_allclose(mlp(x), numpy_forward(mlp, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize(("out_size", "depth", "points"), [(2, 2, 40), (7, 1, 40), (3, 0, 41)])
def test_gradients_match_autodiff(activation, out_size, depth, points, monkeypatch):
    # The hand-written backward (hidden layers recomputed, thin output layers reduced, blocks
    # of 16 points with the last one padded) against JAX autodiff of the plain network.
    monkeypatch.setattr(mlp_module, "BLOCK_POINTS", 16)
    monkeypatch.setattr(mlp_module, "ACCELERATOR_BLOCK_POINTS", 16)
    rng = np.random.default_rng(3)
    mlp = MLP(5, out_size, width=16, depth=depth, activation=activation, key=jax.random.key(4))
    biases = tuple(jnp.asarray(rng.normal(size=b.shape), jnp.float32) for b in mlp.biases)
    mlp = eqx.tree_at(lambda m: m.biases, mlp, biases)
    x = jnp.asarray(rng.normal(size=(2, points, 5)), jnp.float32)
    cotangent = jnp.asarray(rng.normal(size=(2, points, out_size)), jnp.float32)
    act = {
        "relu": jax.nn.relu,
        "gelu": lambda z: jax.nn.gelu(z, approximate=True),
        "elu": jax.nn.elu,
        "silu": jax.nn.silu,
        "tanh": jnp.tanh,
    }[activation]

    def plain(m, x):
        for w, b in zip(m.weights[:-1], m.biases[:-1], strict=True):
            x = act(x @ w + b)
        return x @ m.weights[-1] + m.biases[-1]

    def loss(fn):
        return lambda m, x: jnp.sum(fn(m, x) * cotangent)

    got = eqx.filter_jit(eqx.filter_grad(loss(lambda m, x: m(x))))(mlp, x)
    expected = eqx.filter_grad(loss(plain))(mlp, x)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    got_x = jax.jit(jax.grad(loss(lambda m, x: m(x)), argnums=1))(mlp, x)
    expected_x = jax.grad(loss(plain), argnums=1)(mlp, x)
    np.testing.assert_allclose(got_x, expected_x, rtol=1e-4, atol=1e-5)


def test_backward_keeps_only_the_input_and_parameters():
    # What the forward pass keeps for the backward is its memory per point: only the (narrow)
    # input, not the 64-wide hidden activations autodiff would keep.
    mlp = MLP(4, 2, width=64, depth=2, key=jax.random.key(0))
    x = jnp.ones((1000, 4))
    _, pullback = jax.vjp(lambda m, x: m(x), mlp, x)
    kept = sum(leaf.nbytes for leaf in jax.tree.leaves(pullback) if eqx.is_array(leaf))
    parameters = sum(leaf.nbytes for leaf in jax.tree.leaves(eqx.filter(mlp, eqx.is_array)))
    assert kept <= x.nbytes + parameters + 1024


def test_zero_init_output():
    mlp = MLP(5, 3, width=16, depth=2, zero_init_output=True, key=jax.random.key(0))
    x = jnp.asarray(np.random.default_rng(1).normal(size=(32, 5)), jnp.float32)
    assert np.all(np.asarray(mlp(x)) == 0)
    assert np.all(np.asarray(mlp.weights[-1]) == 0) and np.all(np.asarray(mlp.biases[-1]) == 0)
    grads = eqx.filter_jit(jax.grad(lambda m: jnp.sum(m(x) * jnp.arange(1.0, 4.0))))(mlp)
    assert np.any(np.asarray(grads.weights[-1]) != 0)
    np.testing.assert_allclose(grads.biases[-1], [32.0, 64.0, 96.0])
    # Gradients cannot reach the hidden layers through a zero output layer.
    assert np.all(np.asarray(grads.weights[0]) == 0)


def test_batch_equals_vmap():
    mlp = MLP(5, 3, width=16, depth=2, activation="silu", key=jax.random.key(3))
    x = jnp.asarray(np.random.default_rng(4).normal(size=(6, 7, 5)), jnp.float32)
    batched = mlp(x)
    vmapped = eqx.filter_jit(jax.vmap(jax.vmap(mlp)))(x)
    np.testing.assert_allclose(vmapped, batched, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(eqx.filter_jit(lambda m, x: m(x))(mlp, x), batched, atol=1e-6)


def test_errors():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="activation must be one of"):
        MLP(2, 2, activation="swish", key=key)
    with pytest.raises(ValueError, match="depth must be an integer >= 0, got -1"):
        MLP(2, 2, depth=-1, key=key)
    with pytest.raises(ValueError, match="width must be an integer >= 1, got 0"):
        MLP(2, 2, width=0, key=key)
    with pytest.raises(ValueError, match="in_size must be an integer >= 1, got 2.5"):
        MLP(2.5, 2, key=key)
    mlp = MLP(5, 3, width=16, depth=2, key=key)
    with pytest.raises(ValueError, match=r"x must have shape \(\*batch, 5\), got shape \(7, 4\)"):
        mlp(jnp.zeros((7, 4)))
    with pytest.raises(ValueError, match="x must have shape"):
        mlp(jnp.float32(1.0))


def test_blocks_are_smaller_inside_a_computation_split_across_devices(monkeypatch):
    if jax.default_backend() != "cpu":
        pytest.skip("the split block size is a CPU setting")
    monkeypatch.setattr(mlp_module, "BLOCK_POINTS", 64)
    monkeypatch.setattr(mlp_module, "SPLIT_BLOCK_POINTS", 16)
    assert mlp_module._block_size(1024) == 64
    seen = []

    def body(x):
        seen.append(mlp_module._block_size(1024))
        return x

    devices = jax.devices("cpu")[:2]
    mesh = jax.sharding.Mesh(np.asarray(devices), ("batch",))
    spec = jax.sharding.PartitionSpec("batch")
    jax.jit(jax.shard_map(body, mesh=mesh, in_specs=spec, out_specs=spec))(jnp.ones(len(devices)))
    assert seen == [16]
