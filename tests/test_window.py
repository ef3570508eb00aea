import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstm.encodings import coarse_to_fine_window


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [
        (0.0, [1.0, 0.0, 0.0, 0.0]),
        (1.0 / 6.0, [1.0, 0.5, 0.0, 0.0]),
        (1.0 / 3.0, [1.0, 1.0, 0.0, 0.0]),
        (0.5, [1.0, 1.0, 0.5, 0.0]),
        (2.0 / 3.0, [1.0, 1.0, 1.0, 0.0]),
        (1.0, [1.0, 1.0, 1.0, 1.0]),
    ],
)
def test_exact_values(alpha, expected):
    window = coarse_to_fine_window(alpha, 4)
    assert window.shape == (4,)
    assert window.dtype == jnp.float32
    np.testing.assert_allclose(window, expected, atol=1e-6)


def test_cosine_ramp_shape():
    # Level 1 of L=2 follows 0.5 * (1 - cos(pi * alpha)) over the whole schedule.
    alphas = np.linspace(0.0, 1.0, 11)
    got = np.array([coarse_to_fine_window(a, 2)[1] for a in alphas])
    np.testing.assert_allclose(got, 0.5 * (1 - np.cos(np.pi * alphas)), atol=1e-6)


@pytest.mark.parametrize("alpha", [-1.0, -1e-3, 0.0])
def test_level_zero_always_on(alpha):
    np.testing.assert_array_equal(coarse_to_fine_window(alpha, 5), [1, 0, 0, 0, 0])


@pytest.mark.parametrize("alpha", [1.0, 1.5, 100.0, None])
def test_identity_when_open(alpha):
    np.testing.assert_array_equal(coarse_to_fine_window(alpha, 6), np.ones(6))


def test_single_level():
    for alpha in (-1.0, 0.0, 0.3, 1.0, None):
        np.testing.assert_array_equal(coarse_to_fine_window(alpha, 1), [1.0])


def test_monotone_in_alpha():
    windows = np.stack([coarse_to_fine_window(a, 7) for a in np.linspace(-0.2, 1.2, 101)])
    assert np.all(np.diff(windows, axis=0) >= 0)
    assert np.all((windows >= 0) & (windows <= 1))
    # Coarser levels are never less open than finer ones.
    assert np.all(np.diff(windows, axis=1) <= 0)


def test_jit_with_traced_alpha():
    fn = jax.jit(coarse_to_fine_window, static_argnums=1)
    for alpha in (0.0, 1.0 / 6.0, 0.5, 1.0):
        np.testing.assert_allclose(
            fn(jnp.float32(alpha), 4), coarse_to_fine_window(alpha, 4), atol=1e-7
        )


def test_differentiable_in_alpha():
    grad = jax.grad(lambda a: coarse_to_fine_window(a, 4).sum())(0.5)
    # d/dalpha of 0.5 * (1 - cos(pi * (3 alpha - 1))) at alpha = 0.5 is 1.5 * pi.
    np.testing.assert_allclose(grad, 1.5 * np.pi, rtol=1e-5)


def test_errors():
    with pytest.raises(ValueError, match="num_levels must be an integer >= 1, got 0"):
        coarse_to_fine_window(0.5, 0)
    with pytest.raises(ValueError, match="num_levels must be an integer >= 1, got 2.0"):
        coarse_to_fine_window(0.5, 2.0)
    with pytest.raises(ValueError, match="alpha must be a scalar"):
        coarse_to_fine_window(jnp.ones(3), 4)
