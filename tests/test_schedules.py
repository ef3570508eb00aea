import jax
import numpy as np
import pytest

from nstm.schedules import coarse_to_fine, exponential_decay


def test_coarse_to_fine_is_step_over_anneal_steps_clipped():
    alpha = coarse_to_fine(100)
    assert [float(alpha(s)) for s in (0, 25, 100, 250)] == [0.0, 0.25, 1.0, 1.0]
    assert float(jax.jit(alpha)(50)) == 0.5
    assert float(coarse_to_fine(0)(0)) == 1.0  # annealing disabled


def test_exponential_decay_reaches_final_fraction():
    lr = exponential_decay(1e-2, 200, 0.1)
    np.testing.assert_allclose([lr(0), lr(100), lr(200)], [1e-2, 1e-2 * 0.1**0.5, 1e-3], rtol=1e-5)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(init_value=-1.0), "learning rate must be >= 0, got -1.0"),
        (dict(final_fraction=0.0), r"final_lr_fraction must be in \(0, 1\], got 0.0"),
        (dict(final_fraction=1.5), r"final_lr_fraction must be in \(0, 1\], got 1.5"),
        (dict(steps=0), "steps must be >= 1, got 0"),
    ],
)
def test_exponential_decay_rejects_bad_values(kw, match):
    args = dict(init_value=1e-3, steps=10, final_fraction=0.1) | kw
    with pytest.raises(ValueError, match=match):
        exponential_decay(**args)


def test_coarse_to_fine_rejects_negative_anneal_steps():
    with pytest.raises(ValueError, match="anneal_steps must be >= 0, got -1"):
        coarse_to_fine(-1)
