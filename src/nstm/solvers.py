"""Iterative solvers shared by the conventional (baseline) reconstructions of the imaging systems.

* `conjugate_gradients`: Hermitian positive (semi)definite linear systems, optionally
  preconditioned, on arrays or tuples of arrays with a caller-chosen inner product (DPC's padded
  Tikhonov solve, normal equations of other linear models).
* `gradient`, `divergence`, `total_variation`, `prox_tv`: N-dimensional total variation with one
  weight per axis (a video can weight time and space differently, a volume z and xy), and its
  proximal operator with an optional box constraint, by the fast gradient projection on the dual.
* `fista`: accelerated proximal gradient with adaptive restart; `power_iteration` estimates the
  Lipschitz constant ``||A^T A||`` that sets its step.
* `tv_least_squares`: ``min ||A x - y||^2 / 2 + lam TV(x)`` subject to ``lower <= x <= upper``
  for a linear operator given as forward and adjoint functions (lensless deconvolution, video
  through a rolling shutter).

All work on NumPy arrays and keep the dtype of their inputs (float32 halves the memory traffic
of large videos). The loops are plain Python over NumPy rather than one jitted JAX program: the
operators stay arbitrary callables (SciPy FFTs, or jitted JAX functions whose outputs NumPy
reads), nothing compiles per shape, and float64 needs no global switch. On CPU a fully jitted
loop was only moderately faster, and only with the operator written as traced JAX code.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import numpy as np

__all__ = [
    "CGInfo",
    "FISTAInfo",
    "ProxTV",
    "conjugate_gradients",
    "divergence",
    "fista",
    "gradient",
    "power_iteration",
    "prox_tv",
    "total_variation",
    "tv_least_squares",
]

# A CG vector: one array, or a tuple/list of arrays treated as one concatenated vector.
Vector = TypeVar("Vector", np.ndarray, tuple, list)


def _tree_map(function: Callable[..., Any], *trees: Any) -> Any:
    """Apply ``function`` leaf-wise to arrays or (nested) tuples/lists of arrays."""
    if isinstance(trees[0], tuple | list):
        return type(trees[0])(_tree_map(function, *leaves) for leaves in zip(*trees, strict=True))
    return function(*trees)


def _add_scaled(x: Any, scale: float, d: Any) -> Any:
    """``x + scale * d`` for arrays or tuples of arrays."""
    return _tree_map(lambda xi, di: xi + scale * di, x, d)


def _leaves(tree: Any) -> list[Any]:
    if isinstance(tree, tuple | list):
        return [leaf for item in tree for leaf in _leaves(item)]
    return [tree]


def _default_inner(a: Any, b: Any) -> float:
    """Real part of the Euclidean inner product, summed over the leaves."""
    return float(sum(np.vdot(x, y).real for x, y in zip(_leaves(a), _leaves(b), strict=True)))


def _check_iterations(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name}: expected a positive int (iterations), got {value!r}")
    return int(value)


def _check_tolerance(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(f"{name}: expected a positive relative tolerance, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a positive finite relative tolerance, got {value!r}")
    return float(value)


def _structure(tree: Any) -> Any:
    """Nesting and leaf shapes of a vector, to compare two vectors' layouts."""
    if isinstance(tree, tuple | list):
        return tuple(_structure(item) for item in tree)
    return np.shape(tree)


# --------------------------------------------------------------------------------------------
# Conjugate gradients


@dataclasses.dataclass(frozen=True)
class CGInfo:
    """Convergence record of `conjugate_gradients`.

    Attributes
    ----------
    iterations : int
        Iterations run (applications of the operator after the initial residual).
    converged : bool
        Whether the relative residual reached `tol`.
    relative_residual : float
        Final ``||b - A x|| / ||b||`` (the recursively updated residual).
    residuals : ndarray of float64
        Relative residual at the start and after each iteration (length ``iterations + 1``).
    """

    iterations: int
    converged: bool
    relative_residual: float
    residuals: np.ndarray


