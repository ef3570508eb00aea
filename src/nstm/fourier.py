"""FFT-grid helpers shared by the imaging systems.

Frequency arrays live on the *unshifted* FFT grid of :mod:`numpy.fft` (DC at index 0, then the
positive frequencies, then the negative ones); see ``docs/conventions.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .validation import check_positive, check_shape

__all__ = ["embed_spectrum", "frequency_grid", "negated_frequency", "signed_indices"]


def signed_indices(n: int) -> np.ndarray:
    """Signed frequency index of each position of an unshifted length-``n`` FFT axis:
    ``0, 1, ..., -2, -1`` (int64)."""
    return np.fft.fftfreq(n, d=1.0 / n).round().astype(np.int64)


def negated_frequency(array: np.ndarray, axes: Sequence[int] = (-2, -1)) -> np.ndarray:
    """``array`` at the negated frequency, ``out[..., k] = array[..., -k mod n]`` on ``axes``.

    For the spectrum of a real signal this is its complex conjugate; for a source map it turns
    the LED convention into plane-wave weights (``nstm.systems.dpc.optics``).
    """
    axes = tuple(axes)
    return np.roll(np.flip(array, axis=axes), shift=(1,) * len(axes), axis=axes)


def embed_spectrum(array: np.ndarray, padded_shape: Sequence[int]) -> np.ndarray:
    """Place an unshifted spectrum on a larger unshifted grid (its last ``len(padded_shape)``
    axes), each frequency at its own signed index; the new frequencies are zero."""
    padded_shape = tuple(int(n) for n in padded_shape)
    ndim = len(padded_shape)
    out = np.zeros(array.shape[:-ndim] + padded_shape, dtype=array.dtype)
    index = np.ix_(
        *(signed_indices(n) % m for n, m in zip(array.shape[-ndim:], padded_shape, strict=True))
    )
    out[(Ellipsis, *index)] = array
    return out


def frequency_grid(shape: Sequence[int], pixel_size_um: float) -> tuple[np.ndarray, ...]:
    """Spatial-frequency coordinates of the unshifted FFT grid.

    Parameters
    ----------
    shape : tuple of int
        Grid shape, ``(H, W)`` (or any number of axes); odd or even sizes.
    pixel_size_um : float
        Sample-plane pixel size in µm (the same on every axis).

    Returns
    -------
    tuple of ndarray of float64, each of ``shape``
        One coordinate per axis in cycles/µm, e.g. ``fy, fx`` with
        ``fy[i, j] = fftfreq(H, pixel_size_um)[i]`` (DC at ``[0, 0]``).
    """
    shape = check_shape("shape", shape, ndim=(1, 2, 3))
    pixel_size_um = check_positive("pixel_size_um", pixel_size_um, "µm")
    axes = [np.fft.fftfreq(n, d=pixel_size_um) for n in shape]
    return tuple(np.meshgrid(*axes, indexing="ij"))
