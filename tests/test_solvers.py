"""Tests for nstm.solvers: conjugate gradients, total variation and its prox, FISTA, the step
size, and TV-regularized least squares, each against a dense solve, a closed form or a
brute-force minimization."""

import warnings

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.optimize import minimize, nnls

from nstm.solvers import (
    conjugate_gradients,
    divergence,
    fista,
    gradient,
    power_iteration,
    prox_tv,
    total_variation,
    tv_least_squares,
)


def spd_matrix(n, condition, rng, dtype=float):
    """Hermitian positive definite matrix with eigenvalues log-spaced over `condition`."""
    q, _ = np.linalg.qr(
        rng.standard_normal((n, n)) + (1j * rng.standard_normal((n, n)) if dtype is complex else 0)
    )
    return (q * np.geomspace(1.0, condition, n)) @ q.conj().T


# ---------------------------------------------------------------------------------------------
# Conjugate gradients


def test_cg_matches_dense_solve():
    rng = np.random.default_rng(0)
    matrix = spd_matrix(30, 1e3, rng)
    b = rng.standard_normal(30)
    x, info = conjugate_gradients(lambda v: matrix @ v, b, tol=1e-12, max_iter=200)
    np.testing.assert_allclose(x, np.linalg.solve(matrix, b), rtol=1e-9, atol=1e-9)
    assert info.converged and info.relative_residual <= 1e-12
    assert len(info.residuals) == info.iterations + 1 and info.residuals[0] == 1.0
    assert np.linalg.norm(b - matrix @ x) / np.linalg.norm(b) < 1e-11  # the true residual


def test_cg_needs_one_iteration_per_distinct_eigenvalue():
    # The Krylov space of a matrix with 4 distinct eigenvalues holds the solution after 4 steps.
    rng = np.random.default_rng(20)
    q, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    matrix = (q * np.repeat([1.0, 3.0, 10.0, 40.0], 10)) @ q.T
    b = rng.standard_normal(40)
    x, info = conjugate_gradients(lambda v: matrix @ v, b, tol=1e-10)
    assert info.iterations == 4
    np.testing.assert_allclose(x, np.linalg.solve(matrix, b), atol=1e-9)


def test_cg_complex_hermitian_and_starting_point():
    rng = np.random.default_rng(1)
    matrix = spd_matrix(12, 50.0, rng, dtype=complex)
    b = rng.standard_normal(12) + 1j * rng.standard_normal(12)
    expected = np.linalg.solve(matrix, b)
    x, info = conjugate_gradients(lambda v: matrix @ v, b, tol=1e-12)
    np.testing.assert_allclose(x, expected, atol=1e-10)
    # Started at the solution: no iteration needed.
    _, info = conjugate_gradients(lambda v: matrix @ v, b, expected, tol=1e-10)
    assert info.converged and info.iterations == 0


def test_cg_jacobi_preconditioner_cuts_iterations():
    rng = np.random.default_rng(2)
    n = 200
    scales = np.geomspace(1.0, 1e4, n)
    coupling = spd_matrix(n, 3.0, rng)
    matrix = np.sqrt(scales)[:, None] * coupling * np.sqrt(scales)[None, :]  # badly scaled SPD
    b = rng.standard_normal(n)
    diagonal = np.diag(matrix)
    plain, plain_info = conjugate_gradients(lambda v: matrix @ v, b, tol=1e-10, max_iter=2000)
    jacobi, jacobi_info = conjugate_gradients(
        lambda v: matrix @ v, b, tol=1e-10, max_iter=2000, preconditioner=lambda r: r / diagonal
    )
    expected = np.linalg.solve(matrix, b)
    for x in (plain, jacobi):
        np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-12)
    assert jacobi_info.iterations < plain_info.iterations / 3


def test_cg_on_tuples_with_a_weighted_inner_product():
    # A = M^-1 K is self-adjoint (not symmetric) in the inner product <u, v>_M = u^T M v.
    rng = np.random.default_rng(3)
    n = 10
    stiffness = spd_matrix(2 * n, 20.0, rng)
    mass = np.diag(rng.uniform(0.5, 2.0, 2 * n))
    operator = np.linalg.solve(mass, stiffness)

    def split(v):
        return v[:n], v[n:]

    def apply(pair):
        return split(operator @ np.concatenate(pair))

    def inner(u, v):
        return float(np.concatenate(u) @ mass @ np.concatenate(v))

    b = split(rng.standard_normal(2 * n))
    x, info = conjugate_gradients(apply, b, tol=1e-12, inner=inner)
    assert isinstance(x, tuple) and len(x) == 2
    np.testing.assert_allclose(np.concatenate(x), np.linalg.solve(operator, np.concatenate(b)))
    assert info.iterations <= 2 * n + 5  # CG property in the right inner product