def conjugate_gradients(
    apply_A: Callable[[Vector], Vector],
    b: Vector,
    x0: Vector | None = None,
    *,
    tol: float = 1e-6,
    max_iter: int = 200,
    preconditioner: Callable[[Vector], Vector] | None = None,
    inner: Callable[[Vector, Vector], float] | None = None,
    warn: bool = True,
) -> tuple[Vector, CGInfo]:
    """Solve ``A x = b`` for a Hermitian positive (semi)definite ``A`` by conjugate gradients.

    Stops once the relative residual ``||b - A x|| / ||b||`` is at most `tol` (checked before
    each iteration, so a starting point that already satisfies it costs no iteration), after
    `max_iter` iterations, or when a search direction has no positive curvature (a
    semidefinite ``A`` whose null space the residual reached; rounding only, for a consistent
    system). For a semidefinite ``A`` and a consistent ``b``, starting from zero gives the
    minimum-norm solution.

    Parameters
    ----------
    apply_A : callable
        ``x -> A x``, returning a vector with the layout of `b`.
    b : ndarray or tuple of ndarray
        Right-hand side. A tuple (or list) of arrays is one vector made of its parts, e.g. the
        absorption and phase spectra of DPC.
    x0 : ndarray or tuple of ndarray, optional
        Starting point with the layout of `b`; zero by default.
    tol : float, optional
        Relative residual at which to stop (> 0).
    max_iter : int, optional
        Maximum number of iterations (>= 1).
    preconditioner : callable, optional
        ``r -> M^-1 r`` for a Hermitian positive definite ``M`` close to ``A``; none by default.
    inner : callable, optional
        Real inner product ``(u, v) -> Re <u, v>`` in which ``A`` is self-adjoint (e.g. a
        Parseval-weighted sum over half spectra); the Euclidean one by default.
    warn : bool, optional
        Emit a RuntimeWarning when stopping before reaching `tol`.

    Returns
    -------
    x : ndarray or tuple of ndarray
        The approximate solution, with the layout of `b`.
    info : CGInfo
        Iterations, convergence flag and residual history.

    Raises
    ------
    ValueError
        If `x0` or ``apply_A(x)`` does not have the layout of `b`, or `tol` / `max_iter` is not
        positive.

    Warns
    -----
    RuntimeWarning
        If `warn` and the iteration stops with a relative residual above `tol`.
    """
    tol = _check_tolerance("tol", tol)
    max_iter = _check_iterations("max_iter", max_iter)
    inner = _default_inner if inner is None else inner
    layout = _structure(b)
    if x0 is not None and _structure(x0) != layout:
        raise ValueError(f"x0: expected the layout of b {layout}, got {_structure(x0)}")

    def operator(x):
        image = apply_A(x)
        if _structure(image) != layout:
            raise ValueError(
                f"apply_A: expected a result with the layout of b {layout}, got {_structure(image)}"
            )
        return image

    b_norm = math.sqrt(inner(b, b))
    if b_norm == 0:
        # A x = 0: zero is a solution (the minimum-norm one for a semidefinite A).
        return _tree_map(np.zeros_like, b), CGInfo(0, True, 0.0, np.zeros(1))
    if x0 is None:
        x = _tree_map(np.zeros_like, b)
        residual = b
    else:
        x = x0
        residual = _tree_map(lambda bi, ai: bi - ai, b, operator(x))
    relative = math.sqrt(inner(residual, residual)) / b_norm
    history = [relative]
    z = residual if preconditioner is None else preconditioner(residual)
    direction = z
    rz = inner(residual, z)
    iterations = 0
    while relative > tol and iterations < max_iter:
        image = operator(direction)
        curvature = inner(direction, image)
        if not curvature > 0:
            break  # no descent left along the direction (semidefinite A, rounding)
        step = rz / curvature
        x = _add_scaled(x, step, direction)
        residual = _add_scaled(residual, -step, image)
        relative = math.sqrt(inner(residual, residual)) / b_norm
        history.append(relative)
        iterations += 1
        if relative <= tol:
            break
        z = residual if preconditioner is None else preconditioner(residual)
        rz_next = inner(residual, z)
        direction = _add_scaled(z, rz_next / rz, direction)
        rz = rz_next
    converged = relative <= tol
    if warn and not converged:
        reason = (
            f"at max_iter={max_iter}"
            if iterations >= max_iter
            else f"after {iterations} iterations (no positive curvature left)"
        )
        warnings.warn(
            f"conjugate_gradients: stopped {reason} with relative residual {relative:.2e} > "
            f"tol={tol:.1e}; increase max_iter or tol",
            RuntimeWarning,
            stacklevel=2,
        )
    return x, CGInfo(iterations, converged, relative, np.asarray(history))


