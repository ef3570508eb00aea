"""Initial parameters drawn on the host: reproducible, independent, and usable under jit."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstm import host_random
from nstm.model import MLP


@pytest.mark.parametrize("make_key", [jax.random.key, jax.random.PRNGKey])
def test_same_key_same_numbers_and_split_keys_are_independent(make_key):
    key = make_key(7)
    a = np.asarray(host_random.uniform(key, (1000,), -2.0, 3.0))
    np.testing.assert_array_equal(a, np.asarray(host_random.uniform(make_key(7), (1000,), -2, 3)))
    assert a.dtype == np.float32 and a.min() >= -2.0 and a.max() < 3.0
    assert abs(a.mean() - 0.5) < 0.15  # uniform on [-2, 3): mean 0.5, sd 1.44 / sqrt(1000)

    keys = host_random.split(key, 3)
    assert all(k.dtype == key.dtype and k.shape == key.shape for k in keys)
    draws = [np.asarray(host_random.uniform(k, (1000,))) for k in keys]
    for i in range(3):
        assert not np.array_equal(draws[i], a)
        for j in range(i):
            assert abs(np.corrcoef(draws[i], draws[j])[0, 1]) < 0.15


def test_traced_keys_fall_back_to_jax_random():
    # Building a module inside a transformation still works (with jax.random's numbers).
    @eqx.filter_jit
    def build(key):
        return MLP(3, 2, width=8, depth=1, key=key)

    key = jax.random.key(0)
    mlp = build(key)
    limit = (6.0 / (3 + 8)) ** 0.5
    assert mlp.weights[0].shape == (3, 8)
    # jax.random's own numbers: the key split as jax.random splits it, then its uniform draw.
    first = jax.random.split(key, 2)[0]
    expected = jax.random.uniform(first, (3, 8), jnp.float32, -limit, limit)
    np.testing.assert_allclose(mlp.weights[0], expected, rtol=1e-6)
    # Outside the transformation the same key draws the host's (other) numbers.
    eager = MLP(3, 2, width=8, depth=1, key=key)
    assert not np.allclose(eager.weights[0], mlp.weights[0])
    np.testing.assert_array_equal(MLP(3, 2, width=8, depth=1, key=key).weights[0], eager.weights[0])