def test_cg_semidefinite_consistent_system_gives_the_minimum_norm_solution():
    rng = np.random.default_rng(4)
    factor = rng.standard_normal((20, 8))
    matrix = factor @ factor.T  # rank 8 of 20
    b = matrix @ rng.standard_normal(20)  # in the range
    x, info = conjugate_gradients(lambda v: matrix @ v, b, tol=1e-10, max_iter=100)
    assert info.converged
    np.testing.assert_allclose(x, np.linalg.pinv(matrix) @ b, atol=1e-8)


def test_cg_zero_right_hand_side_returns_zero():
    x, info = conjugate_gradients(lambda v: 2 * v, np.zeros(5), np.ones(5))
    assert not x.any() and info.iterations == 0 and info.converged


def test_cg_warns_when_stopped_early():
    rng = np.random.default_rng(5)
    matrix = spd_matrix(40, 1e4, rng)
    b = rng.standard_normal(40)
    with pytest.warns(RuntimeWarning, match=r"conjugate_gradients: stopped at max_iter=3"):
        _, info = conjugate_gradients(lambda v: matrix @ v, b, tol=1e-12, max_iter=3)
    assert not info.converged and info.iterations == 3 and info.relative_residual > 1e-12
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, info = conjugate_gradients(lambda v: matrix @ v, b, tol=1e-12, max_iter=3, warn=False)
    assert not info.converged


def test_cg_rejects_bad_inputs():
    with pytest.raises(ValueError, match="tol: expected a positive"):
        conjugate_gradients(lambda v: v, np.ones(3), tol=0.0)
    with pytest.raises(ValueError, match="max_iter: expected a positive int"):
        conjugate_gradients(lambda v: v, np.ones(3), max_iter=0)
    with pytest.raises(ValueError, match=r"x0: expected the layout of b \(3,\), got \(4,\)"):
        conjugate_gradients(lambda v: v, np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match=r"apply_A: expected a result with the layout of b"):
        conjugate_gradients(lambda v: v[:2], np.ones(3))


# ---------------------------------------------------------------------------------------------
# Total variation


