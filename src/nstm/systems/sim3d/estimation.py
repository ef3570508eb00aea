"""SIM parameters from the raw data: band separation, the pattern vector ``k0``, the starting
phases and the modulation of the orders (Gustafsson et al. 2008; cudasirecon's approach, with
the original's bugs fixed: any phase count, least squares instead of a hard-coded 5-phase
matrix, and a numpy regression instead of ``scipy.stats.linregress`` on complex numbers).

Conventions (``bands.py``): raw voxel ``(z, y, x)`` sits at ``(z * z_step, y * pixel,
x * pixel)`` µm; the excitation of phase step ``j`` is ``sum_m c_m exp(i m (2 pi k0 . r +
phi_j))``; band OTFs ``OTF_|m|`` on the raw grid (unshifted 3D FFT grid, ``OTF_0`` 1 at DC).

How the estimates are made
    *Bands.* ``raw_j = sum_m exp(i m phi_j) band_m`` solved by least squares per voxel.
    *Overlaps.* For a candidate shift ``s`` of order ``m`` the band's content is moved back by
    ``s`` (multiplying it by ``exp(-i 2 pi s . r)`` in real space: exact for sub-pixel ``s``)
    and both bands are weighted by the other's OTF, ``ov_0(k) = B_0(k) OTF_m(k + s)``,
    ``ov_m(k) = B_m(k + s) OTF_0(k)``, over the frequencies where both OTFs are non-zero.
    At ``s = m k0`` the two are proportional, ``ov_m = amp_m exp(i m phi_0) ov_0``.
    *k0.* Candidates: the best local maxima of the normalized band-0 / band-m overlap
    correlation over whole-pixel and quarter-pixel shifts (all orders together, order m at
    ``m s``: the second order's peak at ``2 k0`` doubles the lever arm). Each is refined by a
    fixed-point iteration: the residual shift ``delta`` shows as a phase ramp
    ``exp(i 2 pi m delta . r)`` of ``conj(ov_0) ov_m`` in real space, found as the maximum of
    its Fourier magnitude (a sub-pixel search); ``k0 += delta`` until it stops moving. At the
    true ``k0`` the maximum is at ``delta = 0`` exactly (the Fourier transform of a
    non-negative function peaks at zero), so the estimate is unbiased without noise. The
    candidate whose overlaps then agree best (normalized correlation summed over the orders,
    1 per order at the truth without noise) wins: sparse samples (a few beads) have
    spurious correlation peaks of 0.7-0.8.
    *Phases and modulation.* The complex least-squares slope ``c_m`` of ``ov_m`` on ``ov_0``
    (no intercept, in real space with edge weights ``w``: the normal equation
    ``c_m = sum w conj(ov_0) ov_m / sum w |ov_0|^2``): ``angle(c_1)`` is the starting phase,
    ``|c_m|`` the modulation of order ``m``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.ndimage
import scipy.optimize

from ...fourier import signed_indices
from ...validation import check_nonnegative, check_positive
from .bands import ORDERS, band_otfs_from_psf

__all__ = [
    "SIMParameters",
    "TWO_BEAM_ORDERS",
    "check_band_otfs",
    "check_finite",
    "edge_taper",
    "estimate_k0",
    "estimate_parameters",
    "estimate_phases_and_modulation",
    "mixing_matrix",
    "nominal_phase_steps",
    "psf_on_grid",
    "separate_bands",
]

TWO_BEAM_ORDERS = (-1, 0, 1)
"""The orders of two-beam SIM (3 or more phases)."""
OTF_THRESHOLD = 1e-3
"""|OTF| (relative to OTF_0 at DC) below which a frequency counts as outside the passband."""


# --------------------------------------------------------------------------------------------
# Band separation
# --------------------------------------------------------------------------------------------


def nominal_phase_steps(phases: int) -> np.ndarray:
    """The evenly spaced phase steps ``2 pi j / phases``, ``(phases,)`` radians."""
    if int(phases) != phases or phases < 3:
        raise ValueError(f"phases: expected an integer >= 3, got {phases!r}")
    return 2 * np.pi * np.arange(int(phases)) / int(phases)


def _check_orders(orders: Sequence[int]) -> tuple[int, ...]:
    orders = tuple(int(m) for m in orders)
    if len(set(orders)) != len(orders) or 0 not in orders:
        raise ValueError(f"orders: expected distinct integers including 0, got {orders!r}")
    if sorted(orders) != sorted(-m for m in orders):
        raise ValueError(f"orders: expected a set symmetric about 0 (m and -m), got {orders!r}")
    return orders


def mixing_matrix(phases_rad: np.ndarray, orders: Sequence[int] = ORDERS) -> np.ndarray:
    """``(phases, orders)`` complex matrix ``exp(i m phi_j)`` that mixes the bands into the
    raw images: ``raw_j = sum_m M[j, m] band_m``."""
    phases_rad = np.asarray(phases_rad, np.float64)
    return np.exp(1j * np.outer(phases_rad, np.asarray(orders, np.float64)))


def separate_bands(
    raw: np.ndarray, phases_rad: Sequence[float], *, orders: Sequence[int] = ORDERS
) -> np.ndarray:
    """Separate the orders of one orientation by least squares, for any phase count.

    Solves ``raw_j = sum_m exp(i m phi_j) band_m`` for the bands at every voxel (the phases need
    not be evenly spaced; with more phases than orders it is the least-squares solution).

    Parameters
    ----------
    raw : (phases, Z, Y, X) array_like of float
        One orientation's raw stacks (background subtracted, or the background lands in
        band 0).
    phases_rad : (phases,) array_like of float
        First-order pattern phase of each step in radians. With the absolute phases (at raw
        voxel (0, 0, 0)) band ``m`` holds ``amp_m [OTF_|m| conv (rho exp(i m 2 pi k0 . r))]``,
        the band of ``bands.py``, its modulation ``amp_m`` included and ``exp(i m phi)``
        removed. With steps relative to an unknown start ``phi_0`` (e.g. the nominal
        ``2 pi j / phases``) band ``m`` carries the extra factor ``exp(i m phi_0)``.
    orders : sequence of int
        The orders present, symmetric about 0: ``(-2, -1, 0, 1, 2)`` (three-beam, the default,
        needs >= 5 phases) or ``(-1, 0, 1)`` (two-beam, >= 3 phases).

    Returns
    -------
    (len(orders), Z, Y, X) ndarray of complex128
        The bands in real space, in the order of ``orders``; ``band_{-m} = conj(band_m)``
        for real ``raw``.
    """
    orders = _check_orders(orders)
    raw = np.asarray(raw)
    if raw.ndim != 4:
        raise ValueError(f"raw: expected one orientation (phases, Z, Y, X), got shape {raw.shape}")
    if np.iscomplexobj(raw):
        raise TypeError(f"raw: expected real camera values, got dtype {raw.dtype}")
    phases_rad = np.asarray(phases_rad, np.float64)
    if phases_rad.shape != (raw.shape[0],) or not np.all(np.isfinite(phases_rad)):
        raise ValueError(
            f"phases_rad: expected {raw.shape[0]} finite phases (one per raw stack) in radians, "
            f"got shape {phases_rad.shape}"
        )
    if raw.shape[0] < max(3, len(orders)):
        hint = " (three-beam needs >= 5; pass orders=(-1, 0, 1) for two-beam)" * (raw.shape[0] >= 3)
        raise ValueError(
            f"raw: {raw.shape[0]} phases cannot separate the {len(orders)} orders {orders}{hint}"
        )
    mixing = mixing_matrix(phases_rad, orders)
    singular = np.linalg.svd(mixing, compute_uv=False)
    if singular[-1] < 1e-6 * singular[0]:
        raise ValueError(
            "phases_rad: the phases must be distinct modulo 2 pi for the orders to separate "
            f"(condition number {singular[0] / max(singular[-1], 1e-300):.3g})"
        )
    unmix = np.linalg.pinv(mixing)  # (orders, phases)
    flat = raw.reshape(raw.shape[0], -1).astype(np.float64, copy=False)
    return (unmix @ flat).reshape((len(orders), *raw.shape[1:]))


# --------------------------------------------------------------------------------------------
# Overlaps of band 0 and a shifted band m
# --------------------------------------------------------------------------------------------


def edge_taper(shape: tuple[int, int], width_px: float) -> np.ndarray:
    """``(Y, X)`` weights that fall from 1 to 0 over ``width_px`` pixels at each lateral edge
    (a raised cosine), so that a non-periodic field of view has no edge jump in its FFT."""
    width_px = check_nonnegative("edge_px", width_px, "pixels")
    weights = []
    for n in shape:
        if width_px == 0:
            weights.append(np.ones(n))
            continue
        if 2 * width_px >= n:
            raise ValueError(
                f"edge_px: expected a taper narrower than half the field of view ({n} px), "
                f"got {width_px}"
            )
        distance = np.minimum(np.arange(n), n - 1 - np.arange(n)) + 0.5
        weights.append(
            np.where(distance < width_px, np.sin(np.pi / 2 * distance / width_px) ** 2, 1)
        )
    return weights[0][:, None] * weights[1][None, :]


def _ramp(shape: tuple[int, int], shift: np.ndarray, spacing: float, signed: bool) -> np.ndarray:
    """``exp(-i 2 pi shift . r)`` on a ``(Y, X)`` grid, ``r`` the pixel positions in µm from
    index 0 (``signed``: the wrapped positions of a kernel centred at index 0)."""
    y, x = (
        (signed_indices(n) if signed else np.arange(n)).astype(np.float64) * spacing for n in shape
    )
    return np.exp(-2j * np.pi * shift[0] * y)[:, None] * np.exp(-2j * np.pi * shift[1] * x)[None]


class _Overlaps:
    """Band 0 and the shifted band ``m`` of one orientation weighted by each other's OTF."""

    def __init__(self, band_otfs: np.ndarray, pixel_size_um: float):
        self.otfs = band_otfs
        self.kernels = np.fft.ifftn(band_otfs, axes=(-3, -2, -1))  # band PSFs, origin at [0]
        self.pixel = pixel_size_um
        self.shape = band_otfs.shape[-2:]
        z = band_otfs.shape[1]
        self.fy, self.fx = (np.fft.fftfreq(n, pixel_size_um) for n in self.shape)
        self.nyquist = tuple(0.5 / pixel_size_um * (1 - 1e-9) for _ in self.shape)
        self.in_band0 = np.abs(band_otfs[0]) > OTF_THRESHOLD
        self.not_dc = np.ones((z, *self.shape), bool)
        self.not_dc[0, 0, 0] = False  # a constant background lives there alone

    def shifted_otf(self, order: int, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``OTF_|order|(k + shift)`` and the mask of frequencies whose source ``k + shift``
        lies inside the grid (elsewhere the ramp's circular shift wrapped it)."""
        ramp = _ramp(self.shape, shift, self.pixel, signed=True)
        otf = np.fft.fftn(self.kernels[abs(order)] * ramp, axes=(-3, -2, -1))
        valid = (np.abs(self.fy + shift[0]) < self.nyquist[0])[:, None] & (
            np.abs(self.fx + shift[1]) < self.nyquist[1]
        )[None, :]
        return otf, valid

    def shifted_band(self, band: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """Spectrum of ``band`` moved by ``-shift``: ``B(k + shift)``."""
        ramp = _ramp(self.shape, shift, self.pixel, signed=False)
        return np.fft.fftn(band * ramp, axes=(-3, -2, -1))

    def pair(
        self, spectrum0: np.ndarray, band: np.ndarray, order: int, shift: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(ov_0, ov_m)`` spectra for band ``band`` (real space) of order ``order`` moved
        back by ``shift`` (cycles/µm), zero outside the common passband."""
        otf_m, valid = self.shifted_otf(order, shift)
        mask = valid & self.in_band0 & (np.abs(otf_m) > OTF_THRESHOLD) & self.not_dc
        ov0 = np.where(mask, spectrum0 * otf_m, 0)
        ovm = np.where(mask, self.shifted_band(band, shift) * self.otfs[0], 0)
        return ov0, ovm

    def lateral_cutoff(self) -> float:
        """Largest lateral frequency (cycles/µm) where OTF_0 is non-zero at some kz."""
        support = self.in_band0.any(axis=0)
        radius = np.hypot(self.fy[:, None], self.fx[None, :])
        return float(radius[support].max())


def check_band_otfs(band_otfs: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``band_otfs`` as complex128 ``(3, Z, Y, X)`` on the raw grid of stack shape ``shape``,
    scaled so that OTF_0 is 1 at DC; a ValueError naming ``band_otfs`` otherwise."""
    band_otfs = np.asarray(band_otfs)
    if band_otfs.shape != (3, *shape):
        raise ValueError(
            f"band_otfs: expected (3, Z, Y, X) = {(3, *shape)} (orders |m| = 0, 1, 2 on the raw "
            f"stack's unshifted 3D FFT grid), got shape {band_otfs.shape}"
        )
    band_otfs = band_otfs.astype(np.complex128)
    if not np.all(np.isfinite(band_otfs)) or abs(band_otfs[0, 0, 0, 0]) == 0:
        raise ValueError("band_otfs: expected finite values with OTF_0 non-zero at DC")
    return band_otfs / band_otfs[0, 0, 0, 0]


def _check_raw_orientation(raw: Any, phase_steps_rad: Any) -> tuple[np.ndarray, np.ndarray]:
    raw = np.asarray(raw)
    if raw.ndim != 4:
        raise ValueError(f"raw: expected one orientation (phases, Z, Y, X), got shape {raw.shape}")
    if phase_steps_rad is None:
        phase_steps_rad = nominal_phase_steps(raw.shape[0])
    return raw, np.asarray(phase_steps_rad, np.float64)


def _k0_vector(name: str, value: Any) -> np.ndarray:
    value = np.asarray(value, np.float64)
    if value.shape != (2,) or not np.all(np.isfinite(value)):
        raise ValueError(f"{name}: expected (ky, kx) in cycles/µm, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------
# k0
# --------------------------------------------------------------------------------------------


COARSE_CANDIDATES = 6
"""Local maxima taken from each coarse correlation map (whole-pixel and quarter-pixel), refined
and judged by their exact sub-pixel overlap correlation."""
COARSE_OVERSAMPLING = 4


def _correlation(a: np.ndarray, b: np.ndarray, oversampling: int = 1) -> np.ndarray:
    """``sum_k conj(A(k)) B(k + s)`` over 3D spectra ``A``, ``B`` for every lateral shift ``s``
    on a grid ``oversampling`` times finer than the frequency pixel: the 2D FFT of
    ``sum_z conj(a) b`` in real space (zero-padded for the finer grid), ``(Y', X')``."""
    product = np.sum(np.conj(np.fft.ifftn(a)) * np.fft.ifftn(b), axis=0)
    return np.fft.fft2(product, s=tuple(n * oversampling for n in product.shape))


def _coarse_candidates(
    overlaps: _Overlaps,
    spectrum0: np.ndarray,
    bands: dict[int, np.ndarray],
    k0_guess: np.ndarray | None,
    search_radius: float | None,
    min_k0: float | None,
) -> np.ndarray:
    """Candidate first-order shifts ``(K, 2)`` (cycles/µm): the best local maxima of the
    normalized overlap correlation of band 0 with the bands m > 0 at ``m s``, summed over the
    orders (each scaled to its maximum), on whole pixels and on quarter pixels.

    For each shift the score of order m is ``|<ov_0, ov_m>| / (|ov_0| |ov_m|)`` (the
    refinement's overlaps without the passband mask): the numerator is one correlation of the
    matched-filtered bands, the norms correlations of ``|B|^2`` with ``|OTF|^2``. Normalizing
    matters: the raw correlation of a sparse sample is largest near zero shift, where the OTFs
    overlap most. Both grids are needed: on whole pixels the rounding can cost the true peak
    more coherence than a spurious one has (sparse samples); on quarter pixels the norms,
    interpolated from whole pixels, are rough where they fall steeply (near the passband's
    edge, where two-beam SIM puts k0)."""
    shape = overlaps.shape
    cutoff = overlaps.lateral_cutoff()
    top = max(bands)
    otfs = overlaps.otfs
    spectra = {m: np.fft.fftn(band) for m, band in bands.items()}
    norms = {}
    for m, spectrum in spectra.items():
        norm0 = _correlation(np.abs(spectrum0) ** 2, np.abs(otfs[abs(m)]) ** 2).real
        normm = _correlation(np.abs(otfs[0]) ** 2, np.abs(spectrum) ** 2).real
        norms[m] = np.sqrt(np.maximum(norm0 * normm, 0))
    candidates = []
    for up in (1, COARSE_OVERSAMPLING):
        fine = tuple(n * up for n in shape)
        index = np.stack(np.meshgrid(*(signed_indices(n) for n in fine), indexing="ij"), -1)
        freq = index / (np.array(fine) * overlaps.pixel)  # cycles/µm
        radius = np.hypot(freq[..., 0], freq[..., 1])
        allowed = radius <= cutoff / top
        allowed &= radius >= (0.2 * cutoff if min_k0 is None else min_k0)
        if k0_guess is not None:
            reach = 0.1 * np.hypot(*k0_guess) if search_radius is None else search_radius
            reach = max(reach, 1.0 / (min(shape) * overlaps.pixel))
            allowed &= np.hypot(*(freq - k0_guess).transpose(2, 0, 1)) <= reach
        if not allowed.any():
            raise ValueError(
                "k0_guess: no candidate pattern frequency lies within the search region "
                f"(passband {cutoff:.3g} cycles/µm / {top}, min_k0 {min_k0}, guess {k0_guess})"
            )
        score = np.zeros(fine)
        for m, spectrum in spectra.items():
            numerator = np.abs(
                _correlation(spectrum0 * np.conj(otfs[0]), spectrum * np.conj(otfs[abs(m)]), up)
            )
            norm = norms[m]
            if up > 1:
                grid = np.meshgrid(*(np.arange(n) / up for n in fine), indexing="ij")
                norm = scipy.ndimage.map_coordinates(norm, grid, order=1, mode="grid-wrap")
            cosine = numerator / (norm + 1e-12 * norm.max() + 1e-300)
            # the score of order m at the shift m s for every candidate first-order shift s
            cosine = cosine[tuple((m * index[..., a]) % fine[a] for a in range(2))]
            score += cosine / max(cosine[allowed].max(), 1e-300)
        score = np.where(allowed, score, -np.inf)
        peaks = score == scipy.ndimage.maximum_filter(score, size=2 * up + 1, mode="wrap")
        peaks &= allowed
        best = np.argsort(score[peaks])[::-1][:COARSE_CANDIDATES]
        candidates.append(freq[peaks][best])
    return np.concatenate(candidates)


def _cosine(ov0: np.ndarray, ovm: np.ndarray) -> float:
    """``|<ov_0, ov_m>| / (|ov_0| |ov_m|)``, 1 where the two are proportional."""
    norm = np.linalg.norm(ov0) * np.linalg.norm(ovm)
    return float(abs(np.vdot(ov0, ovm)) / norm) if norm > 0 else 0.0


def _refine_k0(
    overlaps: _Overlaps,
    spectrum0: np.ndarray,
    bands: dict[int, np.ndarray],
    k0: np.ndarray,
    weights: np.ndarray,
    iterations: int,
) -> tuple[np.ndarray, float]:
    """Fixed-point refinement of ``k0`` (see the module docstring) and the summed overlap
    correlation at the result."""
    fov = min(n * overlaps.pixel for n in overlaps.shape)
    for _ in range(iterations):
        products = {}
        for m, band in bands.items():
            ov0, ovm = overlaps.pair(spectrum0, band, m, m * k0)
            products[m] = weights * np.sum(np.conj(np.fft.ifftn(ov0)) * np.fft.ifftn(ovm), 0)
        delta = _ramp_peak(products, overlaps.pixel, scale=0.3 / fov)
        k0 = k0 + delta
        if np.hypot(*delta) < 1e-7 / overlaps.pixel:
            break
    score = sum(_cosine(*overlaps.pair(spectrum0, b, m, m * k0)) for m, b in bands.items())
    return k0, score


def _ramp_peak(products: dict[int, np.ndarray], pixel: float, scale: float) -> np.ndarray:
    """The shift ``delta`` (cycles/µm) maximizing ``sum_m |sum_r P_m(r) exp(-i 2 pi m delta . r)|
    / sum_r |P_m(r)|``: the phase ramp common to the real-space overlap products."""
    terms = []
    for m, product in products.items():
        y, x = (np.arange(n) * pixel for n in product.shape)
        terms.append((m, product / np.abs(product).sum(), y, x))

    def negative(delta: np.ndarray) -> float:
        total = 0.0
        for m, product, y, x in terms:
            ey = np.exp(-2j * np.pi * m * delta[0] * y)
            ex = np.exp(-2j * np.pi * m * delta[1] * x)
            total += abs(np.dot(ey, (product * ex).sum(axis=1)))  # not BLAS: ~10x faster
        return -total

    simplex = np.array([[0.0, 0.0], [scale, 0.0], [0.0, scale]])
    result = scipy.optimize.minimize(
        negative,
        np.zeros(2),
        method="Nelder-Mead",
        options={"initial_simplex": simplex, "xatol": scale * 1e-4, "fatol": 1e-12},
    )
    return result.x


def estimate_k0(
    raw: np.ndarray,
    band_otfs: np.ndarray,
    *,
    pixel_size_um: float,
    phase_steps_rad: Sequence[float] | None = None,
    orders: Sequence[int] = ORDERS,
    k0_guess: Sequence[float] | None = None,
    search_radius: float | None = None,
    min_k0: float | None = None,
    iterations: int = 10,
    edge_px: float = 4.0,
) -> np.ndarray:
    """The first-order pattern vector of one orientation, to sub-pixel precision.

    Parameters
    ----------
    raw : (phases, Z, Y, X) array_like of float
        One orientation's raw stacks, background subtracted.
    band_otfs : (3, Z, Y, X) array_like of complex
        Band OTFs ``OTF_|m|`` on the raw stack's unshifted FFT grid
        (:func:`~nstm.systems.sim3d.bands.band_otfs_from_psf`).
    pixel_size_um : float
        Raw pixel size at the sample, µm.
    phase_steps_rad : (phases,) array_like of float, optional
        The phase of each step up to a common offset (default ``2 pi j / phases``). Its
        direction fixes the sign of ``k0``: band ``+1`` (the coefficient of
        ``exp(+i phi_j)``) holds the sample moved to ``+k0``.
    orders : sequence of int
        ``(-2, ..., 2)`` (three-beam) or ``(-1, 0, 1)`` (two-beam).
    k0_guess : (2,) array_like of float, optional
        Approximate ``(ky, kx)`` in cycles/µm; the coarse search then stays within
        ``search_radius`` (default 10 % of ``|k0_guess|``) of it.
    min_k0 : float, optional
        Smallest ``|k0|`` searched, cycles/µm (default a fifth of the lateral passband), which
        keeps the search off the band-0 leakage at zero shift.
    edge_px : float
        Width in raw pixels of the edge zone whose voxels count less in the sub-pixel fit
        (weights :func:`edge_taper`): a real field of view is not periodic, and the FFT's
        wrap-around lands there. The data are not tapered: a taper does not commute with the
        band OTFs (the shifted OTF's slope turns the taper's gradient into a phase ramp) and
        biases ``k0`` by ~0.1 %.
    iterations : int
        Most refinement passes (each re-computes the overlaps at the new ``k0``).

    Returns
    -------
    (2,) ndarray of float64
        ``(ky, kx)`` in cycles/µm.
    """
    raw, steps = _check_raw_orientation(raw, phase_steps_rad)
    pixel_size_um = check_positive("pixel_size_um", pixel_size_um, "µm")
    otfs = check_band_otfs(band_otfs, raw.shape[1:])
    weights = edge_taper(raw.shape[-2:], edge_px)
    bands = separate_bands(raw, steps, orders=orders)
    orders = _check_orders(orders)
    guess = None if k0_guess is None else _k0_vector("k0_guess", k0_guess)
    overlaps = _Overlaps(otfs, pixel_size_um)
    positive = {m: bands[orders.index(m)] for m in orders if m > 0}
    spectrum0 = np.fft.fftn(bands[orders.index(0)])
    candidates = _coarse_candidates(overlaps, spectrum0, positive, guess, search_radius, min_k0)
    # two passes bring a candidate within reach of its peak; the best is then refined fully
    refined = [_refine_k0(overlaps, spectrum0, positive, c, weights, 2) for c in candidates]
    best = refined[int(np.argmax([score for _, score in refined]))][0]
    return _refine_k0(overlaps, spectrum0, positive, best, weights, int(iterations))[0]


# --------------------------------------------------------------------------------------------
# Phases and modulation
# --------------------------------------------------------------------------------------------


class _PhaseProblem:
    """Weighted Gram matrices of the raw stacks' real-space overlap images, so that the overlap
    regression of any set of phases (any unmixing matrix) costs a few small matrix products:
    the overlaps are linear in the raw stacks."""

    def __init__(self, raw, otfs, k0, pixel, orders, weights):
        self.orders = orders
        overlaps = _Overlaps(otfs, pixel)
        spectra = np.fft.fftn(raw, axes=(-3, -2, -1))
        self.gram = {}
        for m in (m for m in orders if m > 0):
            otf_m, valid = overlaps.shifted_otf(m, m * k0)
            mask = valid & overlaps.in_band0 & (np.abs(otf_m) > OTF_THRESHOLD) & overlaps.not_dc
            left = [np.fft.ifftn(np.where(mask, s * otf_m, 0)) for s in spectra]  # ov_0 each
            right = [
                np.fft.ifftn(np.where(mask, overlaps.shifted_band(r, m * k0) * otfs[0], 0))
                for r in raw
            ]
            self.gram[m] = tuple(
                np.array([[np.sum(weights * np.conj(a) * b) for b in bs] for a in as_])
                for as_, bs in ((left, left), (left, right), (right, right))
            )

    def slopes(self, phases: np.ndarray) -> dict[int, tuple[complex, float]]:
        """Per order m > 0: the least-squares slope ``c_m`` of ``ov_m`` on ``ov_0`` (normal
        equation) and the normalized correlation of the two."""
        unmix = np.linalg.pinv(mixing_matrix(phases, self.orders))
        w0 = unmix[self.orders.index(0)]
        out = {}
        for m, (g00, g0m, gmm) in self.gram.items():
            wm = unmix[self.orders.index(m)]
            cross = w0.conj() @ g0m @ wm
            power0 = (w0.conj() @ g00 @ w0).real
            powerm = (wm.conj() @ gmm @ wm).real
            out[m] = (cross / power0, abs(cross) / np.sqrt(power0 * powerm))
        return out


def estimate_phases_and_modulation(
    raw: np.ndarray,
    band_otfs: np.ndarray,
    k0: Sequence[float],
    *,
    pixel_size_um: float,
    phase_steps_rad: Sequence[float] | None = None,
    orders: Sequence[int] = ORDERS,
    refine_steps: bool = False,
    edge_px: float = 4.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The absolute pattern phases and the orders' modulation of one orientation.

    With ``k0`` known, band ``m`` moved back by ``m k0`` and weighted by ``OTF_0`` is
    ``amp_m exp(i m phi_0)`` times band 0 weighted by ``OTF_m(k + m k0)``, over their common
    passband. The least-squares slope ``c_m`` of one on the other gives the starting phase
    ``phi_0 = angle(c_1)`` and the modulation ``amp_m = |c_m|``.

    Parameters
    ----------
    raw : (phases, Z, Y, X) array_like of float
        One orientation's raw stacks, background subtracted.
    band_otfs : (3, Z, Y, X) array_like of complex
        Band OTFs on the raw stack's unshifted FFT grid, scaled so that OTF_0 is 1 at DC (they
        are rescaled so); the modulation is relative to them.
    k0 : (2,) array_like of float
        First-order pattern vector ``(ky, kx)``, cycles/µm.
    pixel_size_um : float
        Raw pixel size at the sample, µm.
    phase_steps_rad : (phases,) array_like of float, optional
        Each step's phase relative to the first (default ``2 pi j / phases``).
    orders : sequence of int
        ``(-2, ..., 2)`` or ``(-1, 0, 1)``.
    refine_steps : bool
        False: trust the steps and estimate only the start ``phi_0``. True: estimate every
        step's phase as well, choosing the phases whose separated bands agree best with each
        other (maximum normalized overlap correlation summed over the orders; at the true
        phases the overlaps are exactly proportional), from the given steps as the starting
        point. Use it when the phase stepper is not trusted. With as many phases as orders
        the mixing alone cannot tell the phases (any distinct phases separate the data), so
        the answer rests on the agreement of the bands, i.e. on the sample.
    edge_px : float
        Width in raw pixels of the edge zone down-weighted in the regression (as in
        :func:`estimate_k0`); 0 for none.

    Returns
    -------
    phases : (phases,) ndarray of float64
        First-order pattern phase of each step at raw voxel (0, 0, 0), radians (the first in
        [-pi, pi), the rest the first plus the steps).
    modulation : (max order,) ndarray of float64
        ``amp_m`` of orders ``m = 1, 2`` (``1`` for two-beam) relative to order 0. For three
        beams of equal amplitude and full contrast it is ``(2/3, 1/3)``.
    """
    raw, steps = _check_raw_orientation(raw, phase_steps_rad)
    orders = _check_orders(orders)
    pixel_size_um = check_positive("pixel_size_um", pixel_size_um, "µm")
    otfs = check_band_otfs(band_otfs, raw.shape[1:])
    k0 = _k0_vector("k0", k0)
    # validates the phase count against the orders
    separate_bands(raw[:, :1, :1, :1], steps, orders=orders)
    weights = edge_taper(raw.shape[-2:], edge_px)
    problem = _PhaseProblem(np.asarray(raw, np.float64), otfs, k0, pixel_size_um, orders, weights)
    steps = steps - steps[0]
    if refine_steps and len(steps) > 1:

        def negative(free: np.ndarray) -> float:
            fits = problem.slopes(np.concatenate([[0.0], free]))
            return -sum(score for _, score in fits.values())

        result = scipy.optimize.minimize(
            negative,
            steps[1:],
            method="Nelder-Mead",
            options={"xatol": 1e-5, "fatol": 1e-10, "maxiter": 4000},
        )
        steps = np.concatenate([[0.0], result.x])
    fits = problem.slopes(steps)
    start = np.angle(fits[1][0])
    modulation = np.array([abs(fits[m][0]) for m in sorted(fits)])
    return start + steps, modulation


# --------------------------------------------------------------------------------------------
# All orientations
# --------------------------------------------------------------------------------------------


def _as_array(name: str, value: Any, shape: tuple[int, ...], unit: str) -> np.ndarray:
    array = np.asarray(value, np.float64)
    if array.shape != shape or not np.all(np.isfinite(array)):
        raise ValueError(
            f"{name}: expected finite values of shape {shape} in {unit}, got {array!r}"
        )
    return array


@dataclass(frozen=True)
class SIMParameters:
    """The pattern of each orientation, in the conventions of ``bands.py``.

    Attributes
    ----------
    k0 : (orientations, 2) ndarray
        First-order lateral pattern frequency ``(ky, kx)``, cycles/µm.
    phases : (orientations, phases) ndarray
        First-order pattern phase of each raw stack at raw voxel (0, 0, 0), radians.
    modulation : (orientations, orders) ndarray
        ``amp_m`` of orders ``m = 1, 2`` (one column for two-beam) relative to order 0 and to
        the band OTFs' scale (OTF_0 1 at DC; ``(2/3, 1/3)`` for three equal beams at full
        contrast).
    estimated : dict of str to bool
        Whether ``k0``, ``phases``, ``modulation`` were estimated from the data (or given).
    """

    k0: np.ndarray
    phases: np.ndarray
    modulation: np.ndarray
    estimated: dict[str, bool] = field(
        default_factory=lambda: {"k0": False, "phases": False, "modulation": False}
    )

    def __post_init__(self) -> None:
        k0 = np.asarray(self.k0, np.float64)
        if k0.ndim != 2 or k0.shape[1] != 2 or not np.all(np.isfinite(k0)):
            raise ValueError(f"k0: expected (orientations, 2) (ky, kx) in cycles/µm, got {k0!r}")
        if np.any(np.hypot(k0[:, 0], k0[:, 1]) == 0):
            raise ValueError("k0: expected non-zero pattern frequencies in cycles/µm")
        phases = np.asarray(self.phases, np.float64)
        if phases.ndim != 2 or phases.shape[0] != k0.shape[0] or not np.isfinite(phases).all():
            raise ValueError(
                f"phases: expected ({k0.shape[0]}, phases) finite radians, got {phases.shape}"
            )
        modulation = np.asarray(self.modulation, np.float64)
        if modulation.ndim == 1:
            modulation = np.broadcast_to(modulation, (k0.shape[0], modulation.size)).copy()
        if (
            modulation.shape[0] != k0.shape[0]
            or modulation.shape[1] not in (1, 2)
            or not np.all(np.isfinite(modulation))
            or np.any(modulation < 0)
        ):
            raise ValueError(
                f"modulation: expected ({k0.shape[0]}, 2) (orders 1, 2) or ({k0.shape[0]}, 1) "
                f"non-negative amplitudes, got {modulation!r}"
            )
        object.__setattr__(self, "k0", k0)
        object.__setattr__(self, "phases", phases)
        object.__setattr__(self, "modulation", modulation)
        object.__setattr__(self, "estimated", {k: bool(v) for k, v in self.estimated.items()})

    @property
    def orientations(self) -> int:
        return self.k0.shape[0]

    @property
    def orders(self) -> tuple[int, ...]:
        """The orders ``-M..M`` that ``modulation`` describes."""
        top = self.modulation.shape[1]
        return tuple(range(-top, top + 1))

    @property
    def line_spacing_um(self) -> np.ndarray:
        """``(orientations,)`` period of the first-order pattern, ``1 / |k0|`` µm."""
        return 1.0 / np.hypot(self.k0[:, 0], self.k0[:, 1])

    @property
    def angle_deg(self) -> np.ndarray:
        """``(orientations,)`` direction of ``k0`` in degrees, ``atan2(ky, kx)``: from +x
        (columns) towards +y (rows)."""
        return np.degrees(np.arctan2(self.k0[:, 0], self.k0[:, 1]))

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, with the derived line spacing and angle for the reader."""
        return {
            "k0_cycles_per_um": self.k0.tolist(),
            "k0_axes": "(ky, kx)",
            "line_spacing_um": self.line_spacing_um.tolist(),
            "angle_deg": self.angle_deg.tolist(),
            "phases_rad": self.phases.tolist(),
            "phase_origin": "first-order phase at the centre of raw voxel (0, 0, 0)",
            "modulation": self.modulation.tolist(),
            "modulation_orders": list(range(1, self.modulation.shape[1] + 1)),
            "estimated": dict(self.estimated),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The parameters as JSON text (``parameters.json``)."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SIMParameters:
        """Inverse of :meth:`to_dict` (derived fields ignored)."""
        return cls(
            k0=data["k0_cycles_per_um"],
            phases=data["phases_rad"],
            modulation=data["modulation"],
            estimated=data.get("estimated", {}),
        )


def estimate_parameters(
    raw: np.ndarray,
    *,
    pixel_size_um: float,
    z_step_um: float,
    band_otfs: np.ndarray | None = None,
    psf: np.ndarray | None = None,
    kz0: float | None = None,
    background: float = 0.0,
    phase_steps_rad: Sequence[float] | np.ndarray | None = None,
    orders: Sequence[int] = ORDERS,
    k0_guess: np.ndarray | None = None,
    k0: np.ndarray | None = None,
    phases: np.ndarray | None = None,
    modulation: np.ndarray | None = None,
    refine_steps: bool = False,
    edge_px: float = 4.0,
) -> SIMParameters:
    """Estimate every orientation's pattern from the raw data; given values override.

    Parameters
    ----------
    raw : (orientations, phases, Z, Y, X) array_like of float
        Camera values.
    pixel_size_um, z_step_um : float
        Raw pixel size at the sample and plane spacing, µm.
    band_otfs : (3, Z, Y, X) array_like of complex, optional
        Band OTFs on the raw stack's unshifted FFT grid; or give ``psf`` and ``kz0``.
    psf : (Z', Y', X') array_like of float, optional
        Widefield PSF, peak at its centre index, no larger than the stack; zero-padded to it.
    kz0 : float, optional
        Axial frequency of the first orders, cycles/µm (with ``psf``).
    background : float
        Camera offset subtracted first, counts.
    phase_steps_rad : (phases,) or (orientations, phases) array_like, optional
        Phase steps relative to each orientation's first stack (default ``2 pi j / phases``).
    orders : sequence of int
        ``(-2, ..., 2)`` (three-beam) or ``(-1, 0, 1)`` (two-beam).
    k0_guess : (orientations, 2) array_like, optional
        Approximate pattern vectors to search near, cycles/µm.
    k0, phases, modulation : array_like, optional
        Values to use instead of estimating them (shapes of :class:`SIMParameters`).
    refine_steps : bool
        Estimate each step's phase, not only the start (see
        :func:`estimate_phases_and_modulation`).
    edge_px : float
        Width in raw pixels of the edge zone down-weighted in the fits (see
        :func:`estimate_k0`); 0 for none.

    Returns
    -------
    SIMParameters
    """
    raw = np.asarray(raw)
    if raw.ndim != 5:
        raise ValueError(
            f"raw: expected (orientations, phases, Z, Y, X) camera values, got shape {raw.shape}"
        )
    if not np.all(np.isfinite(raw)):
        raise ValueError("raw: expected finite camera values, got NaN or inf")
    pixel_size_um = check_positive("pixel_size_um", pixel_size_um, "µm")
    z_step_um = check_positive("z_step_um", z_step_um, "µm")
    n_dir, n_phase = raw.shape[:2]
    stack = raw.shape[2:]
    otfs = _band_otfs(band_otfs, psf, kz0, stack, z_step_um)
    steps = (
        np.tile(nominal_phase_steps(n_phase), (n_dir, 1))
        if phase_steps_rad is None
        else np.broadcast_to(
            _as_array_any("phase_steps_rad", phase_steps_rad, n_dir, n_phase), (n_dir, n_phase)
        )
    )
    data = raw.astype(np.float64) - check_finite("background", background)
    given = {
        "k0": k0 is not None,
        "phases": phases is not None,
        "modulation": modulation is not None,
    }
    if k0 is not None:
        k0 = _as_array("k0", k0, (n_dir, 2), "cycles/µm")
    else:
        guesses = (
            [None] * n_dir
            if k0_guess is None
            else _as_array("k0_guess", k0_guess, (n_dir, 2), "cycles/µm")
        )
        k0 = np.stack(
            [
                estimate_k0(
                    data[d],
                    otfs,
                    pixel_size_um=pixel_size_um,
                    phase_steps_rad=steps[d],
                    orders=orders,
                    k0_guess=guesses[d],
                    edge_px=edge_px,
                )
                for d in range(n_dir)
            ]
        )
    top = max(_check_orders(orders))
    est_phases = np.empty((n_dir, n_phase))
    est_mod = np.empty((n_dir, top))
    if phases is None or modulation is None:
        for d in range(n_dir):
            est_phases[d], est_mod[d] = estimate_phases_and_modulation(
                data[d],
                otfs,
                k0[d],
                pixel_size_um=pixel_size_um,
                phase_steps_rad=steps[d],
                orders=orders,
                refine_steps=refine_steps,
                edge_px=edge_px,
            )
            if refine_steps and not given["k0"]:
                # wrong steps leak bands into each other and bias k0 (~0.1 %): once more with
                # the refined steps, near the first estimate
                spacing = 1.0 / (min(stack[1:]) * pixel_size_um)
                refined_steps = est_phases[d] - est_phases[d, 0]
                k0[d] = estimate_k0(
                    data[d],
                    otfs,
                    pixel_size_um=pixel_size_um,
                    phase_steps_rad=refined_steps,
                    orders=orders,
                    k0_guess=k0[d],
                    search_radius=spacing,
                    edge_px=edge_px,
                )
                est_phases[d], est_mod[d] = estimate_phases_and_modulation(
                    data[d],
                    otfs,
                    k0[d],
                    pixel_size_um=pixel_size_um,
                    phase_steps_rad=refined_steps,
                    orders=orders,
                    refine_steps=True,
                    edge_px=edge_px,
                )
    if phases is not None:
        est_phases = _as_array("phases", phases, (n_dir, n_phase), "radians")
    if modulation is not None:
        est_mod = np.broadcast_to(np.asarray(modulation, np.float64), (n_dir, top))
    return SIMParameters(
        k0=k0,
        phases=est_phases,
        modulation=est_mod,
        estimated={name: not was_given for name, was_given in given.items()},
    )


def check_finite(name: str, value: Any) -> float:
    """``value`` as a finite float (counts), or a ValueError naming ``name``."""
    number = float(value)
    if not np.isfinite(number):
        raise ValueError(f"{name}: expected a finite number of counts, got {value!r}")
    return number


def _as_array_any(name: str, value: Any, n_dir: int, n_phase: int) -> np.ndarray:
    array = np.asarray(value, np.float64)
    if array.shape not in ((n_phase,), (n_dir, n_phase)) or not np.all(np.isfinite(array)):
        raise ValueError(
            f"{name}: expected ({n_phase},) or ({n_dir}, {n_phase}) finite radians, "
            f"got shape {array.shape}"
        )
    return array


def psf_on_grid(psf: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """Zero-pad a PSF (peak at its centre index ``n // 2``) to ``shape`` keeping the peak at
    the new centre index; a ValueError if it is larger than ``shape`` on some axis."""
    psf = np.asarray(psf, np.float64)
    if psf.ndim != 3 or any(a > b for a, b in zip(psf.shape, shape, strict=True)):
        raise ValueError(
            f"psf: expected a 3D PSF no larger than the stack {shape}, got {psf.shape}"
        )
    out = np.zeros(shape)
    start = [n // 2 - p // 2 for n, p in zip(shape, psf.shape, strict=True)]
    out[tuple(slice(s, s + p) for s, p in zip(start, psf.shape, strict=True))] = psf
    return out


def _band_otfs(band_otfs, psf, kz0, stack, z_step_um) -> np.ndarray:
    if (band_otfs is None) == (psf is None):
        raise ValueError("band_otfs, psf: expected exactly one of them (with psf, kz0 too)")
    if band_otfs is not None:
        return check_band_otfs(band_otfs, stack)
    if kz0 is None:
        raise ValueError("kz0: expected the first orders' axial frequency in cycles/µm with psf")
    return band_otfs_from_psf(psf_on_grid(psf, stack), kz0=kz0, z_step_um=z_step_um)
