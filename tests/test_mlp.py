import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstm.model.mlp import MLP


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
    assert all(w.dtype == jnp.float32 for w in mlp.weights)
    assert all(np.all(np.asarray(b) == 0) for b in mlp.biases)
    for w in mlp.weights:
        fan_in, fan_out = w.shape
        limit = np.sqrt(6 / (fan_in + fan_out))
        assert np.abs(np.asarray(w)).max() <= limit and np.asarray(w).std() > limit / 4
    assert (mlp.in_size, mlp.out_size, mlp.depth) == (5, 3, 2)
    assert mlp(jnp.zeros((2, 7, 5))).shape == (2, 7, 3)
    assert mlp(jnp.zeros(5)).shape == (3,)

    linear = MLP(4, 2, depth=0, key=jax.random.key(0))
    assert [w.shape for w in linear.weights] == [(4, 2)]


@pytest.mark.parametrize("activation", ["relu", "gelu", "elu", "silu", "tanh"])
def test_matches_numpy_forward(activation):
    mlp = MLP(6, 4, width=8, depth=2, activation=activation, key=jax.random.key(1))
    # Random biases so that the bias path is exercised too.
    keys = jax.random.split(jax.random.key(2), 3)
    mlp = eqx.tree_at(
        lambda m: m.biases,
        mlp,
        tuple(jax.random.normal(k, b.shape) for k, b in zip(keys, mlp.biases, strict=True)),
    )
    x = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    np.testing.assert_allclose(mlp(x), numpy_forward(mlp, x), rtol=1e-5, atol=1e-5)


def test_zero_init_output():
    mlp = MLP(3, 2, width=8, depth=2, zero_init_output=True, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (32, 3))
    assert np.all(np.asarray(mlp(x)) == 0)
    assert np.all(np.asarray(mlp.weights[-1]) == 0) and np.all(np.asarray(mlp.biases[-1]) == 0)
    grads = jax.grad(lambda m: jnp.sum(m(x) * jnp.arange(1.0, 3.0)))(mlp)
    assert np.any(np.asarray(grads.weights[-1]) != 0)
    np.testing.assert_allclose(grads.biases[-1], [32.0, 64.0])
    # Gradients cannot reach the hidden layers through a zero output layer.
    assert np.all(np.asarray(grads.weights[0]) == 0)


def test_batch_equals_vmap():
    mlp = MLP(4, 3, width=8, depth=3, activation="silu", key=jax.random.key(3))
    x = jax.random.normal(jax.random.key(4), (5, 6, 4))
    np.testing.assert_allclose(mlp(x), jax.vmap(jax.vmap(mlp))(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(eqx.filter_jit(lambda m, x: m(x))(mlp, x), mlp(x), atol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="activation must be one of"):
        MLP(2, 2, activation="swish", key=jax.random.key(0))
    with pytest.raises(ValueError, match="depth must be an integer >= 0"):
        MLP(2, 2, depth=-1, key=jax.random.key(0))
    with pytest.raises(ValueError, match="width must be an integer >= 1"):
        MLP(2, 2, width=0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="in_size must be an integer >= 1"):
        MLP(2.5, 2, key=jax.random.key(0))
    mlp = MLP(3, 2, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"x must have shape \(\*batch, 3\), got shape \(7, 4\)"):
        mlp(jnp.zeros((7, 4)))