@pytest.mark.parametrize(
    "shape, weights",
    [
        ((7,), None),
        ((5, 6), (1.0, 0.5)),
        ((4, 5, 6), (3.0, 1.0, 1.0)),
        ((3, 1, 4, 5), (0.0, 1.0, 2.0, 0.7)),  # a weight-0 axis and a length-1 axis
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_and_divergence_are_negative_adjoints(shape, weights, dtype):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape).astype(dtype)
    g = gradient(x, weights)
    p = rng.standard_normal(g.shape).astype(dtype)
    d = divergence(p, weights)
    assert g.dtype == d.dtype == dtype and d.shape == shape
    lhs = np.vdot(g.astype(np.float64), p)
    rhs = -np.vdot(x.astype(np.float64), d)
    assert lhs == pytest.approx(rhs, rel=1e-5 if dtype == np.float32 else 1e-12)


def test_gradient_and_total_variation_of_a_ramp():
    i, j = np.meshgrid(np.arange(4), np.arange(5), indexing="ij")
    ramp = 2.0 * i + 3.0 * j
    g = gradient(ramp, (1.0, 0.5))
    np.testing.assert_array_equal(g[0][:-1], 2.0)
    np.testing.assert_array_equal(g[0][-1], 0.0)
    np.testing.assert_array_equal(g[1][:, :-1], 1.5)
    np.testing.assert_array_equal(g[1][:, -1], 0.0)
    # 12 pixels with both differences (2, 1.5), 4 + 3 with one, the corner with none.
    assert total_variation(ramp, (1.0, 0.5)) == pytest.approx(12 * 2.5 + 4 * 1.5 + 3 * 2.0)
    assert total_variation(ramp, (1.0, 0.5), isotropic=False) == pytest.approx(
        12 * 3.5 + 4 * 1.5 + 3 * 2.0
    )
    assert total_variation(np.full((3, 3), 7.0)) == 0.0


def test_prox_tv_of_a_1d_step_has_the_closed_form():
    # prox of lam TV at a step of n0 zeros and n1 ones: the step shrinks by lam/n0 + lam/n1.
    n0, n1, lam = 5, 7, 0.3
    v = np.r_[np.zeros(n0), np.ones(n1)]
    result = prox_tv(v, lam, max_iter=5000, tol=1e-12)
    np.testing.assert_allclose(result.x, np.r_[np.full(n0, lam / n0), np.full(n1, 1 - lam / n1)])
    # Large lam: everything merges into the mean.
    merged = prox_tv(v, 10.0, max_iter=5000, tol=1e-12).x
    np.testing.assert_allclose(merged, np.full(n0 + n1, n1 / (n0 + n1)), atol=1e-8)


@pytest.mark.parametrize("isotropic", [True, False])
def test_prox_tv_satisfies_its_optimality_condition(isotropic):
    # x = prox(v) iff x = v + lam div p for a dual p with |p_i| <= 1 and <p, grad x> = TV(x).
    rng = np.random.default_rng(7)
    v = rng.standard_normal((4, 5, 6))
    weights, lam = (0.5, 1.0, 2.0), 0.4
    result = prox_tv(v, lam, weights=weights, isotropic=isotropic, max_iter=20000, tol=1e-12)
    p = result.dual
    np.testing.assert_allclose(result.x, v + lam * divergence(p, weights), atol=1e-12)
    size = np.sqrt(np.sum(p**2, axis=0)) if isotropic else np.abs(p)
    assert size.max() <= 1 + 1e-12
    tv = total_variation(result.x, weights, isotropic=isotropic)
    assert np.vdot(p, gradient(result.x, weights)) == pytest.approx(tv, rel=1e-6)


def brute_force_prox(v, lam, weights, isotropic, lower, upper):
    """The constrained TV prox as a smooth program in (x, t) with |(D x)_i| <= t_i, by SLSQP."""
    shape, n = v.shape, v.size
    rows = np.stack([gradient(e.reshape(shape), weights).ravel() for e in np.eye(n)], axis=1)
    k = rows.shape[0] // n  # rows[a * n + i] = (D_a x)_i
    m = n if isotropic else k * n

    def objective(z):
        residual = z[:n] - v.ravel()
        return 0.5 * residual @ residual + lam * np.sum(z[n:]), np.r_[residual, np.full(m, lam)]

    if isotropic:
        # t_i - |(D x)_i| >= 0: concave, so the feasible set is convex (a second-order cone).
        def cone(z):
            d = (rows @ z[:n]).reshape(k, n)
            return z[n:] - np.sqrt(np.sum(d**2, axis=0) + 1e-30)

        def cone_jacobian(z):
            d = (rows @ z[:n]).reshape(k, n)
            unit = d / np.sqrt(np.sum(d**2, axis=0) + 1e-30)
            return np.hstack([-np.einsum("ki,kij->ij", unit, rows.reshape(k, n, n)), np.eye(n)])

        constraints = [{"type": "ineq", "fun": cone, "jac": cone_jacobian}]
    else:
        identity = np.eye(m)
        constraints = [
            {
                "type": "ineq",
                "fun": lambda z: z[n:] - rows @ z[:n],
                "jac": lambda z: np.hstack([-rows, identity]),
            },
            {
                "type": "ineq",
                "fun": lambda z: z[n:] + rows @ z[:n],
                "jac": lambda z: np.hstack([rows, identity]),
            },
        ]
    start = np.r_[np.clip(v.ravel(), lower, upper), np.ones(m)]
    solution = minimize(
        objective,
        start,
        jac=True,
        method="SLSQP",
        bounds=[(lower, upper)] * n + [(0, None)] * m,
        constraints=constraints,
        options={"ftol": 1e-14, "maxiter": 5000},
    )
    assert solution.success, solution.message
    return solution.x[:n].reshape(shape)


@pytest.mark.parametrize("isotropic", [True, False])
def test_prox_tv_with_a_box_matches_brute_force(isotropic):
    rng = np.random.default_rng(8)
    v = rng.uniform(-0.5, 1.5, (3, 4))
    weights, lam, lower, upper = (1.0, 0.6), 0.15, 0.0, 1.0
    expected = brute_force_prox(v, lam, weights, isotropic, lower, upper)
    result = prox_tv(
        v,
        lam,
        weights=weights,
        isotropic=isotropic,
        lower=lower,
        upper=upper,
        max_iter=50000,
        tol=1e-13,
    )
    assert result.x.min() >= lower and result.x.max() <= upper
    np.testing.assert_allclose(result.x, expected, atol=1e-7)

    def value(x):
        return 0.5 * np.sum((x - v) ** 2) + lam * total_variation(x, weights, isotropic=isotropic)

    assert value(result.x) <= value(expected) + 1e-10


def test_prox_tv_warm_start_and_zero_weight_axes():
    rng = np.random.default_rng(9)
    v = rng.standard_normal((3, 8, 9))
    # Weight 0 on axis 0: the iteration is separable, each slice is denoised on its own.
    stack = prox_tv(v, 0.3, weights=(0.0, 1.0, 1.0), max_iter=300, tol=1e-30)
    for index in range(3):
        alone = prox_tv(v[index], 0.3, max_iter=300, tol=1e-30).x
        np.testing.assert_allclose(stack.x[index], alone, atol=1e-12)
    # Started from a converged dual, the prox stops at once at the same point.
    cold = prox_tv(v, 0.3, weights=(0.0, 1.0, 1.0), max_iter=100000, tol=1e-12)
    warm = prox_tv(v, 0.3, weights=(0.0, 1.0, 1.0), max_iter=100000, tol=1e-10, dual=cold.dual)
    assert cold.iterations > 100 and warm.iterations <= 3
    np.testing.assert_allclose(warm.x, cold.x, atol=1e-9)
    # lam = 0 is the projection onto the box.
    np.testing.assert_array_equal(prox_tv(v, 0.0, lower=0.0).x, np.maximum(v, 0.0))


def test_tv_rejects_bad_inputs():
    with pytest.raises(
        ValueError, match=r"weights: expected one finite weight >= 0 per axis .*ndim=2"
    ):
        gradient(np.zeros((3, 3)), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="weights: expected"):
        total_variation(np.zeros((3, 3)), (1.0, -1.0))
    with pytest.raises(ValueError, match=r"p: expected 1 components"):
        divergence(np.zeros((2, 3, 3)), (0.0, 1.0))
    with pytest.raises(TypeError, match="x: expected a real array"):
        gradient(np.zeros(3, complex))
    with pytest.raises(ValueError, match="lam: expected a finite weight >= 0"):
        prox_tv(np.zeros((3, 3)), -1.0)
    with pytest.raises(ValueError, match=r"dual: expected shape \(k, \*v.shape\) = \(2, 3, 3\)"):
        prox_tv(np.zeros((3, 3)), 1.0, dual=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="lower, upper: expected lower <= upper"):
        prox_tv(np.zeros((3, 3)), 1.0, lower=1.0, upper=0.0)


# ---------------------------------------------------------------------------------------------
# Step size and FISTA


def test_power_iteration_finds_the_largest_eigenvalue_of_a_gram_matrix():
    rng = np.random.default_rng(10)
    u, _ = np.linalg.qr(rng.standard_normal((40, 25)))
    v, _ = np.linalg.qr(rng.standard_normal((25, 25)))
    singular = np.r_[3.0, 2.4, np.linspace(2.0, 0.1, 23)]
    matrix = (u * singular) @ v.T
    expected = np.linalg.eigvalsh(matrix.T @ matrix).max()
    assert expected == pytest.approx(9.0)
    estimate = power_iteration(lambda x: matrix.T @ (matrix @ x), (25,), tol=1e-10, max_iter=500)
    assert estimate == pytest.approx(expected, rel=1e-8)
    assert estimate <= expected * (1 + 1e-12)  # the Rayleigh quotient is a lower bound
    assert power_iteration(lambda x: 0 * x, (4, 3)) == 0.0


def least_squares_problem(seed=11, rows=60, cols=30):
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((rows, cols)) / np.sqrt(rows)
    y = rng.standard_normal(rows)
    lipschitz = np.linalg.eigvalsh(matrix.T @ matrix).max()
    return matrix, y, lipschitz


@pytest.mark.parametrize("affine", [True, False])
def test_fista_without_regularizer_is_least_squares(affine):
    matrix, y, lipschitz = least_squares_problem()
    expected = np.linalg.lstsq(matrix, y, rcond=None)[0]
    by_cg, _ = conjugate_gradients(lambda x: matrix.T @ (matrix @ x), matrix.T @ y, tol=1e-12)
    np.testing.assert_allclose(by_cg, expected, atol=1e-9)

    def objective(x):
        return 0.5 * np.sum((matrix @ x - y) ** 2)

    x, info = fista(
        lambda x: matrix.T @ (matrix @ x - y),
        lambda v, s: v,
        np.zeros(30),
        step=1 / lipschitz,
        max_iter=5000,
        tol=1e-12,
        affine=affine,
        objective=objective,
    )
    assert info.converged and info.relative_change <= 1e-12
    np.testing.assert_allclose(x, expected, atol=1e-8)
    assert len(info.objective) == info.iterations + 1
    assert info.objective[-1] == pytest.approx(objective(expected), rel=1e-12)
    assert info.objective[-1] < info.objective[0]


def test_fista_nonnegative_least_squares_matches_scipy_nnls():
    matrix, y, lipschitz = least_squares_problem(seed=12)
    expected, _ = nnls(matrix, y)
    assert (expected == 0).sum() >= 5  # the constraint is active somewhere
    x, info = fista(
        lambda x: matrix.T @ (matrix @ x - y),
        lambda v, s: np.maximum(v, 0.0),
        np.zeros(30),
        step=1 / lipschitz,
        max_iter=20000,
        tol=1e-13,
        affine=True,
    )
    assert info.converged and x.min() >= 0
    np.testing.assert_allclose(x, expected, atol=1e-8)


def test_fista_restart_converges_faster_on_a_strongly_convex_problem():
    # O'Donoghue & Candes: plain FISTA oscillates on strongly convex problems, restart is linear.
    rng = np.random.default_rng(13)
    matrix = spd_matrix(50, 1e3, rng)
    b = rng.standard_normal(50)
    expected = np.linalg.solve(matrix, b)
    runs = {}
    for restart in (False, True):
        x, info = fista(
            lambda x: matrix @ x - b,
            lambda v, s: v,
            np.zeros(50),
            step=1.0 / 1e3,
            max_iter=20000,
            tol=1e-10,
            restart=restart,
            affine=True,
        )
        np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-6)
        runs[restart] = info
    assert runs[True].restarts > 0 and runs[False].restarts == 0
    assert runs[True].iterations < 0.7 * runs[False].iterations


