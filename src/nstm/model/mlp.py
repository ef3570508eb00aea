"""Small fully connected network applied to whole batches of points at once."""

# jaxtyping shape strings are not Python expressions.
# ruff: noqa: F722

from __future__ import annotations

import functools
import operator
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .. import host_random
from ..config import Activation

__all__ = ["MLP", "Activation"]


_ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": jax.nn.relu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=True),
    "elu": jax.nn.elu,
    "silu": jax.nn.silu,
    "tanh": jnp.tanh,
}


def _is_int(value: object) -> bool:
    try:
        operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return False
    return not isinstance(value, bool)


def _init_params(
    key: PRNGKeyArray, sizes: tuple[int, ...], zero_init_output: bool
) -> tuple[tuple[Float[Array, "fan_in fan_out"], ...], tuple[Float[Array, " fan_out"], ...]]:
    """Glorot-uniform weights (zero for the output layer if asked) and zero biases."""
    shapes = list(zip(sizes[:-1], sizes[1:], strict=True))
    keys = host_random.split(key, len(shapes))
    limits = [(6.0 / sum(shape)) ** 0.5 for shape in shapes]
    weights = [
        host_random.uniform(k, shape, -limit, limit)
        for k, shape, limit in zip(keys, shapes, limits, strict=True)
    ]
    if zero_init_output:
        weights[-1] = jax.device_put(np.zeros(shapes[-1], np.float32))
    biases = tuple(jax.device_put(np.zeros((n,), np.float32)) for n in sizes[1:])
    return tuple(weights), biases


# Jitted so that eager calls compile once; inside a caller's jit it is inlined.
@functools.partial(jax.jit, static_argnums=3)
def _forward(
    weights: tuple[Float[Array, "fan_in fan_out"], ...],
    biases: tuple[Float[Array, " fan_out"], ...],
    x: Float[Array, "*batch in_size"],
    activation: str,
) -> Float[Array, "*batch out_size"]:
    batch = x.shape[:-1]
    y = _mlp(activation, weights, biases, x.reshape(-1, x.shape[-1]))
    return y.reshape(*batch, y.shape[-1])


#: Points per block of the MLP's training loops (forward and backward) on CPU: a block's
#: ``(block, width)`` temporaries (1 MB at width 128) stay in a core's L2 cache; only the
#: input, output and their gradients are full size. Smaller blocks cost more when XLA:CPU
#: splits each operation across the cores and joins them after it (figures: "Design figures
#: cited by the code" in benchmarks/README.md).
BLOCK_POINTS = 2048
#: The same inside a computation split across CPU devices (a ``shard_map``, as the training
#: engine's step with a device per core), where the devices' operations run side by side and
#: the joins cost less, so smaller blocks (and smaller temporaries) cost nothing there.
SPLIT_BLOCK_POINTS = 512
#: The same on accelerators, whose thousands of threads need large blocks to be kept busy: the
#: blocks only bound the temporaries' memory there (about 0.5 GB per 128-wide layer).
ACCELERATOR_BLOCK_POINTS = 1 << 20

_GELU_C = float(np.sqrt(2.0 / np.pi))
_GELU_K = 0.044715


def _value_and_slope(activation: str, pre: Array) -> tuple[Array, Array]:
    """``act(pre)`` and ``act'(pre)``, sharing their transcendental where it is written out."""
    if activation == "gelu":  # the tanh approximation; one tanh for both
        t = jnp.tanh(_GELU_C * (pre + _GELU_K * pre**3))
        half = 0.5 * (1.0 + t)
        slope = half + 0.5 * pre * (1.0 - t * t) * _GELU_C * (1.0 + 3.0 * _GELU_K * pre * pre)
        return pre * half, slope
    return jax.jvp(_ACTIVATIONS[activation], (pre,), (jnp.ones_like(pre),))