# --------------------------------------------------------------------------------------------
# Total variation


def _float_array(name: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if np.iscomplexobj(array) or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name}: expected a real array, got dtype {array.dtype}")
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return array


def _axis_weights(weights: Any, ndim: int) -> np.ndarray:
    """One non-negative weight per axis (all ones by default)."""
    if weights is None:
        return np.ones(ndim)
    values = np.asarray(weights, dtype=np.float64)
    if values.ndim == 0:
        values = np.full(ndim, float(values))
    if values.shape != (ndim,) or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(
            f"weights: expected one finite weight >= 0 per axis of the array (ndim={ndim}), "
            f"got {weights!r}"
        )
    return values


def _active_axes(shape: tuple[int, ...], weights: np.ndarray) -> list[tuple[int, float]]:
    """``(axis, weight)`` of the axes that carry differences (positive weight, length > 1)."""
    return [(a, float(w)) for a, w in enumerate(weights) if w > 0 and shape[a] > 1]


def _cut(ndim: int, axis: int, part: slice) -> tuple[slice, ...]:
    index = [slice(None)] * ndim
    index[axis] = part
    return tuple(index)


_HEAD, _TAIL = slice(None, -1), slice(1, None)


def _gradient_into(x: np.ndarray, axes: list[tuple[int, float]], out: np.ndarray) -> np.ndarray:
    """Weighted forward differences of ``x`` into ``out`` (k, *x.shape); 0 at each last index."""
    for component, (axis, weight) in zip(out, axes, strict=True):
        head, tail = _cut(x.ndim, axis, _HEAD), _cut(x.ndim, axis, _TAIL)
        np.subtract(x[tail], x[head], out=component[head])
        component[_cut(x.ndim, axis, slice(-1, None))] = 0
        if weight != 1:
            component *= weight
    return out


def _divergence_into(p: np.ndarray, axes: list[tuple[int, float]], out: np.ndarray) -> np.ndarray:
    """Minus the adjoint of `_gradient_into`, into ``out``; ``p[k]``'s last index is unused."""
    out[...] = 0
    for component, (axis, weight) in zip(p, axes, strict=True):
        head, tail = _cut(out.ndim, axis, _HEAD), _cut(out.ndim, axis, _TAIL)
        part = component[head] if weight == 1 else weight * component[head]
        out[head] += part
        out[tail] -= part
    return out


def gradient(x: np.ndarray, weights: Sequence[float] | float | None = None) -> np.ndarray:
    """Weighted forward differences of an N-dimensional array (Neumann boundary).

    ``out[k][..., i, ...] = w_a (x[..., i + 1, ...] - x[..., i, ...])`` along the ``k``-th axis
    ``a`` with a positive weight and length > 1, and 0 at that axis' last index.

    Parameters
    ----------
    x : ndarray
        Real array of any dimension (e.g. a video (T, H, W) or a volume (Z, H, W)).
    weights : sequence of float or float, optional
        One weight >= 0 per axis of `x` (a scalar for all); an axis of weight 0 carries no
        differences. All ones by default.

    Returns
    -------
    ndarray, shape (k, *x.shape)
        One component per active axis, in axis order; the dtype of `x` (float64 for integers).

    Raises
    ------
    TypeError
        If `x` is complex or not numeric.
    ValueError
        If `weights` is not one finite non-negative value per axis.
    """
    x = _float_array("x", x)
    axes = _active_axes(x.shape, _axis_weights(weights, x.ndim))
    return _gradient_into(x, axes, np.empty((len(axes),) + x.shape, dtype=x.dtype))