def test_fista_reports_divergence_and_rejects_bad_steps():
    matrix, y, lipschitz = least_squares_problem()
    with pytest.raises(FloatingPointError, match="fista: the iterate became non-finite"):
        fista(
            lambda x: matrix.T @ (matrix @ x - y),
            lambda v, s: v,
            np.zeros(30),
            step=1e3 / lipschitz,
            max_iter=1000,
            restart=False,
        )
    with pytest.raises(ValueError, match="step: expected a positive finite step"):
        fista(lambda x: x, lambda v, s: v, np.zeros(3), step=0.0)
    with pytest.raises(ValueError, match=r"prox_g: expected an array of shape \(3,\)"):
        fista(lambda x: x, lambda v, s: v[:2], np.zeros(3), step=0.1)


# ---------------------------------------------------------------------------------------------
# TV-regularized least squares


def psnr(estimate, truth):
    return 10 * np.log10(np.ptp(truth) ** 2 / np.mean((estimate - truth) ** 2))


def piecewise_constant_image(shape=(64, 64)):
    i, j = np.indices(shape)
    image = np.zeros(shape)
    image[8:30, 10:40] = 0.8
    image[36:56, 20:50] = 0.4
    image[((i - 40) ** 2 + (j - 14) ** 2) < 8**2] = 1.0
    return image


