import functools
import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstm.encodings import HashGridEncoding, coarse_to_fine_window
from nstm.encodings.hashgrid import _level_resolutions

PRIMES = (1, 2654435761, 805459861, 3674653429)

# (base, finest) per axis, 3 levels each. With log2_table_size=6 (64 entries) the first
# level is dense and the last one hashed; the grids are anisotropic so that a transposed
# ravel order would be caught.
CASES = {
    1: ((4,), (100,)),  # (4,), (20,), (100,)
    2: ((3, 5), (12, 20)),  # (3, 5) dense, (6, 10) and (12, 20) hashed
    3: ((2, 3, 1), (6, 9, 3)),  # (2, 3, 1), (3, 5, 1) dense, (6, 9, 3) hashed
    4: ((1, 2, 1, 1), (3, 4, 2, 3)),  # (1, 2, 1, 1) twice dense, (3, 4, 2, 3) hashed
}


@functools.cache
def make_encoding(ndim, *, features_per_level=2, init_scale=1.0):
    """Shared test encodings (construction compiles the initializer once per shape)."""
    lo = np.linspace(-1.0, 0.5, ndim)
    hi = lo + np.linspace(2.0, 5.0, ndim)
    base, finest = CASES[ndim]
    return HashGridEncoding(
        tuple(lo),
        tuple(hi),
        base_resolution=base,
        finest_resolution=finest,
        num_levels=3,
        features_per_level=features_per_level,
        log2_table_size=6,
        init_scale=init_scale,
        key=jax.random.key(ndim),
    )


@eqx.filter_jit
def _encode(enc, coords, alpha):
    return enc(coords, alpha=alpha)


def encode(enc, coords, alpha=None):
    # Jitted (eager calls compile every primitive per shape, which dominates small
    # tests), with alpha traced so that new values do not recompile.
    return _encode(enc, coords, None if alpha is None else jnp.float32(alpha))


def unit_to_coords(enc, u):
    lo, hi = np.array(enc.bbox_min), np.array(enc.bbox_max)
    return (lo + np.asarray(u) * (hi - lo)).astype(np.float32)


def random_coords(enc, shape, seed=1, margin=0.0):
    u = np.random.default_rng(seed).uniform(-margin, 1.0 + margin, size=(*shape, enc.ndim))
    return unit_to_coords(enc, u)


def reference_corners(enc, coords, level):
    """Yield (entry index, weight) per cell corner, computed directly in float64."""
    res = np.array(enc.level_resolutions[level])
    lo, hi = np.array(enc.bbox_min), np.array(enc.bbox_max)
    u = np.clip((np.asarray(coords, np.float64) - lo) / (hi - lo), 0.0, 1.0)
    pos = u * res
    cell = np.clip(np.floor(pos), 0, res - 1).astype(np.int64)
    frac = pos - cell
    for offset in itertools.product((0, 1), repeat=len(res)):
        vertex = cell + np.array(offset)
        weight = np.prod(np.where(np.array(offset, bool), frac, 1.0 - frac), axis=-1)
        if math.prod(res + 1) <= 2**enc.log2_table_size:
            index = np.ravel_multi_index(tuple(np.moveaxis(vertex, -1, 0)), tuple(res + 1))
        else:
            index = np.zeros(vertex.shape[:-1], np.int64)
            for d in range(len(res)):
                index ^= vertex[..., d] * PRIMES[d]
            index %= 2**enc.log2_table_size
        yield index, weight


def reference_encode(enc, coords):
    levels = []
    for level, table in enumerate(enc.tables):
        table = np.asarray(table, np.float64)
        levels.append(
            sum(w[..., None] * table[i] for i, w in reference_corners(enc, coords, level))
        )
    return np.concatenate(levels, axis=-1)


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
def test_matches_numpy_reference(ndim):
    enc = make_encoding(ndim)
    assert enc.is_dense[0] and not enc.is_dense[-1]
    assert enc.level_resolutions[0] == CASES[ndim][0]
    coords = random_coords(enc, (7, 33))
    out = encode(enc, coords)
    assert out.shape == (7, 33, 6)
    assert out.dtype == jnp.float32
    # float32 grid positions u * N carry an error of ~N * 2**-24 cells; table values are O(1).
    atol = 1e-6 + 4 * max(CASES[ndim][1]) * 2.0**-24
    np.testing.assert_allclose(out, reference_encode(enc, coords), atol=atol, rtol=0)