def divergence(p: np.ndarray, weights: Sequence[float] | float | None = None) -> np.ndarray:
    """Discrete divergence, the negative adjoint of `gradient`: ``<gradient(x), p> = -<x, div p>``.

    Parameters
    ----------
    p : ndarray, shape (k, *shape)
        One component per active axis of ``shape`` under `weights` (as `gradient` returns).
    weights : sequence of float or float, optional
        The weights given to `gradient`, one per axis of ``shape``.

    Returns
    -------
    ndarray, shape p.shape[1:]

    Raises
    ------
    ValueError
        If ``p.shape[0]`` is not the number of active axes (positive weight, length > 1).
    """
    p = _float_array("p", p)
    if p.ndim < 2:
        raise ValueError(f"p: expected shape (k, *shape) with k components, got {p.shape}")
    shape = p.shape[1:]
    axes = _active_axes(shape, _axis_weights(weights, len(shape)))
    if p.shape[0] != len(axes):
        raise ValueError(
            f"p: expected {len(axes)} components (axes of {shape} with positive weight and "
            f"length > 1), got shape {p.shape}"
        )
    return _divergence_into(p, axes, np.empty(shape, dtype=p.dtype))


def _pointwise_norm(g: np.ndarray, isotropic: bool, out: np.ndarray | None = None) -> np.ndarray:
    if not isotropic:
        return np.sum(np.abs(g), axis=0, out=out)
    out = np.einsum("k...,k...->...", g, g, out=out)
    return np.sqrt(out, out=out)


def total_variation(
    x: np.ndarray,
    weights: Sequence[float] | float | None = None,
    *,
    isotropic: bool = True,
) -> float:
    """Weighted total variation ``TV_w(x)`` of an N-dimensional array.

    Isotropic: ``sum_i sqrt(sum_a w_a^2 (D_a x)_i^2)``; anisotropic: ``sum_i sum_a w_a |D_a x|_i``,
    with forward differences ``D_a`` (see `gradient`).

    Parameters
    ----------
    x : ndarray
        Real array of any dimension.
    weights : sequence of float or float, optional
        One weight >= 0 per axis (all ones by default).
    isotropic : bool, optional
        Euclidean (True) or absolute-value (False) norm of each pixel's difference vector.

    Returns
    -------
    float
    """
    g = gradient(x, weights)
    if g.shape[0] == 0:
        return 0.0
    return float(np.sum(_pointwise_norm(g, isotropic), dtype=np.float64))


class ProxTV(NamedTuple):
    """Result of `prox_tv`.

    Attributes
    ----------
    x : ndarray
        The proximal point.
    dual : ndarray, shape (k, *x.shape)
        Dual variable (one vector of norm <= 1 per pixel), to warm-start a nearby prox.
    iterations : int
        Iterations of the fast gradient projection.
    relative_change : float
        Final relative change of the primal estimate between iterations.
    """

    x: np.ndarray
    dual: np.ndarray
    iterations: int
    relative_change: float


def _box(lower: Any, upper: Any) -> Callable[[np.ndarray], np.ndarray]:
    """In-place projection onto ``lower <= x <= upper`` (either bound may be None)."""
    if lower is None and upper is None:
        return lambda x: x
    if lower is not None and upper is not None and np.any(np.asarray(lower) > np.asarray(upper)):
        raise ValueError(f"lower, upper: expected lower <= upper, got {lower!r} > {upper!r}")
    for name, bound in (("lower", lower), ("upper", upper)):
        if bound is not None and np.any(np.isnan(bound)):
            raise ValueError(f"{name}: expected a bound (scalar or array), got NaN")
    return lambda x: np.clip(x, lower, upper, out=x)