def gaussian_blur_operator(shape, sigma):
    """Periodic Gaussian blur as a real, even transfer function: self-adjoint."""
    impulse = np.zeros(shape)
    impulse[0, 0] = 1.0
    transfer = np.fft.rfft2(gaussian_filter(impulse, sigma, mode="wrap"))

    def blur(x):
        return np.fft.irfft2(np.fft.rfft2(x) * transfer, s=shape)

    return blur


def test_tv_deconvolution_recovers_a_piecewise_constant_image():
    truth = piecewise_constant_image()
    blur = gaussian_blur_operator(truth.shape, 2.0)
    rng = np.random.default_rng(14)
    measured = blur(truth) + 0.03 * rng.standard_normal(truth.shape)

    x, info = tv_least_squares(blur, blur, measured, lam=0.005, max_iter=300, tol=1e-5)
    assert x.shape == truth.shape and x.min() >= 0
    assert psnr(x, truth) > psnr(measured, truth) + 6
    # Better than the unregularized, unconstrained deconvolution after as many iterations.
    plain, _ = tv_least_squares(
        blur, blur, measured, lam=0.0, lower=None, max_iter=info.iterations, tol=1e-12
    )
    assert psnr(x, truth) > psnr(plain, truth) + 3
    assert len(info.objective) == info.iterations + 1
    assert info.objective[-1] < 0.1 * info.objective[0]


