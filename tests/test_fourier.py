import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstm.encodings import FourierFeatureEncoding, coarse_to_fine_window


@eqx.filter_jit
def _encode(enc, coords, alpha):
    return enc(coords, alpha=alpha)


def encode(enc, coords, alpha=None):
    return _encode(enc, coords, None if alpha is None else jnp.float32(alpha))


def test_known_values():
    enc = FourierFeatureEncoding((0.0, -2.0), (4.0, 2.0), num_levels=2)
    assert enc.output_size == 2 * 2 * 2 and enc.num_levels == 2 and enc.ndim == 2
    # (1, 1) -> u = (-0.5, 0.5).
    out = np.asarray(encode(enc, jnp.array([1.0, 1.0])))
    s, c = np.sin(np.pi / 2), np.cos(np.pi / 2)
    expected = [-s, c, s, c, np.sin(-np.pi), np.cos(-np.pi), np.sin(np.pi), np.cos(np.pi)]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_matches_formula_with_input():
    enc = FourierFeatureEncoding(
        (-1.0, 0.0, 2.0), (1.0, 10.0, 3.0), num_levels=4, include_input=True
    )
    assert enc.output_size == 3 + 4 * 2 * 3
    rng = np.random.default_rng(0)
    coords = rng.uniform(enc.bbox_min, enc.bbox_max, size=(5, 6, 3)).astype(np.float32)
    out = np.asarray(encode(enc, coords))
    assert out.shape == (5, 6, enc.output_size) and out.dtype == np.float32

    u = 2 * (coords - np.array(enc.bbox_min)) / np.subtract(enc.bbox_max, enc.bbox_min) - 1
    np.testing.assert_allclose(out[..., :3], u, atol=1e-6)
    bands = out[..., 3:].reshape(5, 6, 4, 3, 2)  # (..., level, axis, sin/cos)
    for k in range(4):
        phase = 2.0**k * np.pi * u
        np.testing.assert_allclose(bands[..., k, :, 0], np.sin(phase), atol=1e-5)
        np.testing.assert_allclose(bands[..., k, :, 1], np.cos(phase), atol=1e-5)


def test_window_per_band_and_input_always_on():
    enc = FourierFeatureEncoding((0.0, 0.0), (1.0, 1.0), num_levels=3, include_input=True)
    coords = np.random.default_rng(1).uniform(size=(20, 2)).astype(np.float32)
    raw = encode(enc, coords)
    closed = np.asarray(encode(enc, coords, 0.0))
    np.testing.assert_array_equal(closed[:, :6], raw[:, :6])  # input + band 0
    assert np.all(closed[:, 6:] == 0)
    np.testing.assert_array_equal(encode(enc, coords, 1.0), raw)
    window = np.concatenate([np.ones(2), np.repeat(coarse_to_fine_window(0.75, 3), 4)])
    np.testing.assert_allclose(encode(enc, coords, 0.75), raw * window, rtol=1e-6)


def test_clamping():
    enc = FourierFeatureEncoding((0.0, 0.0), (1.0, 2.0), num_levels=3, include_input=True)
    coords = np.array([[-1.0, 0.5], [0.5, 3.0], [2.0, -4.0]], np.float32)
    clamped = np.clip(coords, enc.bbox_min, enc.bbox_max)
    np.testing.assert_array_equal(encode(enc, coords), encode(enc, clamped))
    np.testing.assert_allclose(encode(enc, coords)[:, :2], [[-1, -0.5], [0, 1], [1, -1]])


def test_vmap_and_eager_match():
    enc = FourierFeatureEncoding((0.0,), (1.0,), num_levels=5)
    coords = jnp.linspace(-0.2, 1.2, 17)[:, None]
    batched = encode(enc, coords, 0.5)
    np.testing.assert_allclose(jax.vmap(lambda x: enc(x, alpha=0.5))(coords), batched, atol=1e-6)
    np.testing.assert_allclose(enc(coords, alpha=0.5), batched, atol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="same length"):
        FourierFeatureEncoding((0.0, 0.0), (1.0,))
    with pytest.raises(ValueError, match="bbox_max must be > bbox_min"):
        FourierFeatureEncoding((0.0,), (0.0,))
    with pytest.raises(ValueError, match="num_levels must be an integer >= 1, got 0"):
        FourierFeatureEncoding((0.0,), (1.0,), num_levels=0)
    enc = FourierFeatureEncoding((0.0, 0.0), (1.0, 1.0))
    with pytest.raises(
        ValueError, match=r"coords must have shape \(\*batch, 2\), got shape \(4, 3\)"
    ):
        enc(jnp.zeros((4, 3)))