def prox_tv(
    v: np.ndarray,
    lam: float,
    *,
    weights: Sequence[float] | float | None = None,
    isotropic: bool = True,
    lower: float | np.ndarray | None = None,
    upper: float | np.ndarray | None = None,
    max_iter: int = 100,
    tol: float = 1e-4,
    dual: np.ndarray | None = None,
) -> ProxTV:
    r"""Proximal operator of weighted total variation, optionally with a box constraint.

    .. math::

        \operatorname{prox}(v) = \arg\min_{l \le x \le u} \tfrac12 \|x - v\|^2
        + \lambda\, TV_w(x),

    solved by the fast gradient projection (FGP) on the dual (Beck & Teboulle, IEEE TIP 2009),
    generalized to N dimensions with per-axis weights: ``x = P_box(v + lam div p)`` for the
    dual ``p`` (one vector per pixel in the unit ball), with step ``1 / (4 lam sum_a w_a^2)``.

    Parameters
    ----------
    v : ndarray
        Real array of any dimension.
    lam : float
        Regularization weight ``lambda`` (>= 0), in units of `v`.
    weights : sequence of float or float, optional
        One weight >= 0 per axis (see `total_variation`); all ones by default.
    isotropic : bool, optional
        Isotropic (True) or anisotropic (False) total variation.
    lower, upper : float or ndarray, optional
        Box constraint, e.g. ``lower=0`` for non-negativity; none by default.
    max_iter : int, optional
        Maximum FGP iterations.
    tol : float, optional
        Stop when the primal estimate changes by less than `tol` relative to its norm.
    dual : ndarray, shape (k, *v.shape), optional
        Starting dual (the `ProxTV.dual` of a nearby problem); zero by default.

    Returns
    -------
    ProxTV
        The proximal point (dtype of `v`), the dual, iterations and final relative change.

    Raises
    ------
    ValueError
        If `lam` is negative or not finite, `weights` is not one value >= 0 per axis, `dual`
        has the wrong shape, or ``lower > upper``.
    """
    v = _float_array("v", v)
    if not np.isfinite(lam) or lam < 0:
        raise ValueError(f"lam: expected a finite weight >= 0 (units of v), got {lam!r}")
    max_iter = _check_iterations("max_iter", max_iter)
    tol = _check_tolerance("tol", tol)
    project = _box(lower, upper)
    axes = _active_axes(v.shape, _axis_weights(weights, v.ndim))
    dual_shape = (len(axes),) + v.shape
    if dual is not None and np.shape(dual) != dual_shape:
        raise ValueError(
            f"dual: expected shape (k, *v.shape) = {dual_shape} for the active axes, got "
            f"{np.shape(dual)}"
        )
    if lam == 0 or not axes:
        return ProxTV(project(v.copy()), np.zeros(dual_shape, v.dtype), 0, 0.0)

    lipschitz = 4.0 * sum(w * w for _, w in axes)  # ||D_w||^2 <= 4 sum_a w_a^2
    gain = 1.0 / (lam * lipschitz)
    p_old = np.zeros(dual_shape, v.dtype) if dual is None else np.array(dual, dtype=v.dtype)
    r = p_old.copy()
    p = np.empty_like(p_old)
    x = np.empty_like(v)
    x_old = np.empty_like(v)
    norm = np.empty_like(v)
    t = 1.0
    change = np.inf
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 (the count is returned)
        x, x_old = x_old, x
        _divergence_into(r, axes, x)
        x *= lam
        x += v
        project(x)
        _gradient_into(x, axes, p)
        p *= gain
        p += r
        if isotropic:
            _pointwise_norm(p, True, out=norm)
            np.maximum(norm, 1.0, out=norm)
            p /= norm
        else:
            np.clip(p, -1.0, 1.0, out=p)
        t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        np.subtract(p, p_old, out=r)
        r *= (t - 1.0) / t_next
        r += p
        p, p_old = p_old, p
        t = t_next
        if iterations > 1:
            np.subtract(x, x_old, out=x_old)
            scale = float(np.linalg.norm(x.ravel()))
            change = float(np.linalg.norm(x_old.ravel())) / scale if scale > 0 else 0.0
            if change <= tol:
                break
    # The primal point of the last (non-extrapolated) dual iterate.
    _divergence_into(p_old, axes, x)
    x *= lam
    x += v
    return ProxTV(project(x), p_old, iterations, change)


# --------------------------------------------------------------------------------------------
# Accelerated proximal gradient


