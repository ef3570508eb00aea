"""Detector noise for simulated measurements."""

from __future__ import annotations

import numpy as np

__all__ = ["shot_noise"]

# Relative slack for round-off: interpolation can push a zero intensity to -1e-8 or so.
_NEGATIVE_TOLERANCE = 1e-6


def shot_noise(
    normalized_images: np.ndarray,
    photons_per_pixel: float | None,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Add Poisson (shot) noise to background-normalized intensity images.

    The intensity ``1 + img`` (in units of the background intensity ``I0``) is turned into photon
    counts ``Poisson((1 + img) * photons_per_pixel)`` and normalized back, ``counts /
    photons_per_pixel - 1``. The result is unbiased with variance ``(1 + img) /
    photons_per_pixel``.

    Parameters
    ----------
    normalized_images : array_like, shape (frames, H, W) or any shape
        Normalized intensities ``I / I0 - 1`` (dimensionless); ``1 + img`` must be >= 0.
    photons_per_pixel : float or None
        Expected photon count per pixel for the background (``img = 0``); > 0. ``None`` or
        ``inf`` means noiseless and returns an unchanged copy.
    rng : numpy.random.Generator or int, optional
        Random generator (or seed). ``None`` draws fresh entropy.

    Returns
    -------
    ndarray
        Noisy normalized images, same shape; same floating dtype as the input (float64 for
        integer input).

    Raises
    ------
    ValueError
        If ``photons_per_pixel`` is not positive, the images are not finite, or an intensity
        ``1 + img`` is negative (beyond round-off).
    """
    images = np.asarray(normalized_images)
    dtype = images.dtype if np.issubdtype(images.dtype, np.floating) else np.float64
    if np.iscomplexobj(images) or not np.all(np.isfinite(images)):
        raise ValueError("normalized_images must be real and finite (I / I0 - 1, dimensionless)")
    if photons_per_pixel is None or photons_per_pixel == np.inf:
        return images.astype(dtype, copy=True)
    photons = float(photons_per_pixel)
    if not np.isfinite(photons) or photons <= 0:
        raise ValueError(
            f"photons_per_pixel must be > 0 photons (or None/inf for no noise); "
            f"got {photons_per_pixel!r}"
        )
    intensity = 1.0 + images.astype(np.float64)
    if images.size and intensity.min() < -_NEGATIVE_TOLERANCE:
        raise ValueError(
            "normalized_images must satisfy 1 + img >= 0 (a non-negative intensity I / I0); "
            f"got a minimum of 1 + img = {intensity.min():.6g}"
        )
    counts = np.random.default_rng(rng).poisson(np.maximum(intensity, 0.0) * photons)
    return (counts / photons - 1.0).astype(dtype)