def test_tv_least_squares_is_a_fixed_point_of_the_proximal_gradient_map():
    truth = piecewise_constant_image((24, 24))
    blur = gaussian_blur_operator(truth.shape, 1.5)
    measured = blur(truth) + 0.02 * np.random.default_rng(15).standard_normal(truth.shape)
    lam, step = 0.01, 1.0  # the blur has ||A^T A|| = 1
    x, info = tv_least_squares(
        blur,
        blur,
        measured,
        lam=lam,
        step=step,
        max_iter=3000,
        tol=1e-9,
        tv_max_iter=200,
        tv_tol=1e-10,
    )
    assert info.converged
    mapped = prox_tv(
        x - step * blur(blur(x) - measured), step * lam, lower=0.0, max_iter=20000, tol=1e-12
    ).x
    assert np.linalg.norm(mapped - x) < 1e-5 * np.linalg.norm(x)


def test_tv_least_squares_without_tv_or_bounds_matches_cg():
    matrix, y, _ = least_squares_problem(seed=16, rows=48, cols=20)

    def forward(x):
        return matrix @ x.ravel()

    def adjoint(r):
        return (matrix.T @ r).reshape(4, 5)

    x, info = tv_least_squares(forward, adjoint, y, lam=0.0, lower=None, max_iter=5000, tol=1e-12)
    by_cg, _ = conjugate_gradients(lambda v: adjoint(forward(v)), adjoint(y), tol=1e-13)
    assert info.converged
    np.testing.assert_allclose(x, by_cg, atol=1e-8)


def test_temporal_tv_weight_couples_the_frames_of_a_rolling_shutter_video():
    # A static scene read through a rolling shutter: frame t is seen only on its band of rows,
    # summed into one image. Without temporal TV each frame is unknown off its band; with it,
    # the bands inform each other.
    frames, shape = 4, (32, 32)
    scene = piecewise_constant_image((64, 64))[::2, ::2]
    truth = np.repeat(scene[None], frames, axis=0)
    blur = gaussian_blur_operator(shape, 1.0)
    band = (np.arange(shape[0]) * frames) // shape[0]
    shutter = (band[None, :] == np.arange(frames)[:, None]).astype(float)[..., None]

    def forward(video):
        return np.sum(shutter * np.stack([blur(frame) for frame in video]), axis=0)

    def adjoint(image):
        return np.stack([blur(s * image) for s in shutter])

    rng = np.random.default_rng(17)
    video = rng.standard_normal((frames,) + shape)
    image = rng.standard_normal(shape)
    assert np.vdot(forward(video), image) == pytest.approx(np.vdot(video, adjoint(image)))

    measured = forward(truth) + 0.01 * rng.standard_normal(shape)
    quality = {}
    for time_weight in (0.0, 3.0):
        x, _ = tv_least_squares(
            forward, adjoint, measured, lam=0.005, weights=(time_weight, 1.0, 1.0), max_iter=300
        )
        assert x.min() >= 0
        quality[time_weight] = psnr(x, truth)
    assert quality[3.0] > quality[0.0] + 12


def test_tv_least_squares_keeps_float32_and_rejects_bad_inputs():
    blur = gaussian_blur_operator((16, 16), 1.0)
    measured = blur(piecewise_constant_image((16, 16))).astype(np.float32)
    x, _ = tv_least_squares(
        lambda v: blur(v).astype(np.float32),
        lambda r: blur(r).astype(np.float32),
        measured,
        lam=0.01,
        max_iter=20,
    )
    assert x.dtype == np.float32
    with pytest.raises(ValueError, match="lam: expected a finite TV weight >= 0"):
        tv_least_squares(blur, blur, measured, lam=-1.0)
    with pytest.raises(ValueError, match=r"x0: expected the shape of adjoint\(y\) \(16, 16\)"):
        tv_least_squares(blur, blur, measured, lam=0.1, x0=np.zeros((8, 8)))
    with pytest.raises(ValueError, match="forward: the operator A is zero"):
        tv_least_squares(lambda v: 0 * v, lambda r: 0 * r, measured, lam=0.1)
