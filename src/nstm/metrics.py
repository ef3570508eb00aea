"""Image-quality metrics for reconstructions against ground truth.

All metrics crop ``border`` pixels from each side of the last two axes (edges are unreliable in
reconstructions with periodic boundaries) and, by default, remove each image's mean: differential
phase contrast does not measure the constant (DC) part of the phase, so a reconstruction that is
right up to an offset should score as right.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

__all__ = ["psnr", "psnr_per_frame", "ssim"]

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
    estimate, truth : array_like, shape (frames, H, W)
        Image stacks; same shape.
    **kwargs
        ``border``, ``remove_mean`` and ``data_range`` of :func:`psnr`; a default ``data_range``
        is taken from each truth frame.

    Returns
    -------
    ndarray, shape (frames,), float64
        PSNR of each frame in dB.
    """
    est, tru = np.asarray(estimate), np.asarray(truth)
    if est.ndim != 3 or est.shape != tru.shape:
        raise ValueError(
            "estimate and truth must be stacks of the same shape (frames, H, W); "
            f"got {est.shape} and {tru.shape}"
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
    if not isinstance(border, (int, np.integer)) or border < 0:
        raise ValueError(f"border must be a non-negative integer number of pixels; got {border!r}")
    height, width = tru.shape[-2:]
    if 2 * border >= min(height, width):
        raise ValueError(
            f"border must be smaller than half the image size (H, W) = {(height, width)}, i.e. "
            f"at most {(min(height, width) - 1) // 2} px; got {border}"
        )
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
