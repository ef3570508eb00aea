"""Ground-truth sample motion: displacement fields and backward warping.

Conventions
-----------
* Displacement fields have shape ``(frames, H, W, 2)``, are in pixels, and hold the components
  ``(dy, dx)`` along the image axes ``(y, x) = (row, col)``.
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
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["MOTIONS", "displacement_field", "fov_slices", "warp", "warp_sequence"]

MOTIONS: tuple[str, ...] = ("none", "translation", "rotation", "elastic")

# Coarse grid of times on which the elastic field's maximum is searched before local refinement.
_NORMALIZATION_TIMES = np.linspace(-1.0, 1.0, 129)
_REFINE_CANDIDATES = 3

# Temporal basis of the elastic motion: smooth, all zero at t = 0, mixing a drift (t), a
# symmetric excursion (t^2) and a back-and-forth oscillation (sin(pi t)).
_ELASTIC_WEIGHTS = (1.0, 0.7, 0.5)

_OPTIONS = {
    "none": (),
    "translation": ("direction",),
    "rotation": ("angle_sign", "center"),
    "elastic": ("correlation_length_px",),
}

_WARP_MODES = ("nearest", "reflect", "mirror", "grid-wrap", "wrap", "constant", "grid-constant")


# ----------------------------------------------------------------------------------------------
# Displacement fields
# ----------------------------------------------------------------------------------------------
def fov_slices(shape: tuple[int, int], fov_shape: tuple[int, int]) -> tuple[slice, slice]:
    """Slices selecting the central field of view of a canvas.

    Parameters
    ----------
    shape : tuple of int
        Canvas size ``(H, W)`` in pixels.
    fov_shape : tuple of int
        Field-of-view size ``(h, w)`` in pixels, ``h <= H`` and ``w <= W``.

    Returns
    -------
    tuple of slice
        ``(rows, cols)``; the FOV starts at row ``(H - h) // 2`` and column ``(W - w) // 2``.
    """
    shape = _validate_shape(shape, "shape")
    fov_shape = _validate_shape(fov_shape, "fov_shape")
    if fov_shape[0] > shape[0] or fov_shape[1] > shape[1]:
        raise ValueError(f"fov_shape must fit inside shape {shape}; got fov_shape={fov_shape}")
    starts = [(n - m) // 2 for n, m in zip(shape, fov_shape, strict=True)]
    return tuple(slice(s, s + m) for s, m in zip(starts, fov_shape, strict=True))


def displacement_field(
    kind: str,
    shape: tuple[int, int],
    times: np.ndarray,
    *,
    max_displacement_px: float,
    rng: np.random.Generator | int | None = None,
    fov_shape: tuple[int, int] | None = None,
    **opts,
) -> np.ndarray:
    """Displacement field of a moving sample (backward-warp convention).

    Parameters
    ----------
    kind : str
        One of :data:`MOTIONS`:

        ``"none"``
            All zeros.
        ``"translation"``
            Rigid shift ``d(t) = max_displacement_px * t * u`` with unit direction ``u``.
            Option ``direction``: ``(dy, dx)`` vector (any non-zero length); default: a random
            angle drawn from ``rng``.
        ``"rotation"``
            Rigid rotation about ``center``, angle ``theta(t) = sign * theta_max * t`` and
            ``d(r, t) = (R(theta) - I)(r - center)``; ``theta_max`` is set so that the largest
            ``|d| = 2 |sin(theta / 2)| |r - center|`` over the FOV (at its corners, for
            ``|t| = 1``) equals ``max_displacement_px``. Options ``angle_sign`` (+1 or -1,
            default random) and ``center`` (``(y, x)`` in canvas pixels, default the FOV centre).
            Requires ``max_displacement_px <=`` twice the centre-to-corner distance.
        ``"elastic"``
            Smooth non-rigid deformation ``d(r, t) = t M1(r) + 0.7 t^2 M2(r) + 0.5 sin(pi t)
            M3(r)``: each ``Mk`` holds two independent Gaussian random fields (white noise
            low-pass filtered so that its autocorrelation is ``exp(-|dr|^2 / (2 l^2))``),
            generated over the whole canvas. The field is then scaled so that the maximum of
            ``|d|`` over the FOV and over ``t`` in ``[-1, 1]`` (searched on 129 uniform times,
            refined around the best ones to ~1e-7 relative) equals ``max_displacement_px``; the
            maximum over the requested ``times`` is therefore at most that, and equal to it when
            they sample the peak. Option ``correlation_length_px`` (``l``, default a quarter of
            the smaller FOV side).
    shape : tuple of int
        Canvas size ``(H, W)`` in pixels.
    times : array_like, shape (frames,)
        Normalized times in ``[-1, 1]``.
    max_displacement_px : float
        Largest ``|d|`` (px) over the FOV and ``t`` in ``[-1, 1]``; >= 0. For translation and
        rotation it is reached at ``|t| = 1``.
    rng : numpy.random.Generator or int, optional
        Random generator (or seed) for directions, signs and elastic modes. ``None`` draws fresh
        entropy.
    fov_shape : tuple of int, optional
        Central field of view ``(h, w)`` (px) over which the maximum is normalized; default
        ``shape``.
    **opts
        Kind-specific options listed above; unknown options raise ``ValueError``.

    Returns
    -------
    ndarray, shape (frames, H, W, 2), float32
        Displacements ``(dy, dx)`` in pixels.

    Raises
    ------
    ValueError
        On an unknown ``kind`` or option, invalid shapes, times outside ``[-1, 1]`` or not
        finite, a negative or non-finite ``max_displacement_px``, or an unreachable rotation.
    """
    if not isinstance(kind, str) or kind not in MOTIONS:
        raise ValueError(f"kind must be one of {MOTIONS}; got {kind!r}")
    unknown = sorted(set(opts) - set(_OPTIONS[kind]))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for kind {kind!r}; accepted: {list(_OPTIONS[kind])}"
        )
    shape = _validate_shape(shape, "shape")
    fov_shape = shape if fov_shape is None else _validate_shape(fov_shape, "fov_shape")
    rows, cols = fov_slices(shape, fov_shape)
    times = _validate_times(times)
    max_d = float(max_displacement_px)
    if not np.isfinite(max_d) or max_d < 0:
        raise ValueError(
            f"max_displacement_px must be finite and >= 0 px; got {max_displacement_px!r}"
        )
    generator = np.random.default_rng(rng)

    if kind == "none" or max_d == 0:
        return np.zeros((times.size, *shape, 2), dtype=np.float32)
    if kind == "translation":
        field = _translation(shape, times, max_d, generator, **opts)
    elif kind == "rotation":
        field = _rotation(shape, times, max_d, (rows, cols), generator, **opts)
    else:
        field = _elastic(shape, fov_shape, times, max_d, (rows, cols), generator, **opts)
    return np.ascontiguousarray(field, dtype=np.float32)


def _translation(shape, times, max_d, rng, direction=None) -> np.ndarray:
    if direction is None:
        angle = rng.uniform(0.0, 2.0 * np.pi)
        unit = np.array([np.sin(angle), np.cos(angle)])
    else:
        unit = np.asarray(direction, dtype=np.float64)
        norm = np.linalg.norm(unit) if unit.shape == (2,) else 0.0
        if not np.isfinite(norm) or norm == 0:
            raise ValueError(
                f"direction must be a non-zero finite (dy, dx) vector; got {direction!r}"
            )
        unit = unit / norm
    step = max_d * times[:, None] * unit  # (frames, 2)
    field = np.empty((times.size, *shape, 2), dtype=np.float32)
    field[...] = step[:, None, None, :]
    return field


def _rotation(shape, times, max_d, fov, rng, angle_sign=None, center=None) -> np.ndarray:
    rows, cols = fov
    if center is None:
        center = ((rows.start + rows.stop - 1) / 2, (cols.start + cols.stop - 1) / 2)
    center = np.asarray(center, dtype=np.float64)
    if center.shape != (2,) or not np.all(np.isfinite(center)):
        raise ValueError(f"center must be a finite (y, x) pair in pixels; got {center!r}")
    if angle_sign is None:
        angle_sign = 1.0 if rng.random() < 0.5 else -1.0
    if angle_sign not in (1, -1):
        raise ValueError(f"angle_sign must be +1 or -1; got {angle_sign!r}")
    # Largest radius over the FOV is at one of its corner pixels.
    corner_y = np.array([rows.start, rows.stop - 1], dtype=np.float64) - center[0]
    corner_x = np.array([cols.start, cols.stop - 1], dtype=np.float64) - center[1]
    radius = np.hypot(np.abs(corner_y).max(), np.abs(corner_x).max())
    if max_d > 2 * radius:
        raise ValueError(
            f"max_displacement_px must be <= {2 * radius:.3f} px (twice the largest FOV radius "
            f"about center) for a rotation; got {max_d}"
        )
    theta_max = 2.0 * np.arcsin(max_d / (2.0 * radius))
    theta = angle_sign * theta_max * times  # (frames,)
    yy, xx = np.indices(shape, dtype=np.float64)
    ry, rx = yy - center[0], xx - center[1]
    field = np.empty((times.size, *shape, 2), dtype=np.float32)
    for f, angle in enumerate(theta):  # frame by frame: no (frames, H, W) float64 temporaries
        cos_m1, sin = np.cos(angle) - 1.0, np.sin(angle)
        field[f, ..., 0] = cos_m1 * ry - sin * rx
        field[f, ..., 1] = sin * ry + cos_m1 * rx
    return field


def _elastic(shape, fov_shape, times, max_d, fov, rng, correlation_length_px=None) -> np.ndarray:
    if correlation_length_px is None:
        correlation_length_px = min(fov_shape) / 4
    length = float(correlation_length_px)
    if not np.isfinite(length) or length <= 0:
        raise ValueError(
            f"correlation_length_px must be a positive length in px; got {correlation_length_px!r}"
        )
    # modes: (K, H, W, 2), each component a unit-variance Gaussian random field.
    modes = np.stack(
        [
            weight * np.stack([_gaussian_random_field(shape, length, rng) for _ in range(2)], -1)
            for weight in _ELASTIC_WEIGHTS
        ]
    )
    peak = _peak_over_time(modes[:, fov[0], fov[1], :])
    if peak == 0:
        return np.zeros((times.size, *shape, 2), dtype=np.float32)
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
    flat = modes.reshape(modes.shape[0], -1, 2)
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
    shape: tuple[int, int], length: float, rng: np.random.Generator
) -> np.ndarray:
    """Unit-variance Gaussian random field with autocorrelation exp(-|dr|^2 / (2 length^2)).

    White noise is low-pass filtered in Fourier space with a Gaussian of standard deviation
    ``length / sqrt(2)`` (px) on a canvas padded by three filter widths, so that the periodic
    wrap-around of the FFT does not correlate opposite edges.
    """
    sigma = length / np.sqrt(2.0)
    pad = int(np.ceil(3 * sigma))
    padded = (shape[0] + 2 * pad, shape[1] + 2 * pad)
    noise = rng.standard_normal(padded)
    ky = np.fft.fftfreq(padded[0])[:, None]
    kx = np.fft.rfftfreq(padded[1])[None, :]
    transfer = np.exp(-2.0 * (np.pi * sigma) ** 2 * (ky**2 + kx**2))
    field = np.fft.irfft2(np.fft.rfft2(noise) * transfer, s=padded)
    field = field[pad : pad + shape[0], pad : pad + shape[1]]
    std = field.std()
    return field / std if std > 0 else field


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
    """Backward-warp an image: ``warped(r) = image(r + d(r))``.

    Parameters
    ----------
    image : array_like, shape (..., H, W)
        Image or batch of images (any leading axes, e.g. channels); real-valued.
    displacement : array_like, shape (H, W, 2)
        Displacement ``(dy, dx)`` in pixels.
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
    ndarray, shape (..., H, W), float32
        The warped image(s).

    Raises
    ------
    ValueError
        On mismatched shapes, non-finite displacements, or an invalid ``order`` / ``mode``.
    """
    image = np.asarray(image)
    displacement = np.asarray(displacement)
    if image.ndim < 2 or np.iscomplexobj(image):
        raise ValueError(
            f"image must be a real array of shape (..., H, W); got shape {image.shape} "
            f"and dtype {image.dtype}"
        )
    height, width = image.shape[-2:]
    if displacement.shape != (height, width, 2):
        raise ValueError(
            f"displacement must have shape (H, W, 2) = {(height, width, 2)} matching the image; "
            f"got {displacement.shape}"
        )
    coords = _sample_coordinates(displacement)
    _validate_interpolation(order, mode)
    batch = image.reshape(-1, height, width)
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
    """Warp one canonical image by a sequence of displacement fields.

    Parameters
    ----------
    image : array_like, shape (H, W)
        Canonical image (real).
    displacements : array_like, shape (frames, H, W, 2)
        Displacements ``(dy, dx)`` in pixels, e.g. from :func:`displacement_field`.
    order, mode, cval
        As in :func:`warp`.

    Returns
    -------
    ndarray, shape (frames, H, W), float32
        ``out[f](r) = image(r + displacements[f](r))``.
    """
    image = np.asarray(image)
    displacements = np.asarray(displacements)
    if image.ndim != 2:
        raise ValueError(f"image must have shape (H, W); got {image.shape}")
    if displacements.ndim != 4 or displacements.shape[1:] != (*image.shape, 2):
        raise ValueError(
            f"displacements must have shape (frames, H, W, 2) = (frames, {image.shape[0]}, "
            f"{image.shape[1]}, 2) matching the image; got {displacements.shape}"
        )
    out = np.empty((displacements.shape[0], *image.shape), dtype=np.float32)
    for f, displacement in enumerate(displacements):
        out[f] = warp(image, displacement, order=order, mode=mode, cval=cval)
    return out


def _sample_coordinates(displacement: np.ndarray) -> np.ndarray:
    """Coordinates (2, H, W) at which to sample: r + d(r)."""
    if not np.all(np.isfinite(displacement)):
        raise ValueError("displacement must be finite (pixels); got NaN or inf values")
    grid = np.indices(displacement.shape[:2], dtype=np.float64)
    return grid + np.moveaxis(displacement.astype(np.float64), -1, 0)


def _validate_interpolation(order: int, mode: str) -> None:
    if not isinstance(order, (int, np.integer)) or not 0 <= order <= 5:
        raise ValueError(f"order must be an integer spline order in 0..5; got {order!r}")
    if mode not in _WARP_MODES:
        raise ValueError(f"mode must be one of {_WARP_MODES}; got {mode!r}")


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------
def _validate_shape(shape, name: str) -> tuple[int, int]:
    try:
        dims = tuple(int(s) for s in shape)
        exact = all(int(s) == s for s in shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a tuple (H, W) of positive integers; got {shape!r}"
        ) from None
    if len(dims) != 2 or not exact or min(dims) < 1:
        raise ValueError(f"{name} must be a tuple (H, W) of positive integers; got {shape!r}")
    return dims


def _validate_times(times) -> np.ndarray:
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1:
        raise ValueError(f"times must be a 1-D array of shape (frames,); got shape {times.shape}")
    if not np.all(np.isfinite(times)):
        raise ValueError("times must be finite normalized times in [-1, 1]; got NaN or inf")
    if times.size and (times.min() < -1.0 or times.max() > 1.0):
        raise ValueError(
            f"times must lie in the normalized range [-1, 1]; got min {times.min()} "
            f"and max {times.max()}"
        )
    return times