@dataclasses.dataclass(frozen=True)
class FISTAInfo:
    """Convergence record of `fista` and `tv_least_squares`.

    Attributes
    ----------
    iterations : int
        Iterations run.
    converged : bool
        Whether the relative change reached `tol`.
    relative_change : float
        Final ``||x_k - x_{k-1}|| / ||x_k||``.
    objective : ndarray of float64
        Objective at the start and after each iteration when an objective was given (length
        ``iterations + 1``), else empty.
    restarts : int
        Momentum restarts taken.
    step : float
        Step size used.
    """

    iterations: int
    converged: bool
    relative_change: float
    objective: np.ndarray
    restarts: int
    step: float


def fista(
    grad_f: Callable[[np.ndarray], np.ndarray],
    prox_g: Callable[[np.ndarray, float], np.ndarray],
    x0: np.ndarray,
    *,
    step: float,
    max_iter: int = 200,
    tol: float = 1e-5,
    restart: bool = True,
    affine: bool = False,
    objective: Callable[[np.ndarray], float] | None = None,
) -> tuple[np.ndarray, FISTAInfo]:
    r"""Minimize ``f(x) + g(x)`` by FISTA (Beck & Teboulle, SIAM J. Imaging Sci. 2009).

    ``x_{k+1} = prox_g(y_k - step grad_f(y_k), step)``, ``y_{k+1} = x_{k+1} + (t_k - 1) /
    t_{k+1} (x_{k+1} - x_k)``, with the adaptive gradient restart of O'Donoghue & Candes
    (Found. Comput. Math. 2015): the momentum is reset when ``<y_k - x_{k+1}, x_{k+1} - x_k>
    > 0``, which keeps the ``O(1/k^2)`` rate and recovers linear convergence on strongly convex
    problems.

    Parameters
    ----------
    grad_f : callable
        ``x -> grad f(x)`` of the smooth term, Lipschitz with constant ``L``.
    prox_g : callable
        ``(v, s) -> argmin_x g(x) + ||x - v||^2 / (2 s)``, the proximal operator of ``s g``.
    x0 : ndarray
        Starting point; its dtype is kept.
    step : float
        Step size ``s``, at most ``1 / L`` (see `power_iteration`).
    max_iter : int, optional
        Maximum iterations.
    tol : float, optional
        Stop when ``||x_k - x_{k-1}|| <= tol ||x_k||``.
    restart : bool, optional
        Adaptive momentum restart.
    affine : bool, optional
        Declare ``grad_f`` affine (``f`` quadratic, e.g. least squares): it is then evaluated
        only at the iterates ``x_k``, and at the extrapolated points by the same linear
        combination, at no extra cost. `objective` (if given) is called on each ``x_k`` right
        after ``grad_f(x_k)``, so a caller may reuse the residual computed there.
    objective : callable, optional
        ``x -> f(x) + g(x)``, recorded at the start and after each iteration.

    Returns
    -------
    x : ndarray
        Final iterate ``x_k`` (a point in the domain of ``g``).
    info : FISTAInfo
        Iterations, convergence flag, relative change, objective history, restarts, step.

    Raises
    ------
    ValueError
        If `step` is not positive, or `grad_f` / `prox_g` changes the shape of `x0`.
    FloatingPointError
        If an iterate becomes non-finite (usually a step above ``1 / L``).
    """
    x = _float_array("x0", x0).copy()
    if not np.isfinite(step) or step <= 0:
        raise ValueError(f"step: expected a positive finite step (1 / Lipschitz), got {step!r}")
    step = float(step)
    max_iter = _check_iterations("max_iter", max_iter)
    tol = _check_tolerance("tol", tol)

    def checked(name: str, value: np.ndarray) -> np.ndarray:
        if np.shape(value) != x.shape:
            raise ValueError(f"{name}: expected an array of shape {x.shape}, got {np.shape(value)}")
        return value

    def gradient_at(point: np.ndarray) -> np.ndarray:
        return checked("grad_f", np.asarray(grad_f(point)))

    history = []
    grad_x = gradient_at(x)  # at x_0 = y_0
    if objective is not None:
        history.append(float(objective(x)))
    y, grad_y = x, grad_x
    t = 1.0
    restarts = 0
    change = np.inf
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 (the count is returned)
        x_next = checked("prox_g", np.asarray(prox_g(y - step * grad_y, step), dtype=x.dtype))
        delta = x_next - x
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below
            delta_norm = float(np.linalg.norm(delta.ravel()))
            scale = float(np.linalg.norm(x_next.ravel()))
        if not (np.isfinite(delta_norm) and np.isfinite(scale)):
            raise FloatingPointError(
                f"fista: the iterate became non-finite at iteration {iterations}; step={step:.3e} "
                "is probably above 1 / Lipschitz constant of grad_f"
            )
        change = delta_norm / scale if scale > 0 else 0.0
        if affine:
            grad_next = gradient_at(x_next)
        if objective is not None:
            history.append(float(objective(x_next)))
        t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        momentum = (t - 1.0) / t_next
        if restart and np.vdot(y - x_next, delta).real > 0:
            t_next, momentum = 1.0, 0.0
            restarts += 1
        if change <= tol:
            x = x_next
            break
        y = x_next + momentum * delta if momentum else x_next
        if affine:
            # grad f(x + m d) = grad f(x) + m (grad f(x) - grad f(x_prev)) for affine grad f.
            grad_y = grad_next + momentum * (grad_next - grad_x) if momentum else grad_next
            grad_x = grad_next
        else:
            grad_y = gradient_at(y)
        x, t = x_next, t_next
    info = FISTAInfo(iterations, change <= tol, change, np.asarray(history), restarts, step)
    return x, info


