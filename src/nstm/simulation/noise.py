"""Detector noise for simulated measurements.

Units: intensities entering a detector are relative (the simulated sample and optics decide their
scale); ``photons`` turns them into photoelectrons (e-), the charge a pixel collects, which is
Poisson distributed; read noise is Gaussian in electrons; the camera's output is in counts
(analogue-to-digital units, ADU) = ``gain`` (ADU per e-) times electrons, plus an ``offset``.
"""

from __future__ import annotations

import numpy as np

from ..validation import check_nonnegative, check_positive

__all__ = ["camera", "read_noise", "shot_noise"]

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


def read_noise(
    signal_e: np.ndarray,
    sigma_e: float,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Add Gaussian read noise: ``signal_e + N(0, sigma_e^2)``, independently per pixel.

    Parameters
    ----------
    signal_e : array_like, any shape
        Signal in electrons (or in counts, with ``sigma_e`` in counts too); real and finite.
    sigma_e : float
        Standard deviation of the read noise (e- rms), >= 0; 0 returns an unchanged copy.
    rng : numpy.random.Generator or int, optional
        Random generator (or seed). ``None`` draws fresh entropy.

    Returns
    -------
    ndarray
        Same shape; same floating dtype as the input (float64 for integer input).

    Raises
    ------
    ValueError
        If ``sigma_e`` is negative or not finite, or the signal is not real and finite.
    """
    signal = _real_finite("signal_e", signal_e, "electrons")
    dtype = signal.dtype if np.issubdtype(signal.dtype, np.floating) else np.float64
    sigma = check_nonnegative("sigma_e", sigma_e, "electrons rms")
    if sigma == 0:
        return signal.astype(dtype, copy=True)
    noise = np.random.default_rng(rng).normal(0.0, sigma, signal.shape)
    return (signal.astype(np.float64) + noise).astype(dtype)


def camera(
    image: np.ndarray,
    photons: float,
    read_noise_e: float = 0.0,
    background: float = 0.0,
    rng: np.random.Generator | int | None = None,
    *,
    offset: float = 0.0,
    gain: float = 1.0,
    bit_depth: int | None = None,
) -> np.ndarray:
    """Camera counts of an expected-intensity image: shot noise, read noise, gain and offset.

    ``counts = gain * (Poisson(photons * image + background) + N(0, read_noise_e^2)) + offset``,
    then, with ``bit_depth``, rounded to integers and clipped to ``[0, 2^bit_depth - 1]``.
    Before the rounding and clipping, the mean is ``gain * (photons * image + background) +
    offset`` and the variance ``gain^2 * (photons * image + background + read_noise_e^2)``.

    Parameters
    ----------
    image : array_like, any shape
        Expected intensity (relative units), >= 0, e.g. a forward model's noiseless image.
    photons : float
        Expected photoelectrons per pixel (per exposure) where ``image`` is 1; > 0.
    read_noise_e : float, optional
        Read noise, standard deviation in electrons (e- rms); >= 0, default 0.
    background : float, optional
        Uniform expected background (stray light, autofluorescence, dark current) in
        photoelectrons per pixel, added before the shot noise; >= 0, default 0.
    rng : numpy.random.Generator or int, optional
        Random generator (or seed). ``None`` draws fresh entropy.
    offset : float, optional
        Baseline added to every pixel (counts, ADU), e.g. 100 for many sCMOS cameras; >= 0.
    gain : float, optional
        Conversion gain in counts per electron (ADU / e-); > 0, default 1 (counts = electrons).
    bit_depth : int, optional
        Bits of the analogue-to-digital converter (1-32): round and clip (saturate). Default
        ``None``: no rounding or clipping.

    Returns
    -------
    ndarray, same shape as ``image``, float32
        Camera counts (ADU).

    Raises
    ------
    ValueError
        If the image is not real and finite or is negative beyond round-off, or a parameter is
        out of its range.
    """
    expected = _real_finite("image", image, "relative intensity").astype(np.float64)
    photons = check_positive("photons", photons, "photoelectrons at image = 1")
    sigma = check_nonnegative("read_noise_e", read_noise_e, "electrons rms")
    background = check_nonnegative("background", background, "photoelectrons per pixel")
    offset = check_nonnegative("offset", offset, "counts (ADU)")
    gain = check_positive("gain", gain, "counts per electron (ADU / e-)")
    if bit_depth is not None and (
        isinstance(bit_depth, bool)
        or not isinstance(bit_depth, (int, np.integer))
        or not 1 <= bit_depth <= 32
    ):
        raise ValueError(
            f"bit_depth: expected an integer number of bits in 1..32, got {bit_depth!r}"
        )
    if expected.size and expected.min() < -_NEGATIVE_TOLERANCE * max(1.0, expected.max()):
        raise ValueError(
            f"image: expected a non-negative intensity, got a minimum of {expected.min():.6g}"
        )
    generator = np.random.default_rng(rng)
    electrons = generator.poisson(np.maximum(expected, 0.0) * photons + background)
    electrons = electrons + (generator.normal(0.0, sigma, expected.shape) if sigma > 0 else 0.0)
    counts = gain * electrons + offset
    if bit_depth is not None:
        counts = np.clip(np.rint(counts), 0, 2.0**bit_depth - 1)
    return np.asarray(counts, dtype=np.float32)


def _real_finite(name: str, values, unit: str) -> np.ndarray:
    values = np.asarray(values)
    if np.iscomplexobj(values) or not np.issubdtype(values.dtype, np.number):
        raise ValueError(f"{name}: expected real values in {unit}, got dtype {values.dtype}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name}: expected finite values in {unit}, got NaN or inf")
    return values