def _block_size(num_points: int) -> int:
    """Points per block: :data:`BLOCK_POINTS` on CPU (:data:`SPLIT_BLOCK_POINTS` when traced
    inside a computation split across devices, :data:`ACCELERATOR_BLOCK_POINTS` on the default
    backend otherwise), or a divisor of ``num_points`` down to half of it (no padding: padding
    copies every block input)."""
    if jax.default_backend() != "cpu":
        target = ACCELERATOR_BLOCK_POINTS
    elif jax.sharding.get_abstract_mesh().manual_axes:
        target = SPLIT_BLOCK_POINTS
    else:
        target = BLOCK_POINTS
    if num_points <= target:
        return max(num_points, 1)
    for block in range(target, target // 2 - 1, -1):
        if num_points % block == 0:
            return block
    return target


def _blocks(x: Array, block: int) -> Array:
    """``(P, ...)`` -> ``(ceil(P / block), block, ...)``, zero-padded at the end."""
    pad = -x.shape[0] % block
    if pad:
        x = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)])
    return x.reshape(-1, block, *x.shape[1:])


def _apply(activation: str, weights, biases, x):
    """The network's output."""
    act = _ACTIVATIONS[activation]
    h = x
    for w, b in zip(weights[:-1], biases[:-1], strict=True):
        h = act(h @ w + b)
    return h @ weights[-1] + biases[-1]


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _mlp(
    activation: str,
    weights: tuple[Float[Array, "fan_in fan_out"], ...],
    biases: tuple[Float[Array, " fan_out"], ...],
    x: Float[Array, "points in_size"],
) -> Float[Array, "points out_size"]:
    """The MLP over a flat batch of points.

    A custom VJP, for memory and time at 10^5-10^6 points:

    * the forward keeps only the input (an encoding, a few floats per point): the backward
      recomputes every hidden layer's activation and slope. Autodiff keeps each hidden layer's
      activations (and GELU's inner tanh), 0.5 KB per point and 128-wide layer; recomputing
      one more 128 x 128 product per point costs no more than storing and reading those back,
      and the peak memory falls by about a third (benchmarks/README.md);
    * both passes loop over blocks of about :data:`BLOCK_POINTS` points on CPU (so their
      temporaries, activations, their slopes and gradients, stay in cache) or
      :data:`ACCELERATOR_BLOCK_POINTS` elsewhere; the backward accumulates the weight
      gradients across blocks. Without a gradient the network runs unblocked.
    """
    return _apply(activation, weights, biases, x)


def _mlp_fwd(activation, weights, biases, x):
    num_points = x.shape[0]
    y = jax.lax.map(
        lambda xb: _apply(activation, weights, biases, xb), _blocks(x, _block_size(num_points))
    )
    return y.reshape(-1, y.shape[-1])[:num_points], (weights, biases, x)


def _weight_grad(inputs: Float[Array, "P fan_in"], g: Float[Array, "P fan_out"]) -> Array:
    """``inputs.T @ g``. For a narrow ``g`` (the output layer) as a fused multiply-reduce, which
    XLA:CPU runs about 2x faster than a dot whose output is that thin."""
    if g.shape[-1] <= 4:
        return jnp.stack([jnp.sum(inputs * g[:, j : j + 1], axis=0) for j in range(g.shape[-1])], 1)
    return inputs.T @ g


def _block_grads(activation, weights, biases, x, g):
    """Weight, bias and input gradients of one block, its forward recomputed."""
    inputs, slopes = [x], []  # each layer's input; each hidden layer's activation slope
    for w, b in zip(weights[:-1], biases[:-1], strict=True):
        h, slope = _value_and_slope(activation, inputs[-1] @ w + b)
        inputs.append(h)
        slopes.append(slope)
    weight_grads, bias_grads = [], []
    for layer in range(len(weights) - 1, -1, -1):
        weight_grads.append(_weight_grad(inputs[layer], g))
        bias_grads.append(jnp.sum(g, axis=0))
        g = g @ weights[layer].T
        if layer > 0:
            g = g * slopes[layer - 1]
    return tuple(weight_grads[::-1]), tuple(bias_grads[::-1]), g