def power_iteration(
    apply_op: Callable[[np.ndarray], np.ndarray],
    shape: Sequence[int],
    *,
    dtype: Any = np.float64,
    max_iter: int = 100,
    tol: float = 1e-6,
    seed: int = 0,
) -> float:
    """Largest eigenvalue of a Hermitian positive semidefinite operator, e.g. ``A^T A``.

    The Rayleigh quotient of the power iteration from a random start; it approaches the largest
    eigenvalue from below, so a step ``1 / L`` built from it needs a small margin.

    Parameters
    ----------
    apply_op : callable
        ``x -> M x`` on arrays of `shape`, e.g. ``lambda x: adjoint(forward(x))``.
    shape : sequence of int
        Shape of the operator's input.
    dtype : dtype, optional
        Dtype of the start (complex for complex operators).
    max_iter : int, optional
        Maximum iterations.
    tol : float, optional
        Stop when the estimate changes by less than `tol` relative to itself.
    seed : int, optional
        Seed of the random start.

    Returns
    -------
    float
        The estimate of ``||M||`` (0 for a zero operator).

    Raises
    ------
    ValueError
        If ``apply_op`` changes the shape.
    """
    max_iter = _check_iterations("max_iter", max_iter)
    tol = _check_tolerance("tol", tol)
    shape = tuple(int(n) for n in shape)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    if np.issubdtype(np.dtype(dtype), np.complexfloating):
        x = x + 1j * rng.standard_normal(shape)
    x = (x / np.linalg.norm(x.ravel())).astype(dtype)
    estimate = 0.0
    for _ in range(max_iter):
        image = np.asarray(apply_op(x))
        if image.shape != shape:
            raise ValueError(f"apply_op: expected an array of shape {shape}, got {image.shape}")
        previous, estimate = estimate, float(np.vdot(x, image).real)  # ||x|| = 1
        norm = float(np.linalg.norm(image.ravel()))
        if norm == 0:
            return 0.0
        x = (image / norm).astype(dtype, copy=False)
        if abs(estimate - previous) <= tol * abs(estimate):
            break
    return estimate


