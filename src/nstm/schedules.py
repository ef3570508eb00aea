"""Schedules as pure functions of the optimizer step (the optax way).

The coarse-to-fine annealing parameter ``alpha`` is a schedule like the learning rate: the
engine evaluates it at the step and passes it to the model, so the motion and scene networks
always see the same ``alpha`` and nothing is mutated.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import optax
from jaxtyping import Array, ArrayLike, Float


def coarse_to_fine(anneal_steps: int) -> Callable[[ArrayLike], Float[Array, ""]]:
    """``alpha(step) = step / anneal_steps``, clipped to [0, 1].

    The encodings open their levels as ``alpha`` goes from 0 (coarsest level only) to 1 (all
    levels, see :func:`nstm.encodings.coarse_to_fine_window`).

    Parameters
    ----------
    anneal_steps : int
        Step at which every level is fully open; 0 disables annealing (``alpha = 1``).
    """
    if anneal_steps < 0:
        raise ValueError(f"anneal_steps must be >= 0, got {anneal_steps}")

    def schedule(step: ArrayLike) -> Float[Array, ""]:
        if anneal_steps == 0:
            return jnp.ones((), jnp.float32)
        return jnp.clip(jnp.asarray(step, jnp.float32) / anneal_steps, 0.0, 1.0)

    return schedule


def exponential_decay(init_value: float, steps: int, final_fraction: float) -> optax.Schedule:
    """Learning rate decaying continuously from ``init_value`` to ``final_fraction * init_value``
    over ``steps`` steps, ``lr(s) = init_value * final_fraction ** (s / steps)``, then constant
    (training past the schedule keeps the final rate)."""
    if init_value < 0:
        raise ValueError(f"learning rate must be >= 0, got {init_value}")
    if not 0 < final_fraction <= 1:
        raise ValueError(f"final_lr_fraction must be in (0, 1], got {final_fraction}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return optax.exponential_decay(
        init_value,
        transition_steps=steps,
        decay_rate=final_fraction,
        end_value=init_value * final_fraction if final_fraction < 1 else None,
    )