def _mlp_bwd(activation, residuals, g):
    weights, biases, x = residuals
    num_points = x.shape[0]
    block = _block_size(num_points)

    def step(totals, inputs):
        w_grads, b_grads, x_grad = _block_grads(activation, weights, biases, *inputs)
        return jax.tree.map(jnp.add, totals, (w_grads, b_grads)), x_grad

    zeros = (
        tuple(jnp.zeros_like(w) for w in weights),
        tuple(jnp.zeros((w.shape[1],), w.dtype) for w in weights),
    )
    (w_grads, b_grads), x_grad = jax.lax.scan(step, zeros, (_blocks(x, block), _blocks(g, block)))
    return w_grads, b_grads, x_grad.reshape(-1, x.shape[-1])[:num_points]


_mlp.defvjp(_mlp_fwd, _mlp_bwd)


class MLP(eqx.Module):
    """Multilayer perceptron over arbitrary leading batch dimensions.

    Unlike :class:`equinox.nn.MLP`, which maps one example and is vmapped, this
    applies each layer as a single ``x @ W + b`` over all points, the efficient
    form for the 10^5 to 10^6 points per step of NSTM training.

    Parameters
    ----------
    in_size : int
        Input feature size.
    out_size : int
        Output feature size.
    width : int, default 64
        Size of every hidden layer.
    depth : int, default 2
        Number of hidden layers; ``depth=0`` is a single linear layer.
    activation : {"relu", "gelu", "elu", "silu", "tanh"}, default "gelu"
        Hidden nonlinearity (``"gelu"`` is the tanh approximation). No activation
        follows the output layer.
    zero_init_output : bool, default False
        Initialize the output layer's weights and bias to zero, so the network
        initially outputs exactly zero (used for the motion network: zero initial
        displacement) while gradients w.r.t. the output layer are still non-zero.
    key : PRNGKeyArray
        Random key for the initialization.

    Attributes
    ----------
    weights : tuple of Float[Array, "fan_in fan_out"]
        Layer weights, ``depth + 1`` of them; hidden ones are Glorot-uniform.
    biases : tuple of Float[Array, "out"]
        Layer biases, initialized to zero.
    activation : str
        Name of the hidden nonlinearity.
    """

    weights: tuple[Float[Array, "fan_in fan_out"], ...]
    biases: tuple[Float[Array, " fan_out"], ...]
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        in_size: int,
        out_size: int,
        *,
        width: int = 64,
        depth: int = 2,
        activation: Activation = "gelu",
        zero_init_output: bool = False,
        key: PRNGKeyArray,
    ):
        for name, value, minimum in (
            ("in_size", in_size, 1),
            ("out_size", out_size, 1),
            ("width", width, 1),
            ("depth", depth, 0),
        ):
            if not _is_int(value) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}."
            )
        sizes = (in_size, *[width] * depth, out_size)
        self.weights, self.biases = _init_params(key, sizes, bool(zero_init_output))
        self.activation = activation

    @property
    def in_size(self) -> int:
        """Input feature size."""
        return self.weights[0].shape[0]

    @property
    def out_size(self) -> int:
        """Output feature size."""
        return self.weights[-1].shape[1]

    @property
    def depth(self) -> int:
        """Number of hidden layers."""
        return len(self.weights) - 1

    def __call__(self, x: Float[ArrayLike, "*batch in_size"]) -> Float[Array, "*batch out_size"]:
        """Apply the network to every point of a batch.

        Parameters
        ----------
        x : Float[ArrayLike, "*batch in_size"]
            Input features, any leading batch shape.

        Returns
        -------
        y : Float[Array, "*batch out_size"]
            Output features.
        """
        x = jnp.asarray(x)
        if x.ndim < 1 or x.shape[-1] != self.in_size:
            raise ValueError(f"x must have shape (*batch, {self.in_size}), got shape {x.shape}.")
        return _forward(self.weights, self.biases, x, self.activation)