def test_table_layout():
    enc = make_encoding(2, features_per_level=3, init_scale=1e-4)
    assert enc.level_resolutions == ((3, 5), (6, 10), (12, 20))
    assert enc.is_dense == (True, False, False)
    assert [t.shape for t in enc.tables] == [(24, 3), (64, 3), (64, 3)]
    assert all(t.dtype == jnp.float32 for t in enc.tables)
    assert (enc.ndim, enc.num_levels, enc.output_size, enc.features_per_level) == (2, 3, 9, 3)
    for table in map(np.asarray, enc.tables):
        assert np.abs(table).max() <= 1e-4 and table.std() > 1e-5
    assert make_encoding(3).is_dense == (True, True, False)


def test_vertex_values_are_table_entries():
    enc = make_encoding(2)
    ny, nx = enc.level_resolutions[0]
    iy, ix = np.meshgrid(np.arange(ny + 1), np.arange(nx + 1), indexing="ij")
    coords = unit_to_coords(enc, np.stack([iy / ny, ix / nx], axis=-1))
    # alpha = 0 keeps only level 0 (dense, anisotropic 3 x 5 cells).
    out = encode(enc, coords, 0.0)[..., :2]
    expected = np.asarray(enc.tables[0]).reshape(ny + 1, nx + 1, 2)
    np.testing.assert_allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize(
    ("ndim", "features", "alpha"),
    [(1, 2, None), (2, 2, None), (3, 2, None), (4, 2, None), (2, 1, 0.4), (3, 3, 0.7)],
)
def test_custom_gradients_match_autodiff_of_a_reference(ndim, features, alpha):
    # The encoding's hand-written backward (table scatter, coordinate gradient) against JAX
    # autodiff of a plain multilinear interpolation, points inside and outside the box, with
    # and without the coarse-to-fine window.
    enc = make_encoding(ndim, features_per_level=features)
    enc = eqx.tree_at(
        lambda e: e.tables,
        enc,
        tuple(jax.random.normal(jax.random.key(i), t.shape) for i, t in enumerate(enc.tables)),
    )
    coords = random_coords(enc, (300,), seed=4, margin=0.1)
    corners = [list(reference_corners(enc, coords, level)) for level in range(enc.num_levels)]
    lo, hi = np.array(enc.bbox_min, np.float32), np.array(enc.bbox_max, np.float32)
    cotangent = jax.random.normal(jax.random.key(9), (300, enc.output_size))
    unit = np.clip((coords - lo) / (hi - lo), 0.0, 1.0)

    def reference(tables, x):
        levels = []
        for level, table in enumerate(tables):
            res = np.array(enc.level_resolutions[level], np.float32)
            pos = jnp.clip((x - lo) / (hi - lo), 0.0, 1.0) * res
            cell = np.clip(np.floor(unit * res), 0, res - 1)  # piecewise constant in x
            frac = pos - cell
            offsets = itertools.product((0, 1), repeat=ndim)
            levels.append(
                sum(
                    jnp.prod(jnp.where(np.array(o, bool), frac, 1.0 - frac), -1)[:, None]
                    * table[index]
                    for o, (index, _) in zip(offsets, corners[level], strict=True)
                )
            )
        features = jnp.concatenate(levels, -1)
        if alpha is None:
            return features
        window = coarse_to_fine_window(jnp.float32(alpha), enc.num_levels)
        return features * jnp.repeat(window, enc.features_per_level)

    def ours(tables, x):
        return eqx.tree_at(lambda e: e.tables, enc, tables)(x, alpha=alpha)

    x = jnp.asarray(coords)
    expected = jax.grad(lambda t, c: jnp.sum(reference(t, c) * cotangent), (0, 1))(enc.tables, x)
    got = jax.jit(jax.grad(lambda t, c: jnp.sum(ours(t, c) * cotangent), (0, 1)))(enc.tables, x)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()))


@pytest.mark.parametrize("level", [0, 2])  # dense, hashed
def test_continuous_across_cell_faces(level):
    enc = make_encoding(2)
    n = enc.level_resolutions[level][1]
    lo, hi = np.array(enc.bbox_min), np.array(enc.bbox_max)
    face = np.arange(1, n) / n  # interior faces normal to axis 1, in unit coordinates
    u = np.stack([np.random.default_rng(0).uniform(size=face.shape), face], axis=-1)
    below = unit_to_coords(enc, u - [0.0, 1e-6])
    above = unit_to_coords(enc, u + [0.0, 1e-6])
    # The cell index switches across the face ...
    cells = [np.floor((x - lo) / (hi - lo) * n)[:, 1] for x in (below, above)]
    assert np.all(cells[0] < cells[1])
    # ... but the values, with O(1) table entries, move by at most ~|slope| * 2e-6.
    jump = np.abs(encode(enc, below) - encode(enc, above))
    assert float(jump.max()) < 1e-4