def tv_least_squares(
    forward: Callable[[np.ndarray], np.ndarray],
    adjoint: Callable[[np.ndarray], np.ndarray],
    y: np.ndarray,
    *,
    lam: float,
    weights: Sequence[float] | float | None = None,
    isotropic: bool = True,
    lower: float | np.ndarray | None = 0.0,
    upper: float | np.ndarray | None = None,
    x0: np.ndarray | None = None,
    step: float | None = None,
    max_iter: int = 300,
    tol: float = 1e-5,
    restart: bool = True,
    tv_max_iter: int = 10,
    tv_tol: float = 1e-4,
    record_objective: bool = True,
) -> tuple[np.ndarray, FISTAInfo]:
    r"""Total-variation regularized least squares with a box constraint, by FISTA.

    .. math::

        \min_{l \le x \le u} \tfrac12 \|A x - y\|^2 + \lambda\, TV_w(x)

    for a linear operator ``A`` given as functions. Each iteration applies ``A`` and ``A^T``
    once (the gradient at the extrapolated point follows from linearity) and runs at most
    `tv_max_iter` FGP iterations of `prox_tv`, warm-started from the previous dual.

    Parameters
    ----------
    forward, adjoint : callable
        ``x -> A x`` and ``r -> A^T r``; ``adjoint(y)`` has the shape of the unknown.
    y : ndarray
        Measurements (their float dtype sets the working precision).
    lam : float
        TV weight ``lambda`` (>= 0), in units of ``y^2 / x`` per unit of total variation.
    weights : sequence of float or float, optional
        Per-axis TV weights of the unknown, e.g. ``(w_t, 1, 1)`` for a video (T, H, W); all
        ones by default (see `total_variation`).
    isotropic : bool, optional
        Isotropic (True) or anisotropic TV.
    lower, upper : float or ndarray or None, optional
        Box constraint; non-negativity (``lower=0``) by default, ``None`` for no bound.
    x0 : ndarray, optional
        Starting point; zero by default.
    step : float, optional
        FISTA step; ``1 / (1.05 ||A^T A||)`` from `power_iteration` by default.
    max_iter, tol, restart :
        As in `fista`.
    tv_max_iter, tv_tol : optional
        Iterations and tolerance of each inner `prox_tv`.
    record_objective : bool, optional
        Record the objective after each iteration (the data term is free; TV costs one
        gradient of the iterate).

    Returns
    -------
    x : ndarray
        The reconstruction, within the box.
    info : FISTAInfo
        Convergence record.

    Raises
    ------
    ValueError
        If `lam` is negative, `x0` does not have the shape of ``adjoint(y)``, or ``A`` is zero.
    """
    y = _float_array("y", y)
    if not np.isfinite(lam) or lam < 0:
        raise ValueError(f"lam: expected a finite TV weight >= 0, got {lam!r}")
    lam = float(lam)
    back = np.asarray(adjoint(y))
    shape, dtype = back.shape, np.result_type(back.dtype, y.dtype)
    if x0 is None:
        x0 = np.zeros(shape, dtype)
    else:
        x0 = _float_array("x0", x0)
        if x0.shape != shape:
            raise ValueError(f"x0: expected the shape of adjoint(y) {shape}, got {x0.shape}")
        x0 = x0.astype(dtype)
    weights = _axis_weights(weights, len(shape))
    if step is None:
        lipschitz = power_iteration(lambda x: adjoint(forward(x)), shape, dtype=dtype, tol=1e-3)
        if lipschitz <= 0:
            raise ValueError("forward: the operator A is zero (||A^T A|| = 0); nothing to fit")
        step = 1.0 / (1.05 * lipschitz)  # the power estimate is a lower bound

    data_term: dict[str, Any] = {}

    def grad_f(x):
        residual = np.asarray(forward(x)) - y
        data_term["x"], data_term["value"] = x, 0.5 * float(np.vdot(residual, residual).real)
        return adjoint(residual)

    dual: dict[str, np.ndarray | None] = {"p": None}

    def prox_g(v, s):
        result = prox_tv(
            v,
            s * lam,
            weights=weights,
            isotropic=isotropic,
            lower=lower,
            upper=upper,
            max_iter=tv_max_iter,
            tol=tv_tol,
            dual=dual["p"],
        )
        dual["p"] = result.dual
        return result.x

    def objective(x):
        if data_term.get("x") is not x:
            grad_f(x)  # only for the start when it was not the last gradient point
        return data_term["value"] + lam * total_variation(x, weights, isotropic=isotropic)

    return fista(
        grad_f,
        prox_g,
        x0,
        step=step,
        max_iter=max_iter,
        tol=tol,
        restart=restart,
        affine=True,
        objective=objective if record_objective else None,
    )
