"""Ground-truth sample motion: displacement fields and backward warping, in 2D and 3D.

Conventions
-----------
* A 2D field has shape ``(frames, H, W, 2)`` and holds the components ``(dy, dx)`` along the image
  axes ``(y, x) = (row, col)``; a 3D field has shape ``(frames, Z, H, W, 3)`` and holds
  ``(dz, dy, dx)`` along the volume axes ``(z, y, x)``. Displacements are in pixels (voxels along
  each axis: ``dz`` in z steps, ``dy`` and ``dx`` in lateral pixels).
* Backward warp: the scene at time ``t`` at pixel ``r`` equals the canonical scene at
  ``r + d(r, t)``.
* Times are normalized to ``[-1, 1]``. Every field vanishes at ``t = 0``, so the canonical scene is
  the scene at ``t = 0``.
* A field is a fixed function of ``(r, t)`` for a given seed, canvas and field of view: asking for a
  different set of times gives consistent values (useful to render ground truth at evaluation
  times that were not simulated).
* The field may be defined on a canvas larger than the field of view (FOV), e.g. to simulate
  non-periodic boundaries; the FOV is the central ``fov_shape`` window (see :func:`fov_slices`),
  and ``max_displacement_px`` is reached inside it.
* Magnitudes ``|d|`` are taken in pixel units along every axis, ``sqrt(dz^2 + dy^2 + dx^2)``: with
  a z step different from the lateral pixel, an axial pixel counts as much as a lateral one.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..validation import (
    check_any_shape,
    check_nonnegative,
    check_normalized_times,
    check_shape,
)

__all__ = ["MOTIONS", "displacement_field", "fov_slices", "warp", "warp_sequence"]

MOTIONS: tuple[str, ...] = ("none", "translation", "rotation", "elastic")

# Coarse grid of times on which the elastic field's maximum is searched before local refinement.
_NORMALIZATION_TIMES = np.linspace(-1.0, 1.0, 129)
_REFINE_CANDIDATES = 3

# Temporal basis of the elastic motion: smooth, all zero at t = 0, mixing a drift (t), a
# symmetric excursion (t^2) and a back-and-forth oscillation (sin(pi t)).
_ELASTIC_WEIGHTS = (1.0, 0.7, 0.5)

# Options accepted for every shape, and those that only make sense for a volume.
_OPTIONS = {
    "none": (),
    "translation": ("direction",),
    "rotation": ("angle_sign", "center"),
    "elastic": ("correlation_length_px",),
}
_OPTIONS_3D = {
    "none": (),
    "translation": ("lateral",),
    "rotation": ("axis", "tilt_deg"),
    "elastic": ("lateral",),
}

_WARP_MODES = ("nearest", "reflect", "mirror", "grid-wrap", "wrap", "constant", "grid-constant")
_AXES = {2: "(H, W)", 3: "(Z, H, W)"}
_COMPONENTS = {2: "(dy, dx)", 3: "(dz, dy, dx)"}


# ----------------------------------------------------------------------------------------------
# Displacement fields
# ----------------------------------------------------------------------------------------------
def fov_slices(shape: tuple[int, ...], fov_shape: tuple[int, ...]) -> tuple[slice, ...]:
    """Slices selecting the central field of view of a canvas (any number of axes).

    Parameters
    ----------
    shape : tuple of int
        Canvas size in pixels, e.g. ``(H, W)`` or ``(Z, H, W)``.
    fov_shape : tuple of int
        Field-of-view size in pixels, as many axes as ``shape`` and each at most the canvas.

    Returns
    -------
    tuple of slice
        One slice per axis; along an axis of ``n`` canvas pixels and ``m`` FOV pixels the FOV
        starts at ``(n - m) // 2``.

    Raises
    ------
    ValueError
        If a shape is not a sequence of positive integers, the two have different numbers of
        axes, or the FOV does not fit inside the canvas.
    """
    shape = check_any_shape("shape", shape)
    fov_shape = check_shape("fov_shape", fov_shape, ndim=len(shape))
    if any(m > n for n, m in zip(shape, fov_shape, strict=True)):
        raise ValueError(
            f"fov_shape: expected a window inside the canvas shape {shape} (no axis larger), "
            f"got {fov_shape}"
        )
    starts = [(n - m) // 2 for n, m in zip(shape, fov_shape, strict=True)]
    return tuple(slice(s, s + m) for s, m in zip(starts, fov_shape, strict=True))


def displacement_field(
    kind: str,
    shape: tuple[int, ...],
    times: np.ndarray,
    *,
    max_displacement_px: float,
    rng: np.random.Generator | int | None = None,
    fov_shape: tuple[int, ...] | None = None,
    **opts,
) -> np.ndarray:
    """Displacement field of a moving sample (backward-warp convention), in 2D or 3D.

    Parameters
    ----------
    kind : str
        One of :data:`MOTIONS`:

        ``"none"``
            All zeros.
        ``"translation"``
            Rigid shift ``d(t) = max_displacement_px * t * u`` with unit direction ``u``.
            Option ``direction``: ``(dy, dx)`` (2D) or ``(dz, dy, dx)`` (3D) vector of any
            non-zero length; default random: a uniform angle in 2D, a direction uniform on the
            sphere in 3D. 3D option ``lateral`` (bool, default False): draw the random direction
            in the ``(y, x)`` plane (``dz = 0``), as in 2D.
        ``"rotation"``
            Rigid rotation about ``center``, angle ``theta(t) = sign * theta_max * t`` and
            ``d(r, t) = (R(theta) - I)(r - center)``; ``theta_max`` is set so that the largest
            ``|d| = 2 |sin(theta / 2)| rho`` over the FOV (``rho`` the distance from the
            rotation axis, largest at a FOV corner, for ``|t| = 1``) equals
            ``max_displacement_px``. Options ``angle_sign`` (+1 or -1, default random) and
            ``center`` (``(y, x)`` or ``(z, y, x)`` in canvas pixels, default the FOV centre).
            Requires ``max_displacement_px <=`` twice that largest distance. In 3D the axis is
            ``axis`` (a ``(z, y, x)`` vector, default ``(1, 0, 0)``, the optical axis: then
            ``dz = 0`` and every plane turns like the 2D rotation, counter-clockwise from +x
            towards +y for a positive angle), tilted by ``tilt_deg`` degrees (default 0, at most
            90) towards a random azimuth.
        ``"elastic"``
            Smooth non-rigid deformation ``d(r, t) = t M1(r) + 0.7 t^2 M2(r) + 0.5 sin(pi t)
            M3(r)``: each ``Mk`` holds one independent Gaussian random field per component
            (white noise low-pass filtered so that its autocorrelation is
            ``exp(-sum_a dr_a^2 / (2 l_a^2))``), generated over the whole canvas. The field is
            then scaled so that the maximum of ``|d|`` over the FOV and over ``t`` in ``[-1, 1]``
            (searched on 129 uniform times, refined around the best ones to ~1e-7 relative)
            equals ``max_displacement_px``; the maximum over the requested ``times`` is
            therefore at most that, and equal to it when they sample the peak. Option
            ``correlation_length_px`` (``l``: one length, or one per axis; default a quarter of
            the smaller lateral FOV side, on every axis). 3D option ``lateral`` (bool, default
            False): ``dz = 0``, only ``dy`` and ``dx`` are drawn.
    shape : tuple of int
        Canvas size ``(H, W)`` or ``(Z, H, W)`` in pixels.
    times : array_like, shape (frames,)
        Normalized times in ``[-1, 1]``.
    max_displacement_px : float
        Largest ``|d|`` (px) over the FOV and ``t`` in ``[-1, 1]``; >= 0. For translation and
        rotation it is reached at ``|t| = 1``.
    rng : numpy.random.Generator or int, optional
        Random generator (or seed) for directions, signs, tilts and elastic modes. ``None``
        draws fresh entropy.
    fov_shape : tuple of int, optional
        Central field of view (px, as many axes as ``shape``) over which the maximum is
        normalized; default ``shape``.
    **opts
        Kind-specific options listed above; unknown options raise ``ValueError``.

    Returns
    -------
    ndarray, shape (frames, H, W, 2) or (frames, Z, H, W, 3), float32
        Displacements ``(dy, dx)`` or ``(dz, dy, dx)`` in pixels.

    Raises
    ------
    ValueError
        On an unknown ``kind`` or option, invalid shapes, times outside ``[-1, 1]`` or not
        finite, a negative or non-finite ``max_displacement_px``, or an unreachable rotation.
    TypeError
        If ``max_displacement_px`` is not a number.

    Notes
    -----
    For a 2D shape the draws and the arithmetic are those of the 2D-only version of this
    function: the same seed gives the same field, bit for bit.
    """
    if not isinstance(kind, str) or kind not in MOTIONS:
        raise ValueError(f"kind: expected one of {MOTIONS}, got {kind!r}")
    shape = check_shape("shape", shape, ndim=(2, 3))
    ndim = len(shape)
    accepted = _OPTIONS[kind] + (_OPTIONS_3D[kind] if ndim == 3 else ())
    unknown = sorted(set(opts) - set(accepted))
    if unknown:
        only_3d = sorted(set(unknown) & set(_OPTIONS_3D[kind])) if ndim == 2 else []
        hint = f" ({only_3d} only for a 3D shape)" if only_3d else ""
        raise ValueError(
            f"opts: unknown option(s) {unknown} for kind {kind!r} and a {ndim}D shape{hint}; "
            f"accepted: {list(accepted)}"
        )
    fov_shape = shape if fov_shape is None else check_shape("fov_shape", fov_shape, ndim=ndim)
    fov = fov_slices(shape, fov_shape)
    times = check_normalized_times("times", times)
    max_d = check_nonnegative("max_displacement_px", max_displacement_px, "px")
    generator = np.random.default_rng(rng)

    if kind == "none" or max_d == 0:
        return np.zeros((times.size, *shape, ndim), dtype=np.float32)
    if kind == "translation":
        field = _translation(shape, times, max_d, generator, **opts)
    elif kind == "rotation":
        if ndim == 2:
            field = _rotation(shape, times, max_d, fov, generator, **opts)
        else:
            field = _rotation_3d(shape, times, max_d, fov, generator, **opts)
    else:
        field = _elastic(shape, fov_shape, times, max_d, fov, generator, **opts)
    return np.ascontiguousarray(field, dtype=np.float32)


def _translation(shape, times, max_d, rng, direction=None, lateral=False) -> np.ndarray:
    ndim = len(shape)
    if direction is None:
        if ndim == 2 or lateral:
            angle = rng.uniform(0.0, 2.0 * np.pi)
            unit = np.array([np.sin(angle), np.cos(angle)])
            if ndim == 3:
                unit = np.concatenate([[0.0], unit])
        else:
            # Isotropic Gaussian vectors have uniformly distributed directions.
            unit = rng.standard_normal(3)
            while not np.linalg.norm(unit) > 0:  # probability zero, but never divide by it
                unit = rng.standard_normal(3)
            unit = unit / np.linalg.norm(unit)
    else:
        if lateral:
            raise ValueError("lateral: not with an explicit direction (set its dz to 0 instead)")
        unit = np.asarray(direction, dtype=np.float64)
        norm = np.linalg.norm(unit) if unit.shape == (ndim,) else 0.0
        if not np.isfinite(norm) or norm == 0:
            raise ValueError(
                f"direction: expected a non-zero finite {_COMPONENTS[ndim]} vector, "
                f"got {direction!r}"
            )
        unit = unit / norm
    step = max_d * times[:, None] * unit  # (frames, ndim)
    field = np.empty((times.size, *shape, ndim), dtype=np.float32)
    field[...] = step[(slice(None), *([None] * ndim), slice(None))]
    return field


def _fov_center(fov: tuple[slice, ...]) -> tuple[float, ...]:
    return tuple((s.start + s.stop - 1) / 2 for s in fov)


def _check_center(center, ndim: int) -> np.ndarray:
    array = np.asarray(center, dtype=np.float64)
    if array.shape != (ndim,) or not np.all(np.isfinite(array)):
        axes = "(y, x)" if ndim == 2 else "(z, y, x)"
        raise ValueError(f"center: expected a finite {axes} point in canvas pixels, got {center!r}")
    return array


def _check_angle_sign(angle_sign, rng: np.random.Generator) -> float:
    if angle_sign is None:
        angle_sign = 1.0 if rng.random() < 0.5 else -1.0
    if angle_sign not in (1, -1):
        raise ValueError(f"angle_sign: expected +1 or -1, got {angle_sign!r}")
    return angle_sign


def _check_reachable(max_d: float, radius: float) -> float:
    """Largest rotation angle (rad) for a displacement ``max_d`` at distance ``radius``."""
    if max_d > 2 * radius:
        raise ValueError(
            f"max_displacement_px: expected <= {2 * radius:.3f} px (twice the largest FOV "
            f"distance from the rotation axis) for a rotation, got {max_d}"
        )
    return 2.0 * np.arcsin(max_d / (2.0 * radius))


def _rotation(shape, times, max_d, fov, rng, angle_sign=None, center=None) -> np.ndarray:
    rows, cols = fov
    center = _check_center(_fov_center(fov) if center is None else center, 2)
    angle_sign = _check_angle_sign(angle_sign, rng)
    # Largest radius over the FOV is at one of its corner pixels.
    corner_y = np.array([rows.start, rows.stop - 1], dtype=np.float64) - center[0]
    corner_x = np.array([cols.start, cols.stop - 1], dtype=np.float64) - center[1]
    radius = np.hypot(np.abs(corner_y).max(), np.abs(corner_x).max())
    theta_max = _check_reachable(max_d, radius)
    theta = angle_sign * theta_max * times  # (frames,)
    yy, xx = np.indices(shape, dtype=np.float64)
    ry, rx = yy - center[0], xx - center[1]
    field = np.empty((times.size, *shape, 2), dtype=np.float32)
    for f, angle in enumerate(theta):  # frame by frame: no (frames, H, W) float64 temporaries
        cos_m1, sin = np.cos(angle) - 1.0, np.sin(angle)
        field[f, ..., 0] = cos_m1 * ry - sin * rx
        field[f, ..., 1] = sin * ry + cos_m1 * rx
    return field


def _cross_matrix(axis: np.ndarray) -> np.ndarray:
    """K with K v = axis x v in (z, y, x) components.

    The cross product is taken with (z, y, x) as the ordered basis, so that about (1, 0, 0) the
    rotation R = I + sin K + (1 - cos) K^2 is the 2D rotation of :func:`_rotation` in every plane.
    """
    a0, a1, a2 = axis
    return np.array([[0.0, -a2, a1], [a2, 0.0, -a0], [-a1, a0, 0.0]])


def _rotation_3d(
    shape, times, max_d, fov, rng, angle_sign=None, center=None, axis=None, tilt_deg=0.0
) -> np.ndarray:
    center = _check_center(_fov_center(fov) if center is None else center, 3)
    angle_sign = _check_angle_sign(angle_sign, rng)
    raw_axis = (1.0, 0.0, 0.0) if axis is None else axis
    unit = np.asarray(raw_axis, dtype=np.float64)
    norm = np.linalg.norm(unit) if unit.shape == (3,) else 0.0
    if not np.isfinite(norm) or norm == 0:
        raise ValueError(f"axis: expected a non-zero finite (z, y, x) vector, got {axis!r}")
    unit = unit / norm
    try:
        tilt = float(tilt_deg)
    except (TypeError, ValueError):
        tilt = np.nan
    if not np.isfinite(tilt) or not 0.0 <= tilt <= 90.0:
        raise ValueError(f"tilt_deg: expected an angle in [0, 90] degrees, got {tilt_deg!r}")
    if tilt > 0:
        # Two unit vectors perpendicular to the axis; tilt it towards a random azimuth between them.
        helper = np.eye(3)[np.argmin(np.abs(unit))]
        first = helper - helper.dot(unit) * unit
        first /= np.linalg.norm(first)
        second = _cross_matrix(unit) @ first
        azimuth = rng.uniform(0.0, 2.0 * np.pi)
        sideways = np.cos(azimuth) * first + np.sin(azimuth) * second
        unit = np.cos(np.radians(tilt)) * unit + np.sin(np.radians(tilt)) * sideways
    # The distance to a line is convex, so its maximum over the FOV box is at a corner voxel.
    corners = np.array(np.meshgrid(*[(s.start, s.stop - 1) for s in fov], indexing="ij"))
    rel = corners.reshape(3, -1).T - center
    radius = np.linalg.norm(rel - np.outer(rel @ unit, unit), axis=1).max()
    theta_max = _check_reachable(max_d, radius)
    k1 = _cross_matrix(unit)
    k2 = k1 @ k1
    grid = np.stack(np.indices(shape, dtype=np.float64), axis=-1) - center  # (Z, H, W, 3)
    field = np.empty((times.size, *shape, 3), dtype=np.float32)
    for f, angle in enumerate(angle_sign * theta_max * times):
        # R - I by Rodrigues' formula; an exact zero row stays zero (dz = 0 about the z axis).
        matrix = np.sin(angle) * k1 + (1.0 - np.cos(angle)) * k2
        field[f] = grid @ matrix.T
    return field


def _check_lengths(correlation_length_px, fov_shape) -> float | tuple[float, ...]:
    """One positive length (px), or one per axis."""
    ndim = len(fov_shape)
    if correlation_length_px is None:
        return min(fov_shape[-2:]) / 4
    lengths = np.asarray(correlation_length_px, dtype=np.float64)
    if lengths.shape not in ((), (ndim,)) or not np.all(np.isfinite(lengths) & (lengths > 0)):
        raise ValueError(
            f"correlation_length_px: expected a positive length in px, or one per axis "
            f"{_AXES[ndim]}, got {correlation_length_px!r}"
        )
    if lengths.ndim == 0:
        return float(lengths)
    return tuple(float(v) for v in lengths)


def _elastic(
    shape, fov_shape, times, max_d, fov, rng, correlation_length_px=None, lateral=False
) -> np.ndarray:
    ndim = len(shape)
    length = _check_lengths(correlation_length_px, fov_shape)
    drawn = ndim - 1 if lateral else ndim  # a lateral 3D field has no dz to draw

    def mode() -> np.ndarray:
        components = [_gaussian_random_field(shape, length, rng) for _ in range(drawn)]
        if drawn < ndim:
            components.insert(0, np.zeros(shape))
        return np.stack(components, -1)

    # modes: (K, *shape, ndim), each drawn component a unit-variance Gaussian random field.
    modes = np.stack([weight * mode() for weight in _ELASTIC_WEIGHTS])
    peak = _peak_over_time(modes[(slice(None), *fov)])
    if peak == 0:
        return np.zeros((times.size, *shape, ndim), dtype=np.float32)
    modes = (modes * (max_d / peak)).astype(np.float32)
    return np.tensordot(_elastic_basis(times).astype(np.float32), modes, axes=1)


def _elastic_basis(times: np.ndarray) -> np.ndarray:
    """Temporal basis (frames, K) of the elastic motion; every function is 0 at t = 0."""
    return np.stack([times, times**2, np.sin(np.pi * times)], axis=-1)


def _peak_over_time(modes: np.ndarray) -> float:
    """max over t in [-1, 1] and pixels of |d(r, t)| for the elastic basis and ``modes``.

    Searched on a uniform grid of times, then refined around the best few grid times; it depends
    only on the modes (not on the requested times), so the field is a fixed function of t.
    """
    # |d(r, t)|^2 = sum_jk f_j(t) f_k(t) <M_j(r), M_k(r)>: one Gram matrix per pixel makes each
    # time a cheap (pairs,) @ (pairs, P) product instead of assembling the whole field.
    pairs = [(j, k) for j in range(modes.shape[0]) for k in range(j, modes.shape[0])]
    flat = modes.reshape(modes.shape[0], -1, modes.shape[-1])
    gram = np.stack([(1 + (j != k)) * np.einsum("pc,pc->p", flat[j], flat[k]) for j, k in pairs])

    def peak_per_time(times: np.ndarray) -> np.ndarray:
        basis = _elastic_basis(times)
        coef = np.stack([basis[:, j] * basis[:, k] for j, k in pairs], axis=-1)
        chunk = max(1, 2**22 // gram.shape[1])
        sq = [(coef[i : i + chunk] @ gram).max(-1) for i in range(0, len(times), chunk)]
        return np.sqrt(np.maximum(np.concatenate(sq), 0.0))

    coarse = _NORMALIZATION_TIMES
    per_time = peak_per_time(coarse)
    step = coarse[1] - coarse[0]
    best = coarse[np.argsort(per_time)[-_REFINE_CANDIDATES:]]
    fine = np.clip((best[:, None] + np.linspace(-step, step, 33)).ravel(), -1.0, 1.0)
    return float(max(per_time.max(), peak_per_time(fine).max()))


def _gaussian_random_field(
    shape: tuple[int, ...], length: float | tuple[float, ...], rng: np.random.Generator
) -> np.ndarray:
    """Unit-variance Gaussian random field with autocorrelation exp(-sum_a dr_a^2 / (2 l_a^2)).

    White noise is low-pass filtered in Fourier space with a Gaussian of standard deviation
    ``s_a = l_a / sqrt(2)`` (px) along axis ``a`` on a canvas padded by ``3 s_a`` on each side, so
    that the periodic wrap-around of the FFT does not correlate opposite edges. ``length`` is one
    ``l`` for every axis or one per axis.

    In 3D the noise is drawn on a grid coarser by ``floor(s_a / 2)`` px along each axis and
    interpolated with cubic splines: the spectrum is down to ``exp(-2 pi^2) ~ 3e-9`` at that
    grid's Nyquist frequency, so nothing aliases, and a volume costs a few coarse FFTs instead of
    FFTs of the padded canvas. 2D fields are drawn at full resolution, as they always were.
    """
    ndim = len(shape)
    isotropic = np.ndim(length) == 0
    sigmas = (length,) * ndim if isotropic else tuple(length)
    sigmas = tuple(s / np.sqrt(2.0) for s in sigmas)
    pads = tuple(int(np.ceil(3 * s)) for s in sigmas)
    steps = (1,) * ndim if ndim == 2 else tuple(max(1, int(s // 2)) for s in sigmas)
    if all(step == 1 for step in steps):
        padded = tuple(n + 2 * p for n, p in zip(shape, pads, strict=True))
        field = _filtered_noise(padded, sigmas, isotropic, rng)
        field = field[tuple(slice(p, p + n) for p, n in zip(pads, shape, strict=True))]
    else:
        # Coarse sample j of axis a sits at fine coordinate -pad_a + j * step_a.
        coarse = tuple(
            int(np.ceil((n - 1 + 2 * p) / f)) + 1
            for n, p, f in zip(shape, pads, steps, strict=True)
        )
        coarse_sigmas = tuple(s / f for s, f in zip(sigmas, steps, strict=True))
        values = _filtered_noise(coarse, coarse_sigmas, False, rng)
        axes = [(np.arange(n) + p) / f for n, p, f in zip(shape, pads, steps, strict=True)]
        coords = np.stack(np.meshgrid(*axes, indexing="ij", sparse=False))
        field = ndimage.map_coordinates(values, coords, order=3, mode="nearest")
    std = field.std()
    return field / std if std > 0 else field


def _filtered_noise(
    shape: tuple[int, ...], sigmas: tuple[float, ...], isotropic: bool, rng: np.random.Generator
) -> np.ndarray:
    """White noise on ``shape`` filtered (periodically) by a Gaussian of std ``sigmas`` (px)."""
    ndim = len(shape)
    noise = rng.standard_normal(shape)
    freqs = [np.fft.fftfreq(n) for n in shape[:-1]] + [np.fft.rfftfreq(shape[-1])]
    grids = [f.reshape([-1 if a == i else 1 for a in range(ndim)]) for i, f in enumerate(freqs)]
    if isotropic:  # the 2D-only version's arithmetic, kept bit for bit
        transfer = np.exp(-2.0 * (np.pi * sigmas[0]) ** 2 * sum(k**2 for k in grids))
    else:
        exponent = sum((np.pi * s) ** 2 * k**2 for s, k in zip(sigmas, grids, strict=True))
        transfer = np.exp(-2.0 * exponent)
    axes = tuple(range(ndim))
    return np.fft.irfftn(np.fft.rfftn(noise, axes=axes) * transfer, s=shape, axes=axes)


# ----------------------------------------------------------------------------------------------
# Warping
# ----------------------------------------------------------------------------------------------
def warp(
    image: np.ndarray,
    displacement: np.ndarray,
    *,
    order: int = 3,
    mode: str = "nearest",
    cval: float = 0.0,
) -> np.ndarray:
    """Backward-warp an image or a volume: ``warped(r) = image(r + d(r))``.

    Parameters
    ----------
    image : array_like, shape (..., H, W) or (..., Z, H, W)
        Image or volume, or a batch of them (any leading axes, e.g. channels); real-valued. The
        displacement's shape says which: its last ``n`` spatial axes are warped.
    displacement : array_like, shape (H, W, 2) or (Z, H, W, 3)
        Displacement ``(dy, dx)`` or ``(dz, dy, dx)`` in pixels.
    order : int, optional
        Spline order of :func:`scipy.ndimage.map_coordinates` (0-5). The default cubic spline is
        accurate for smooth images but may overshoot slightly at sharp edges.
    mode : str, optional
        How samples outside the image are filled (a :func:`scipy.ndimage.map_coordinates` mode).
        The default ``"nearest"`` repeats the edge pixel, which suits a sample surrounded by a
        uniform background; simulate on a canvas larger than the field of view to keep the
        boundary out of the region of interest.
    cval : float, optional
        Fill value for the ``"constant"`` modes.

    Returns
    -------
    ndarray, same shape as ``image``, float32
        The warped image(s) or volume(s).

    Raises
    ------
    ValueError
        On mismatched shapes, non-finite displacements, or an invalid ``order`` / ``mode``.
    """
    image = np.asarray(image)
    displacement = np.asarray(displacement)
    if np.iscomplexobj(image):
        raise ValueError(f"image: expected real values, got dtype {image.dtype}")
    ndim = _spatial_ndim(displacement)
    spatial = displacement.shape[:-1]
    if image.ndim < ndim or image.shape[-ndim:] != spatial:
        axes = "(H, W, 2)" if ndim == 2 else "(Z, H, W, 3)"
        raise ValueError(
            f"displacement: expected shape {axes} = {(*image.shape[-ndim:], ndim)} matching the "
            f"last {ndim} axes of the image (shape {image.shape}), got {displacement.shape}"
        )
    coords = _sample_coordinates(displacement)
    _validate_interpolation(order, mode)
    batch = image.reshape(-1, *spatial)
    out = np.empty(batch.shape, dtype=np.float32)
    for i, plane in enumerate(batch):
        out[i] = ndimage.map_coordinates(
            plane.astype(np.float64), coords, order=order, mode=mode, cval=cval
        )
    return out.reshape(image.shape)


def warp_sequence(
    image: np.ndarray,
    displacements: np.ndarray,
    *,
    order: int = 3,
    mode: str = "nearest",
    cval: float = 0.0,
) -> np.ndarray:
    """Warp one canonical image or volume by a sequence of displacement fields.

    Parameters
    ----------
    image : array_like, shape (H, W) or (Z, H, W)
        Canonical image or volume (real).
    displacements : array_like, shape (frames, H, W, 2) or (frames, Z, H, W, 3)
        Displacements ``(dy, dx)`` or ``(dz, dy, dx)`` in pixels, e.g. from
        :func:`displacement_field`.
    order, mode, cval
        As in :func:`warp`.

    Returns
    -------
    ndarray, shape (frames, H, W) or (frames, Z, H, W), float32
        ``out[f](r) = image(r + displacements[f](r))``.

    Raises
    ------
    ValueError
        If ``image`` is neither 2D nor 3D or ``displacements`` does not match it.
    """
    image = np.asarray(image)
    displacements = np.asarray(displacements)
    if image.ndim not in (2, 3):
        raise ValueError(
            f"image: expected an image (H, W) or a volume (Z, H, W), got shape {image.shape}"
        )
    ndim = image.ndim
    if displacements.shape[1:] != (*image.shape, ndim) or displacements.ndim != ndim + 2:
        raise ValueError(
            f"displacements: expected shape (frames, {_AXES[ndim][1:-1]}, {ndim}) = (frames, "
            f"{', '.join(str(n) for n in image.shape)}, {ndim}) matching the image, "
            f"got {displacements.shape}"
        )
    out = np.empty((displacements.shape[0], *image.shape), dtype=np.float32)
    for f, displacement in enumerate(displacements):
        out[f] = warp(image, displacement, order=order, mode=mode, cval=cval)
    return out


def _spatial_ndim(displacement: np.ndarray) -> int:
    """2 or 3: the number of spatial axes of a displacement field (its last axis' length)."""
    ndim = displacement.shape[-1] if displacement.ndim else 0
    if ndim not in (2, 3) or displacement.ndim != ndim + 1:
        raise ValueError(
            f"displacement: expected shape (H, W, 2) for an image or (Z, H, W, 3) for a volume, "
            f"got {displacement.shape}"
        )
    return ndim


def _sample_coordinates(displacement: np.ndarray) -> np.ndarray:
    """Coordinates (n, *spatial) at which to sample: r + d(r)."""
    if not np.all(np.isfinite(displacement)):
        raise ValueError("displacement: expected finite values in pixels, got NaN or inf")
    grid = np.indices(displacement.shape[:-1], dtype=np.float64)
    return grid + np.moveaxis(displacement.astype(np.float64), -1, 0)


def _validate_interpolation(order: int, mode: str) -> None:
    if not isinstance(order, (int, np.integer)) or not 0 <= order <= 5:
        raise ValueError(f"order: expected an integer spline order in 0..5, got {order!r}")
    if mode not in _WARP_MODES:
        raise ValueError(f"mode: expected one of {_WARP_MODES}, got {mode!r}")