def test_outside_coords_read_boundary_values():
    enc = make_encoding(3)
    coords = random_coords(enc, (200,), margin=0.5)
    clamped = np.clip(coords, enc.bbox_min, enc.bbox_max)
    outside = coords != clamped
    assert np.any(outside) and np.any(~outside)
    np.testing.assert_array_equal(encode(enc, coords), encode(enc, clamped))
    # Clamped axes get no gradient; the others do.
    grad = np.asarray(eqx.filter_jit(jax.grad(lambda x: enc(x).sum()))(jnp.asarray(coords)))
    assert np.all(grad[outside] == 0)
    assert np.all(grad[~outside] != 0)


def test_finest_level_is_exact():
    enc = HashGridEncoding(
        (0.0,),
        (1.0,),
        base_resolution=32,
        finest_resolution=256,
        log2_table_size=1,
        key=jax.random.key(0),
    )
    res = [r[0] for r in enc.level_resolutions]
    growth = 8.0 ** (1 / 7)
    assert res == [math.floor(32 * growth**level + 1e-6) for level in range(8)]
    # Same schedule evaluated in float32 ends at 255, one cell short.
    assert res[0] == 32 and res[-1] == 256


def test_finest_level_is_exact_for_many_settings():
    for base, finest, num_levels in itertools.product(
        (1, 3, 16, 32), (32, 100, 256, 777, 2048), (2, 5, 8, 16, 32)
    ):
        res = [r[0] for r in _level_resolutions((base,), (finest,), num_levels)]
        assert len(res) == num_levels
        assert res[0] == base and res[-1] == finest
        assert all(a <= b for a, b in itertools.pairwise(res))
    assert _level_resolutions((4, 2), (64, 8), 1) == ((64, 8),)


def test_anisotropic_and_constant_axes():
    enc = HashGridEncoding(
        (0.0, 0.0),
        (1.0, 1.0),
        base_resolution=(32, 100),
        finest_resolution=(256, 800),
        log2_table_size=1,
        key=jax.random.key(0),
    )
    assert enc.level_resolutions[0] == (32, 100)
    assert enc.level_resolutions[-1] == (256, 800)
    assert all(r[1] > r[0] for r in enc.level_resolutions)

    enc = HashGridEncoding(
        (0.0, 0.0, 0.0),
        (1.0, 1.0, 1.0),
        base_resolution=(16, 8, 4),
        finest_resolution=(128, 8, 4),
        log2_table_size=1,
        key=jax.random.key(0),
    )
    assert [r[0] for r in enc.level_resolutions] == [16, 21, 28, 39, 52, 70, 95, 128]
    assert [r[1:] for r in enc.level_resolutions] == [(8, 4)] * 8


def test_window_is_level_major():
    enc = make_encoding(3)
    coords = random_coords(enc, (7, 33))
    raw = encode(enc, coords)
    off = encode(enc, coords, 0.0)
    assert np.all(np.asarray(off[..., 2:]) == 0)
    assert np.all(np.asarray(off[..., :2]) != 0)
    np.testing.assert_array_equal(off[..., :2], raw[..., :2])
    np.testing.assert_array_equal(encode(enc, coords, 1.0), raw)
    window = np.repeat(coarse_to_fine_window(0.75, 3), 2)
    np.testing.assert_allclose(encode(enc, coords, 0.75), raw * window, rtol=1e-6)


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
def test_coords_gradient_matches_finite_differences(ndim):
    enc = make_encoding(ndim)
    lo, hi = np.array(enc.bbox_min), np.array(enc.bbox_max)
    # Keep points well inside a cell at every level so the +-eps stencil stays in it;
    # the encoding is then linear along each axis and central differences are exact.
    eps = 1e-3  # unit-box coordinates
    u = np.random.default_rng(2).uniform(0.01, 0.99, size=(4000, ndim))
    inside = np.ones(len(u), bool)
    for res in enc.level_resolutions:
        frac = (u * np.array(res)) % 1.0
        inside &= np.all((frac > 0.1) & (frac < 0.9), axis=-1)
    u = u[inside][:20]
    assert len(u) == 20
    proj = jnp.asarray(np.random.default_rng(3).normal(size=enc.output_size), jnp.float32)

    def loss(x):
        return enc(x) @ proj

    @eqx.filter_jit
    def values_and_grads(stencil, x):
        return loss(stencil), jax.vmap(jax.grad(loss))(x)

    # Stencil points, shape (2 * ndim, 20, ndim): +eps then -eps along each axis.
    steps = np.concatenate([np.eye(ndim), -np.eye(ndim)])[:, None, :] * eps
    values, grad = values_and_grads(unit_to_coords(enc, u + steps), unit_to_coords(enc, u))
    values, grad = np.asarray(values, np.float64), np.asarray(grad)
    fd = (values[:ndim] - values[ndim:]).T / (2 * eps * (hi - lo))
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, fd, rtol=1e-3, atol=1e-3 * np.abs(fd).max())


