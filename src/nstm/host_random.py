"""Initial parameters drawn on the host, with NumPy, from JAX keys.

A model is initialized once, but drawing its parameters with JAX compiles a random-number
program first, which takes longer than drawing the numbers. These helpers take the usual JAX
keys (so modules keep Equinox's ``key=`` convention) and draw with a NumPy generator seeded by
the key's data, compiling nothing.

The same key always gives the same parameters. Inside a JAX transformation (a traced key)
they fall back to :mod:`jax.random`, which gives different (equally distributed) numbers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

__all__ = ["split", "uniform"]


def _key_data(key: PRNGKeyArray) -> np.ndarray:
    """The key's raw ``uint32`` data (typed keys and legacy ``uint32[2]`` keys alike)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.asarray(key, dtype=np.uint32)


def _generator(data: np.ndarray) -> np.random.Generator:
    """A NumPy generator seeded by a key's raw data."""
    return np.random.default_rng(data.ravel())


def _traced(key: PRNGKeyArray) -> bool:
    return isinstance(key, jax.core.Tracer)


def split(key: PRNGKeyArray, num: int) -> list[PRNGKeyArray]:
    """``num`` independent keys derived from ``key``, of the same kind as ``key``."""
    if _traced(key):
        return list(jax.random.split(key, num))
    data = _key_data(key)
    new = _generator(data).integers(0, 2**32, size=(num, *data.shape), dtype=np.uint32)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        impl = jax.random.key_impl(key)
        return [jax.random.wrap_key_data(d, impl=impl) for d in new]
    return [jax.device_put(d) for d in new]


def uniform(
    key: PRNGKeyArray, shape: tuple[int, ...], low: float = 0.0, high: float = 1.0
) -> Array:
    """Float32 samples uniform in ``[low, high)``, of shape ``shape``."""
    if _traced(key):
        return jax.random.uniform(key, shape, jnp.float32, low, high)
    # device_put, not jnp.asarray: the latter compiles a small program per shape.
    return jax.device_put(_generator(_key_data(key)).uniform(low, high, shape).astype(np.float32))
