"""Abbe (source-point summation) simulation of partially coherent DPC images.

Unlike the weak-object transfer functions of `nstm.systems.dpc.optics`, nothing is linearized here:
every source point's coherent image is computed from the full complex transmittance and the
intensities are summed. This is the ground truth that the linear model is tested against.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Literal

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

from ...fourier import signed_indices
from .optics import SourceConvention, illumination_spectrum

__all__ = ["abbe_dpc_images"]

# Reduced-grid samples per batch of source points (16 MB of complex64 field): bounds the memory
# while amortizing the per-call overhead of the FFTs and the weighted sum.
_BATCH_ELEMENTS = 1 << 21


def _signed_span(mask: np.ndarray) -> tuple[int, int]:
    """Smallest signed-index interval ``[first, last]`` holding every True entry of ``mask``."""
    signed = signed_indices(mask.size)[mask]
    return int(signed.min()), int(signed.max())


class _CoherentImager:
    """Coherent intensities ``|IFFT2(P * shift_s(FFT2(o)))|^2`` for batches of source points.

    Three savings over one full-size FFT per source point, none of which changes the result:

    * Only the pupil's bounding box carries field, so the field is synthesized on a reduced
      grid just large enough to hold its intensity without aliasing (``2 n - 1`` samples for a
      box ``n`` frequencies wide) and the summed intensity is resampled to the canvas exactly.
    * The box is placed at the start of the reduced grid instead of at its signed frequencies:
      a circular shift of the spectrum multiplies the field by a unit-modulus ramp, which the
      intensity does not see. Both FFT passes then run on zero-padded, contiguous last axes.
    * The first pass only transforms the box's occupied lines.

    The two passes work in preallocated scratch buffers (no page faults per batch).
    """

    def __init__(self, pupil: np.ndarray, dtype: type, *, batch_size: int | None, max_points: int):
        height, width = pupil.shape
        self.canvas = (height, width)
        self.row0, row1 = _signed_span(np.any(pupil != 0, axis=1))
        self.col0, col1 = _signed_span(np.any(pupil != 0, axis=0))
        box = (row1 - self.row0 + 1, col1 - self.col0 + 1)
        self.reduced = tuple(
            n if scipy.fft.next_fast_len(2 * b - 1) >= n else scipy.fft.next_fast_len(2 * b - 1)
            for b, n in zip(box, self.canvas, strict=True)
        )
        pupil_box = pupil[
            np.ix_(np.arange(self.row0, row1 + 1) % height, np.arange(self.col0, col1 + 1) % width)
        ].astype(dtype)
        # Pick the cheaper first pass (the second always transforms Ry x Rx samples).
        reduced_y, reduced_x = self.reduced
        self.y_first = box[1] * reduced_y <= box[0] * reduced_x
        if self.y_first:  # box stored as (x, y); pass 1 along y, pass 2 along x
            self.pupil_box = pupil_box.T.copy()
            self.lengths = (reduced_y, reduced_x)
        else:  # box stored as (y, x); pass 1 along x, pass 2 along y
            self.pupil_box = pupil_box
            self.lengths = (reduced_x, reduced_y)
        self.pairs_shape = (self.lengths[0], 2 * self.lengths[1])
        if batch_size is None:
            batch_size = max(1, min(max_points, _BATCH_ELEMENTS // (reduced_y * reduced_x)))
        self.batch_size = batch_size
        lines = self.pupil_box.shape[0]
        self.first = np.zeros((batch_size, lines, self.lengths[0]), dtype=dtype)
        self.second = np.zeros((batch_size,) + self.lengths, dtype=dtype)

        self.max_sy, self.max_sx = (height - 1) // 2, (width - 1) // 2
        # Every box a source point can ask for is a window of one extended copy of the object
        # spectrum (rows row0 - max_sy ... row1 + H // 2, wrapped; same for columns), so the
        # gather is a strided block copy instead of a per-element fancy index.
        self.extended_rows = np.arange(self.row0 - self.max_sy, row1 + height // 2 + 1) % height
        self.extended_cols = np.arange(self.col0 - self.max_sx, col1 + width // 2 + 1) % width

    def windows(self, object_spectrum: np.ndarray) -> np.ndarray:
        """Read-only view of every pupil-box window of the extended object spectrum."""
        extended = object_spectrum[np.ix_(self.extended_rows, self.extended_cols)]
        if self.y_first:
            return sliding_window_view(extended.T.copy(), self.pupil_box.shape)
        return sliding_window_view(extended, self.pupil_box.shape)

    def intensities(
        self, windows: np.ndarray, source_rows: np.ndarray, source_cols: np.ndarray
    ) -> np.ndarray:
        """Unscaled squared field components for source points at unshifted grid indices.

        Returns a ``(batch, *pairs_shape)`` view of scratch memory (valid until the next call):
        the squared real and imaginary parts, interleaved, on the reduced grid (``(y, x)`` if
        `y_first`, else ``(x, y)``). Summing each pair gives the intensity; `to_canvas` scales
        and resamples the weighted sum.
        """
        height, width = self.canvas
        batch = source_rows.size
        lines, depth = self.pupil_box.shape
        # Field spectrum P(f) O(f - s) on the pupil box, s as signed indices.
        start_y = self.max_sy - signed_indices(height)[source_rows]
        start_x = self.max_sx - signed_indices(width)[source_cols]
        starts = (start_x, start_y) if self.y_first else (start_y, start_x)
        first = self.first[:batch]
        np.multiply(windows[starts], self.pupil_box, out=first[..., :depth])
        first[..., depth:] = 0
        first = scipy.fft.ifft(first, axis=-1, workers=-1, overwrite_x=True)
        second = self.second[:batch]
        second[..., :lines] = first.transpose(0, 2, 1)
        second[..., lines:] = 0
        field = scipy.fft.ifft(second, axis=-1, workers=-1, overwrite_x=True)
        # |u|^2 as squared (re, im) pairs, in place: the caller's weighted sum adds the pairs.
        pairs = field.view(field.real.dtype)
        np.square(pairs, out=pairs)
        return pairs

    def to_canvas(self, intensity: np.ndarray) -> np.ndarray:
        """Scaled ``(..., H, W)`` canvas intensity from a sum of `intensities` outputs."""
        height, width = self.canvas
        reduced_y, reduced_x = self.reduced
        if not self.y_first:
            intensity = np.swapaxes(intensity, -1, -2)
        # u = ifft_reduced(.) * (Ry Rx) / (H W), and band-limited resampling to the canvas
        # multiplies the spectrum by (H W) / (Ry Rx): net factor (Ry Rx) / (H W).
        factor = reduced_y * reduced_x / (height * width)
        if self.reduced == self.canvas:
            return intensity * factor
        spectrum = scipy.fft.fft2(intensity, workers=-1)
        canvas = np.zeros(intensity.shape[:-2] + (height, width), dtype=spectrum.dtype)
        rows = signed_indices(reduced_y) % height
        cols = signed_indices(reduced_x) % width
        canvas[..., rows[:, None], cols[None, :]] = spectrum
        return scipy.fft.ifft2(canvas, workers=-1).real * factor


def _validate(transmittance, sources, pupil):
    sources = np.asarray(sources)
    if sources.ndim != 3:
        raise ValueError(f"sources: expected a 3D array (frames, H, W), got shape {sources.shape}")
    if np.iscomplexobj(sources) or not np.all(np.isfinite(sources)) or np.any(sources < 0):
        raise ValueError("sources: expected real, finite, non-negative source intensities")
    frames, height, width = sources.shape
    pupil = np.asarray(pupil)
    if pupil.shape != (height, width):
        raise ValueError(
            f"pupil: expected shape (H, W) = {(height, width)} matching sources {sources.shape}, "
            f"got {pupil.shape}"
        )
    if np.iscomplexobj(pupil) or not np.all(np.isfinite(pupil)):
        raise ValueError("pupil: expected a real, finite pupil amplitude")
    transmittance = np.asarray(transmittance)
    if transmittance.shape not in ((height, width), (frames, height, width)):
        raise ValueError(
            f"transmittance: expected shape (H, W) = {(height, width)} or (frames, H, W) = "
            f"{(frames, height, width)} matching sources, got {transmittance.shape}"
        )
    if not np.all(np.isfinite(transmittance)):
        raise ValueError("transmittance: expected finite values, got NaN or inf")
    return transmittance, sources.astype(np.float64), pupil.astype(np.float64)


def abbe_dpc_images(
    transmittance: np.ndarray,
    sources: np.ndarray,
    pupil: np.ndarray,
    *,
    precision: Literal["single", "double"] = "single",
    batch_size: int | None = None,
    source_convention: SourceConvention = "led",
) -> np.ndarray:
    r"""Background-normalized DPC frames by full partially coherent (Abbe) image formation.

    For frame ``j`` every illuminating plane wave ``exp(i 2 pi f . r)`` with weight
    :math:`W_j(f) > 0` lights the sample, and its coherent image is filtered by the pupil; the
    intensities add incoherently:

    .. math::

        I_j = \sum_f W_j(f)\, |\mathcal F^{-1}\{P \cdot \mathcal F\{o\, e^{i 2\pi f\cdot r}\}\}|^2,
        \qquad \mathrm{frame}_j = I_j / B_j - 1,\quad B_j = \sum_f W_j(f) P(f)^2 .

    ``W_j`` is the source map ``S_j`` read in `source_convention`
    (`nstm.systems.dpc.optics.illumination_spectrum`): by default an LED at ``+u`` in the map
    lights the sample with ``exp(-i 2 pi u . r)``, so ``W_j(f) = S_j(-f)``. ``f`` lies on the
    frequency grid, so the tilt is an integer circular shift of the object's spectrum. No
    weak-object approximation is made.

    Parameters
    ----------
    transmittance : (H, W) or (n, H, W) array_like
        Complex transmittance ``o = exp(mu + i*phi)`` (``mu`` natural-log amplitude, ``phi`` in
        radians). A 3D stack gives frame ``j`` its own transmittance ``o_j`` (a moving sample
        seen at each frame's time).
    sources : (n, H, W) array_like
        Non-negative source intensities on the unshifted frequency grid (DC at ``[0, 0]``).
    pupil : (H, W) array_like
        Real pupil amplitude on the unshifted frequency grid.
    precision : {"single", "double"}, optional
        Field precision: complex64 (default; rounding about 1e-6 of the background, ample for
        data simulation) or complex128 (about 1e-15; for identity tests, about 2x slower).
    batch_size : int, optional
        Source points per FFT batch; by default about 16 MB of complex64 field per batch.
    source_convention : {"led", "wavevector"}, default "led"
        How `sources` maps to the illuminating plane waves (see above).

    Returns
    -------
    (n, H, W) ndarray of float32
        DPC frames ``I / I_background - 1``; zero for a clear sample (``o = 1``).

    Notes
    -----
    The image is periodic over the simulated ``(H, W)`` canvas. For a non-periodic field of
    view, simulate on a larger canvas and crop the centre (by at least the extent of the
    objective's point-spread function).

    Fields are computed in complex64 (``precision="single"``) and intensities accumulated in
    float64; the field of each source point is synthesized on the smallest grid that holds its
    intensity without aliasing and resampled exactly (band-limited) to the canvas.

    The cost is two batched 1D FFT passes per lit source point and transmittance, so it grows
    with the number of lit grid frequencies, ``~ pi (na_illum / wavelength)^2 H W pixel^2``. A
    static sample (2D `transmittance`) computes each source point once and shares it between
    frames (for the usual four half discs: the full disc once); a moving sample computes every
    frame's source separately (twice the work there).
    """
    transmittance, sources, pupil = _validate(transmittance, sources, pupil)
    sources = illumination_spectrum(sources, source_convention)  # weights of exp(+i 2 pi f . r)
    frames, height, width = sources.shape
    background = np.sum(sources * pupil**2, axis=(-2, -1))
    dark = np.flatnonzero(background <= 0)
    if dark.size:
        raise ValueError(
            f"sources: sources {dark.tolist()} have zero background sum_s S(s) P(s)^2 (no weight "
            "inside the pupil); sources must be on the unshifted grid (DC at [0, 0])"
        )
    if precision not in ("single", "double"):
        raise ValueError(f'precision: expected "single" or "double", got {precision!r}')
    if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")

    dtype = {"single": np.complex64, "double": np.complex128}[precision]
    real_dtype = np.finfo(dtype).dtype
    object_spectra = scipy.fft.fft2(
        transmittance.reshape(-1, height, width).astype(dtype), workers=-1
    )
    # A static sample shares every source point's intensity between frames (a weights matrix);
    # a moving sample has its own transmittance, hence its own source points, per frame.
    if transmittance.ndim == 2:
        jobs = [(object_spectra[0], sources, slice(None))]
    else:
        jobs = [(object_spectra[j], sources[j : j + 1], slice(j, j + 1)) for j in range(frames)]

    lit = int(np.count_nonzero(np.any(sources > 0, axis=0)))
    imager = _CoherentImager(pupil, dtype, batch_size=batch_size, max_points=lit)
    batch_size = imager.batch_size
    accumulated = np.zeros((frames,) + imager.pairs_shape, dtype=np.float64)
    for spectrum, weights, targets in jobs:
        windows = imager.windows(spectrum)
        points_y, points_x = np.nonzero(np.any(weights > 0, axis=0))
        point_weights = weights[:, points_y, points_x].astype(real_dtype)  # (targets, points)
        # Sort the points by weight vector: a batch then holds a few runs of equal weights
        # (DPC half discs: 1 or 0.5 per frame), which are summed before one small matmul.
        order = np.lexsort(point_weights[::-1])
        points_y, points_x, point_weights = (
            points_y[order],
            points_x[order],
            point_weights[:, order],
        )
        for start in range(0, points_y.size, batch_size):
            stop = min(start + batch_size, points_y.size)
            pairs = imager.intensities(windows, points_y[start:stop], points_x[start:stop])
            batch_weights = point_weights[:, start:stop]
            pairs = pairs.reshape(stop - start, -1)
            changes = np.flatnonzero(np.any(batch_weights[:, 1:] != batch_weights[:, :-1], 0))
            if 4 * changes.size < stop - start:
                bounds = np.concatenate(([0], changes + 1, [stop - start]))
                run_sums = np.stack([pairs[a:b].sum(axis=0) for a, b in pairwise(bounds)])
                weighted = batch_weights[:, bounds[:-1]] @ run_sums
            else:  # many distinct weights (e.g. a smooth source): weight every point
                weighted = batch_weights @ pairs
            target = accumulated[targets]  # a view: targets is a slice
            target += weighted.reshape(target.shape)

    intensity = accumulated[..., 0::2] + accumulated[..., 1::2]
    images = imager.to_canvas(intensity)
    return (images / background[:, None, None] - 1.0).astype(np.float32)