@pytest.mark.parametrize("level", [0, 2])  # dense, hashed
def test_table_gradient_hits_only_used_entries(level):
    enc = make_encoding(2)
    coords = random_coords(enc, (5,))
    grads = eqx.filter_jit(jax.grad(lambda e, x: e(x).sum()))(enc, coords).tables
    expected = np.zeros(enc.tables[level].shape[0])
    for index, weight in reference_corners(enc, coords, level):
        np.add.at(expected, index, weight)
    assert 0 < np.count_nonzero(expected) < len(expected)
    # Each used entry receives its summed interpolation weights, every other entry zero.
    np.testing.assert_allclose(grads[level], np.stack([expected] * 2, axis=-1), atol=1e-6)


def test_batched_equals_vmap():
    enc = make_encoding(4)
    coords = random_coords(enc, (7, 33), margin=0.1)
    batched = encode(enc, coords, 0.6)
    vmapped = eqx.filter_jit(jax.vmap(jax.vmap(lambda x: enc(x, alpha=0.6))))(coords)
    np.testing.assert_allclose(vmapped, batched, atol=1e-7)
    single = encode(enc, coords[0, 0], 0.6)
    assert single.shape == (enc.output_size,)
    np.testing.assert_allclose(single, batched[0, 0], atol=1e-7)


def test_jit_equals_eager():
    enc = make_encoding(2)
    coords = random_coords(enc, (7, 33), margin=0.1)
    eager = enc(coords, alpha=0.6)
    np.testing.assert_allclose(encode(enc, coords, 0.6), eager, atol=1e-7)
    # alpha is traced: a new value reuses the compiled function and still matches.
    np.testing.assert_allclose(encode(enc, coords, 0.1), enc(coords, alpha=0.1), atol=1e-7)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bbox_min": (0.0, 0.0), "bbox_max": (1.0,)}, "same length"),
        ({"bbox_min": (0.0,) * 5, "bbox_max": (1.0,) * 5}, "1 to 4"),
        ({"bbox_min": (0.0, 1.0), "bbox_max": (1.0, 1.0)}, "bbox_max must be > bbox_min"),
        ({"base_resolution": 64, "finest_resolution": 32}, "base_resolution must be <="),
        ({"base_resolution": (4, 4, 4)}, "base_resolution must be an int or a sequence of 2"),
        ({"base_resolution": 2.5}, "base_resolution must contain integers"),
        ({"finest_resolution": 0}, "finest_resolution must contain positive"),
        ({"num_levels": 0}, "num_levels must be an integer >= 1, got 0"),
        ({"num_levels": 2.0}, "num_levels must be an integer >= 1, got 2.0"),
        ({"features_per_level": 0}, "features_per_level must be an integer >= 1"),
        ({"log2_table_size": 31}, "log2_table_size"),
        # Three hashed levels of 2**30 entries: more rows than int32 indices address.
        (
            {
                "base_resolution": 2**16,
                "finest_resolution": 2**17,
                "num_levels": 3,
                "log2_table_size": 30,
            },
            r"3 levels' tables would hold 3221225472 entries .* lower log2_table_size \(30\)",
        ),
    ],
)
def test_constructor_errors(kwargs, match):
    args = {
        "bbox_min": (0.0, 0.0),
        "bbox_max": (1.0, 1.0),
        "base_resolution": 4,
        "finest_resolution": 16,
        "key": jax.random.key(0),
    } | kwargs
    with pytest.raises(ValueError, match=match):
        HashGridEncoding(args.pop("bbox_min"), args.pop("bbox_max"), **args)


def test_call_errors():
    enc = make_encoding(2)
    with pytest.raises(
        ValueError, match=r"coords must have shape \(\*batch, 2\), got shape \(5, 3\)"
    ):
        enc(jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="coords must have shape"):
        enc(jnp.float32(0.0))
