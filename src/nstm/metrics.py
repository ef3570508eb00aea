"""Image-quality and motion metrics for reconstructions against ground truth.

All metrics crop ``border`` pixels from each side of the image axes (H, W) (edges are unreliable
in reconstructions with periodic boundaries). The image metrics by default remove each image's
mean: differential phase contrast does not measure the constant (DC) part of the phase, so a
reconstruction that is right up to an offset should score as right. Likewise the motion metric
compares motion relative to its mean over frames, because the canonical (undeformed) frame of a
reconstruction is arbitrary.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

__all__ = ["motion_error", "psnr", "psnr_per_frame", "ssim"]

# RMS error, relative to the data range, below which images count as identical (PSNR = inf).
_IDENTICAL_RMS = 1e-12
# Side (px) of structural_similarity's default uniform window.
_SSIM_WINDOW = 7


def psnr(
    estimate: np.ndarray,
    truth: np.ndarray,
    *,
    border: int = 16,
    remove_mean: bool = True,
    data_range: float | None = None,
) -> float:
    """Peak signal-to-noise ratio of an estimate against the truth.

    ``PSNR = 10 log10(data_range**2 / MSE)``, with the mean squared error over every cropped pixel
    (and frame).

    Parameters
    ----------
    estimate, truth : array_like, shape (H, W) or (frames, H, W) (any leading axes)
        Real images in the same units (e.g. rad); same shape.
    border : int, optional
        Pixels cropped from each side of the last two axes; ``2 * border`` must be smaller than
        ``H`` and ``W``.
    remove_mean : bool, optional
        Subtract from each image (each frame of a stack) its own mean over the cropped region.
    data_range : float, optional
        Peak-to-peak range of the signal; default ``truth.max() - truth.min()`` over the cropped
        region (before mean removal, the whole stack).

    Returns
    -------
    float
        PSNR in dB; ``inf`` if the (mean-removed) images are identical up to round-off (RMS
        error below ``1e-12 * data_range``, i.e. above 240 dB).

    Raises
    ------
    ValueError
        On mismatched shapes, a bad ``border``, non-finite values or a zero/negative
        ``data_range`` (a constant truth needs an explicit ``data_range``).
    """
    est, tru = _prepare(estimate, truth, border)
    data_range = _data_range(tru, data_range)
    if remove_mean:
        est, tru = _remove_mean(est), _remove_mean(tru)
    mse = float(np.mean((est - tru) ** 2))
    # An RMS error at float64 round-off level (mean removal is inexact) means "identical".
    if mse <= (_IDENTICAL_RMS * data_range) ** 2:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def psnr_per_frame(estimate: np.ndarray, truth: np.ndarray, **kwargs) -> np.ndarray:
    """PSNR of each frame of a stack.

    Parameters
    ----------
    estimate, truth : array_like, shape (frames, H, W) or (frames, Z, H, W)
        Image or volume stacks; same shape (a volume's PSNR is over all its planes).
    **kwargs
        ``border``, ``remove_mean`` and ``data_range`` of :func:`psnr`; a default ``data_range``
        is taken from each truth frame.

    Returns
    -------
    ndarray, shape (frames,), float64
        PSNR of each frame in dB.
    """
    est, tru = np.asarray(estimate), np.asarray(truth)
    if est.ndim not in (3, 4) or est.shape != tru.shape:
        raise ValueError(
            "estimate and truth must be stacks of the same shape (frames, H, W) or "
            f"(frames, Z, H, W); got {est.shape} and {tru.shape}"
        )
    return np.array([psnr(e, t, **kwargs) for e, t in zip(est, tru, strict=True)])


def ssim(
    estimate: np.ndarray,
    truth: np.ndarray,
    *,
    border: int = 16,
    remove_mean: bool = True,
    data_range: float | None = None,
) -> float:
    """Structural similarity of an estimate against the truth.

    Uses :func:`skimage.metrics.structural_similarity` (7 x 7 uniform window) on each 2-D image;
    a stack's SSIM is the mean over its frames.

    Parameters
    ----------
    estimate, truth : array_like, shape (H, W) or (frames, H, W) (any leading axes)
        Real images in the same units; same shape.
    border : int, optional
        Pixels cropped from each side of the last two axes; the cropped images must be at least
        7 x 7.
    remove_mean : bool, optional
        Subtract from each image its own mean over the cropped region.
    data_range : float, optional
        Peak-to-peak range; default ``truth.max() - truth.min()`` over the cropped region.

    Returns
    -------
    float
        Mean SSIM, at most 1 (1 for identical images).
    """
    est, tru = _prepare(estimate, truth, border)
    if min(tru.shape[-2:]) < _SSIM_WINDOW:
        raise ValueError(
            f"ssim needs cropped images of at least {_SSIM_WINDOW} x {_SSIM_WINDOW} px; got "
            f"{tru.shape[-2:]} after cropping border={border}"
        )
    data_range = _data_range(tru, data_range)
    if remove_mean:
        est, tru = _remove_mean(est), _remove_mean(tru)
    planes = zip(est.reshape(-1, *est.shape[-2:]), tru.reshape(-1, *tru.shape[-2:]), strict=True)
    return float(np.mean([structural_similarity(e, t, data_range=data_range) for e, t in planes]))


def motion_error(estimate: np.ndarray, truth: np.ndarray, *, border: int = 16) -> np.ndarray:
    """Mean endpoint error of an estimated motion against the true motion, per frame.

    Both stacks follow the convention of :func:`nstm.model.motion_fields`: the scene at time
    ``t_k`` at pixel ``r`` is the canonical scene at ``r + motion[k, r]``. The canonical frame of
    a reconstruction is arbitrary (NSTM may settle on any undeformed reference), so motion is
    compared relative to its mean over frames::

        EPE_k = mean_r | (est_k(r) - mean_j est_j(r)) - (true_k(r) - mean_j true_j(r)) |

    with ``|.|`` the Euclidean norm over the displacement components and the mean over the
    cropped pixels ``r``.

    Parameters
    ----------
    estimate, truth : array_like, shape (frames, H, W, 2) or (frames, Z, H, W, 3)
        Displacement stacks in pixels, components in axis order (dy, dx) or (dz, dy, dx); same
        shape, real and finite.
    border : int, optional
        Pixels cropped from each side of the H and W axes (not Z) before averaging;
        ``2 * border`` must be smaller than ``H`` and ``W``.

    Returns
    -------
    ndarray, shape (frames,), float64
        Mean endpoint error of each frame, in pixels.

    Raises
    ------
    ValueError
        On an argument of the wrong shape (the message names it and the expected shape),
        mismatched shapes, non-real or non-finite values, or a bad ``border``.

    Notes
    -----
    Removing the mean over frames makes the metric blind to the choice of canonical frame
    exactly when two choices differ by a translation: the motion then changes by the same
    constant vector in every frame. If they differ by a smooth deformation ``u(r)``, the motion
    changes by about ``-u(r + motion_k(r))``, whose frame-independent part ``-u(r)`` is removed;
    the remainder is first order, about ``|grad u|`` times the relative motion, and is counted
    as error.

    The error of assuming no motion at all, the natural reference value, is the same function
    applied to zeros: ``motion_error(np.zeros_like(truth), truth)``, i.e. the mean magnitude of
    the true motion relative to its mean over frames.

    Examples
    --------
    >>> truth = np.zeros((3, 40, 40, 2))
    >>> truth[..., 1] = np.array([-1.0, 0.0, 1.0])[:, None, None]  # 1 px/frame along x
    >>> motion_error(truth + 5.0, truth, border=4)  # another canonical frame: no error
    array([0., 0., 0.])
    >>> motion_error(np.zeros_like(truth), truth, border=4)  # assuming no motion
    array([1., 0., 1.])
    """
    est = _check_motion("estimate", estimate)
    tru = _check_motion("truth", truth)
    if est.shape != tru.shape:
        raise ValueError(
            f"estimate and truth must have the same shape; got {est.shape} and {tru.shape}"
        )
    height, width = tru.shape[-3:-1]
    _check_border(border, height, width)
    crop = (Ellipsis, slice(border, height - border), slice(border, width - border), slice(None))
    est = est[crop].astype(np.float64)
    tru = tru[crop].astype(np.float64)
    diff = (est - est.mean(axis=0)) - (tru - tru.mean(axis=0))
    return np.linalg.norm(diff, axis=-1).reshape(diff.shape[0], -1).mean(axis=1)


def _check_motion(name: str, value) -> np.ndarray:
    """A displacement stack (frames, H, W, 2) or (frames, Z, H, W, 3), or a ValueError."""
    array = np.asarray(value)
    expected = "(frames, H, W, 2) or (frames, Z, H, W, 3) in pixels"
    if array.ndim not in (4, 5) or array.shape[-1] != array.ndim - 2 or 0 in array.shape:
        raise ValueError(
            f"{name} must be a displacement stack of shape {expected}; got {array.shape}"
        )
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} must be real-valued displacements; got dtype {array.dtype}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return array


def _check_border(border, height: int, width: int) -> None:
    if not isinstance(border, (int, np.integer)) or isinstance(border, bool) or border < 0:
        raise ValueError(f"border must be a non-negative integer number of pixels; got {border!r}")
    if 2 * border >= min(height, width):
        raise ValueError(
            f"border must be smaller than half the image size (H, W) = {(height, width)}, i.e. "
            f"at most {(min(height, width) - 1) // 2} px; got {border}"
        )


def _prepare(estimate, truth, border) -> tuple[np.ndarray, np.ndarray]:
    """Validate and crop; returns float64 copies."""
    est = np.asarray(estimate)
    tru = np.asarray(truth)
    if est.shape != tru.shape:
        raise ValueError(
            f"estimate and truth must have the same shape; got {est.shape} and {tru.shape}"
        )
    if tru.ndim < 2:
        raise ValueError(f"images must have shape (..., H, W); got {tru.shape}")
    if np.iscomplexobj(est) or np.iscomplexobj(tru):
        raise ValueError("estimate and truth must be real-valued")
    height, width = tru.shape[-2:]
    _check_border(border, height, width)
    crop = (Ellipsis, slice(border, height - border), slice(border, width - border))
    est = est[crop].astype(np.float64)
    tru = tru[crop].astype(np.float64)
    if not (np.all(np.isfinite(est)) and np.all(np.isfinite(tru))):
        raise ValueError("estimate and truth must be finite (no NaN or inf)")
    return est, tru


def _remove_mean(images: np.ndarray) -> np.ndarray:
    return images - images.mean(axis=(-2, -1), keepdims=True)


def _data_range(truth: np.ndarray, data_range: float | None) -> float:
    value = float(truth.max() - truth.min()) if data_range is None else float(data_range)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(
            "data_range must be a positive, finite peak-to-peak range of the truth; got "
            f"{value!r}" + (" (the cropped truth is constant)" if data_range is None else "")
        )
    return value
