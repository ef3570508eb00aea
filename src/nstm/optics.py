"""Microscope optics shared by the imaging systems: discs in frequency space and pupils.

Frequencies are in cycles/µm on the unshifted FFT grid (``nstm.fourier``); lengths in µm.
"""

from __future__ import annotations

import warnings

import numpy as np

from .fourier import frequency_grid
from .validation import check_positive

__all__ = ["GEOMETRY_RTOL", "disc", "pupil", "warn_if_clipped"]

# Relative slack for "on the circle" and "on the dividing line" tests: grid frequencies that lie
# on these curves mathematically must not fall on either side because of rounding.
GEOMETRY_RTOL = 1e-9


def disc(shape: tuple[int, ...], radius: float, pixel_size_um: float) -> np.ndarray:
    """Boolean disc ``|f| <= radius`` (cycles/µm) on the unshifted grid, rounding-tolerant."""
    return sum(f**2 for f in frequency_grid(shape, pixel_size_um)) <= radius**2 * (
        1 + GEOMETRY_RTOL
    )


def warn_if_clipped(name: str, radius: float, pixel_size_um: float) -> None:
    """Warn when a disc of ``radius`` cycles/µm reaches past the grid's Nyquist frequency."""
    nyquist = 0.5 / pixel_size_um
    if radius > nyquist:
        warnings.warn(
            f"{name}: the disc radius {radius:.4g} cycles/µm exceeds the grid Nyquist frequency "
            f"{nyquist:.4g} cycles/µm (pixel_size_um={pixel_size_um}); the disc is clipped by the "
            "frequency grid and the images will alias",
            UserWarning,
            stacklevel=3,
        )


def pupil(
    shape: tuple[int, int], *, wavelength_um: float, na: float, pixel_size_um: float
) -> np.ndarray:
    """Binary, aberration-free objective pupil on the unshifted frequency grid.

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(H, W)``.
    wavelength_um : float
        Wavelength in µm.
    na : float
        Objective numerical aperture; the coherent cutoff is ``na / wavelength_um`` cycles/µm.
    pixel_size_um : float
        Sample-plane pixel size in µm.

    Returns
    -------
    (H, W) ndarray of float32
        1 where ``|f| <= na / wavelength_um`` (frequencies on the circle included), else 0.
    """
    wavelength_um = check_positive("wavelength_um", wavelength_um, "µm")
    na = check_positive("na", na, "units of NA")
    pixel_size_um = check_positive("pixel_size_um", pixel_size_um, "µm")
    radius = na / wavelength_um
    warn_if_clipped("pupil", radius, pixel_size_um)
    return disc(shape, radius, pixel_size_um).astype(np.float32)
