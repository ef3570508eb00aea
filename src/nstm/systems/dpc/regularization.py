r"""Data-driven choice of the Tikhonov weight of the conventional DPC reconstruction.

`tikhonov_dpc` solves ``min ||A x - y||^2 + alpha ||x||^2`` for the static absorption and phase
``x = (mu, phi)``; `choose_tikhonov_reg` picks ``alpha`` from the frames ``y`` alone, by one of
four standard rules (Vogel, *Computational Methods for Inverse Problems*, SIAM 2002, ch. 7;
Hansen, *Rank-Deficient and Discrete Ill-Posed Problems*, SIAM 1998, ch. 7):

* ``"gcv"``: generalized cross-validation (Golub, Heath & Wahba 1979), no noise level needed;
* ``"upre"``: the unbiased predictive-risk estimate (Mallows' C_p), with the noise level;
* ``"discrepancy"``: Morozov's discrepancy principle, with the noise level;
* ``"lcurve"``: the corner (maximum curvature) of the L-curve (Hansen & O'Leary 1993).

The noise level is estimated from the frames themselves (`estimate_noise_sigma`): the DPC
transfer functions vanish exactly outside the ``(na + na_illum) / wavelength`` passband, so the
frames' spectrum there is noise alone.

All rules work on the periodic model of the measured ``H x W`` grid, where the normal equations
are one 2 x 2 Hermitian system ``G(v) = M(v)^H M(v)`` per spatial frequency ``v``, with
``M(v) = [Hu_j(v), Hp_j(v)]_j`` of shape ``(frames, 2)``. With the eigenvalues ``s_k(v)`` of
``G(v)`` and the data energies ``c_k(v) = |u_k(v)^H y(v)|^2`` along its left singular vectors
``u_k = M v_k / sqrt(s_k)``, every quantity a rule needs is a sum of rational functions of
``alpha`` (filter factors ``f_k = s_k / (s_k + alpha)``), so one decomposition serves any number
of weights:

.. math::

    \|r_\alpha\|^2 = \tfrac{1}{HW}\Big(P + \sum_{v,k} (1 - f_k)^2 c_k\Big),\quad
    \|x_\alpha\|^2 = \tfrac{1}{HW}\sum_{v,k} f_k^2\, c_k / s_k,\quad
    T(\alpha) = \operatorname{tr} A (A^T A + \alpha)^{-1} A^T = \sum_{v,k} f_k,

where ``P`` is the data energy outside the range of every ``M(v)`` (the residual floor, the
out-of-band spectrum included) and the sums run over the full two-sided spectrum (unnormalized
DFT, hence the Parseval factor ``1 / HW``). ``T`` is the trace of the real ``(nHW x nHW)``
influence matrix: the model is C-linear and maps real images to real images, so its trace is
that of the complexified operator, which the unitary DFT block-diagonalizes into the ``n x n``
blocks ``M (G + alpha)^{-1} M^H`` with traces ``tr (G + alpha)^{-1} G = sum_k s_k / (s_k +
alpha)``.

Real frames are not periodic: the jump between opposite borders is data that the periodic model
cannot fit, which every rule would read as noise (GCV's weight then comes out several times too
large on ~100 px frames). By default the rules therefore see each frame's periodic component
(`periodic_component`, Moisan 2011), which drops that jump and little else.
"""

from __future__ import annotations

import dataclasses
import typing
import warnings
from typing import Literal

import numpy as np
import scipy.fft
import scipy.optimize
import scipy.signal

from ...fourier import negated_frequency
from .tikhonov import check_problem

__all__ = [
    "DEFAULT_BOUNDS",
    "METHODS",
    "Method",
    "RegularizationChoice",
    "choose_tikhonov_reg",
    "estimate_noise_sigma",
    "periodic_component",
]

Method = Literal["gcv", "upre", "discrepancy", "lcurve"]
METHODS: tuple[str, ...] = typing.get_args(Method)

# Default search range of the weight, in units of the squared transfer functions (|Hu(0)|^2 = 4
# per frame), log-spaced at 10 points per decade before a continuous refinement. Above 1e-2 the
# weight already halves the phase transfer on the lowest ~15 % of the passband (the smaller
# eigenvalue of G is below 1e-2 there for the usual half-disc sources); one weight shared with
# the absorption can then prefer to give the phase up altogether (a second GCV minimum and
# L-curve corner near 1e-1..1 on smooth, noisy samples), which is never the aim.
DEFAULT_BOUNDS: tuple[float, float] = (1e-7, 1e-2)
_GRID_PER_DECADE = 10
# Eigenvalues of G below this fraction of the largest are rounding noise (no data direction).
_EIGEN_RTOL = 1e-12
# Cosine-taper fraction of the Tukey window of the noise estimate: tapering the image borders
# keeps the edge discontinuity of non-periodic frames from leaking into the out-of-band bins,
# while the flat centre weights the pixels nearly evenly (spatially varying shot noise).
_TAPER = 0.5


@dataclasses.dataclass(frozen=True)
class RegularizationChoice:
    """The Tikhonov weight chosen by a rule, with the evidence for it.

    Attributes
    ----------
    reg : float
        The chosen weight, for both ``reg_absorption`` and ``reg_phase`` of `tikhonov_dpc`
        (units of the squared transfer functions).
    method : str
        The rule, one of `METHODS`.
    candidates : (k,) ndarray of float64
        The weights at which the criterion was evaluated, increasing.
    criterion : (k,) ndarray of float64
        The rule's criterion at each candidate: ``"gcv"`` the GCV function
        ``(||r||^2 / m) / (1 - tr / m)^2`` and ``"upre"`` the predictive-risk estimate
        ``(||r||^2 + 2 sigma^2 tr) / m - sigma^2`` (both per datum, in squared frame units,
        minimized), ``"discrepancy"`` the residual ratio ``||r||^2 / (m sigma^2)`` (set equal to
        ``tau^2``), ``"lcurve"`` the curvature of ``(log ||r||^2, log ||x||^2)`` against
        ``log reg`` (maximized);
        ``m = frames * H * W``.
    noise_sigma : float or None
        Noise standard deviation per pixel used by ``"upre"`` and ``"discrepancy"`` (given or
        estimated, frame units); None for the other rules.
    """

    reg: float
    method: str
    candidates: np.ndarray
    criterion: np.ndarray
    noise_sigma: float | None = None


@dataclasses.dataclass(frozen=True)
class _Spectrum:
    """Per-frequency eigen-decomposition of the periodic DPC normal equations.

    Only frequencies with data directions (``s_1 > 0``) are kept, flattened; ``weight`` counts
    how many bins of the full spectrum each half-spectrum bin stands for (1 or 2).
    """

    s: np.ndarray  # (2, bins) eigenvalues of G, descending, 0 where numerically singular
    c: np.ndarray  # (2, bins) |u_k^H y|^2, the data energy along each direction; 0 where s = 0
    weight: np.ndarray  # (bins,)
    floor: float  # P: full-spectrum data energy outside the range of M
    data_count: int  # m = frames * H * W
    pixels: int  # H * W, the Parseval factor of the unnormalized FFT

    def _sum(self, values: np.ndarray) -> float:
        return float(np.sum(self.weight * values.sum(axis=0)))

    def trace(self, reg: float) -> float:
        """Trace of the influence matrix ``A (A^T A + reg)^{-1} A^T``."""
        return self._sum(self.s / (self.s + reg))

    def residual(self, reg: float) -> float:
        """``||A x_reg - y||^2`` in real space (sum over frames and pixels)."""
        damping = reg / (self.s + reg)
        return (self.floor + self._sum(damping**2 * self.c)) / self.pixels

    def solution(self, reg: float) -> float:
        """``||x_reg||^2 = ||mu||^2 + ||phi||^2`` in real space."""
        return self._sum(self.s * self.c / (self.s + reg) ** 2) / self.pixels

    def lcurve_curvature(self, reg: float) -> float:
        """Curvature of ``t -> (log ||r||^2, log ||x||^2)`` at ``t = log reg``.

        Signed so that the corner of the L (small weights: steep branch, large weights: flat
        branch) has positive curvature; the factor 2 between ``log ||r||`` and ``log ||r||^2``
        scales the curvature by 1/2 and moves no maximum.
        """
        s, c, u = self.s, self.c, reg
        rho = self.residual(u) * self.pixels
        eta = self._sum(s * c / (s + u) ** 2)
        # d/du and d^2/du^2 of rho and eta, then d/dt = u d/du for t = log u.
        rho_u = self._sum(2.0 * c * s * u / (s + u) ** 3)
        rho_uu = self._sum(2.0 * c * s * (s - 2.0 * u) / (s + u) ** 4)
        eta_u = self._sum(-2.0 * c * s / (s + u) ** 3)
        eta_uu = self._sum(6.0 * c * s / (s + u) ** 4)
        rho_t, rho_tt = u * rho_u, u * rho_u + u * u * rho_uu
        eta_t, eta_tt = u * eta_u, u * eta_u + u * u * eta_uu
        a_t, b_t = rho_t / rho, eta_t / eta
        a_tt, b_tt = rho_tt / rho - a_t**2, eta_tt / eta - b_t**2
        return float((a_t * b_tt - a_tt * b_t) / (a_t**2 + b_t**2) ** 1.5)


def _on_measured_grid(tf: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Transfer functions of a padded canvas at the frequencies of the measured grid.

    Bilinear interpolation in frequency (cycles/pixel), periodic over the canvas grid. Nearest
    frequencies would not do: near DC, where the phase transfer grows linearly and the
    regularization matters most, the nearest canvas bin can be 30 % off.
    """
    for axis, size in ((-2, shape[0]), (-1, shape[1])):
        canvas = tf.shape[axis]
        if canvas == size:
            continue
        position = np.fft.fftfreq(size) * canvas
        below = np.floor(position).astype(int)
        fraction = position - below
        fraction = fraction.reshape((-1, 1) if axis == -2 else (1, -1))
        tf = (1.0 - fraction) * np.take(tf, below % canvas, axis=axis) + fraction * np.take(
            tf, (below + 1) % canvas, axis=axis
        )
    return tf


def _validate(images, absorption_tf, phase_tf, pad) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float64 frames and complex128 transfer functions on the measured grid, or a ValueError."""
    images = check_problem(images, absorption_tf, phase_tf, pad)
    shape = images.shape[1:]
    tfs = [
        _on_measured_grid(np.asarray(tf).astype(np.complex128), shape)
        for tf in (absorption_tf, phase_tf)
    ]
    return images, tfs[0], tfs[1]


def _decompose(images: np.ndarray, hu: np.ndarray, hp: np.ndarray) -> _Spectrum:
    """Eigen-decomposition of ``G(v)`` and the data energies along it, on the rfft grid."""
    frames, height, width = images.shape
    half = width // 2 + 1
    # Hermitian parts: the real-image model Re IFFT(H FFT x) equals IFFT(H_r FFT x) (see
    # `nstm.systems.dpc.tikhonov`); for transfer functions from `transfer_functions`, H_r = H.
    hu = (0.5 * (hu + np.conj(negated_frequency(hu))))[..., :half]
    hp = (0.5 * (hp + np.conj(negated_frequency(hp))))[..., :half]
    spectrum = scipy.fft.rfft2(images, workers=-1)
    weight = np.full(half, 2.0)  # rfft columns other than 0 and Nyquist stand for two bins
    weight[0] = 1.0
    if width % 2 == 0:
        weight[-1] = 1.0
    weight = np.broadcast_to(weight, (height, half))
    energy = float(np.sum(weight * np.sum(np.abs(spectrum) ** 2, axis=0)))

    gram = np.empty((height, half, 2, 2), dtype=np.complex128)
    gram[..., 0, 0] = np.sum(np.abs(hu) ** 2, axis=0)
    gram[..., 1, 1] = np.sum(np.abs(hp) ** 2, axis=0)
    gram[..., 0, 1] = np.sum(np.conj(hu) * hp, axis=0)
    gram[..., 1, 0] = np.conj(gram[..., 0, 1])
    keep = gram[..., 0, 0].real + gram[..., 1, 1].real > 0  # in the passband
    gram = gram[keep]
    rhs = np.stack(  # M^H y, (bins, 2)
        [
            np.sum(np.conj(hu) * spectrum, axis=0)[keep],
            np.sum(np.conj(hp) * spectrum, axis=0)[keep],
        ],
        axis=-1,
    )
    eigvals, eigvecs = np.linalg.eigh(gram)  # ascending
    eigvals, eigvecs = eigvals[:, ::-1], eigvecs[:, :, ::-1]
    valid = eigvals > _EIGEN_RTOL * eigvals[:, :1]
    s = np.where(valid, eigvals, 0.0)
    # |u_k^H y|^2 = |v_k^H M^H y|^2 / s_k with u_k = M v_k / sqrt(s_k).
    projection = np.abs(np.einsum("bjk,bj->bk", np.conj(eigvecs), rhs)) ** 2
    c = np.where(valid, projection / np.where(valid, s, 1.0), 0.0)
    weight = weight[keep]
    floor = max(energy - float(np.sum(weight * c.sum(axis=1))), 0.0)
    return _Spectrum(
        s=np.ascontiguousarray(s.T),
        c=np.ascontiguousarray(c.T),
        weight=weight,
        floor=floor,
        data_count=frames * height * width,
        pixels=height * width,
    )


def periodic_component(images: np.ndarray) -> np.ndarray:
    """Periodic component of each frame (Moisan's periodic plus smooth decomposition).

    Moisan, *J. Math. Imaging Vis.* 39, 161 (2011): ``u = p + s``, where the smooth component
    ``s`` (zero mean) solves ``Laplacian(s) = Laplacian_periodic(u) - Laplacian_free(u)``, a
    source living only on the border pixels and equal to the jumps across the periodic
    wrap-around; ``p`` then has no such jumps and keeps the rest of ``u``, noise included.

    Parameters
    ----------
    images : (..., H, W) array_like
        Real images.

    Returns
    -------
    (..., H, W) ndarray of float64
        The periodic component ``p`` of each image (same units), with the mean of ``u``.
    """
    images = np.asarray(images, dtype=np.float64)
    jumps = np.zeros_like(images)
    jumps[..., 0, :] += images[..., -1, :] - images[..., 0, :]
    jumps[..., -1, :] -= images[..., -1, :] - images[..., 0, :]
    jumps[..., :, 0] += images[..., :, -1] - images[..., :, 0]
    jumps[..., :, -1] -= images[..., :, -1] - images[..., :, 0]
    height, width = images.shape[-2:]
    laplacian = (
        2 * np.cos(2 * np.pi * np.fft.fftfreq(height))[:, None]
        + 2 * np.cos(2 * np.pi * np.fft.fftfreq(width))[None, :]
        - 4
    )
    laplacian[0, 0] = 1.0
    smooth = scipy.fft.fft2(jumps, workers=-1) / laplacian
    smooth[..., 0, 0] = 0.0
    return images - scipy.fft.ifft2(smooth, workers=-1).real


def estimate_noise_sigma(
    images: np.ndarray, absorption_tf: np.ndarray, phase_tf: np.ndarray, *, pad: int = 0
) -> float:
    r"""Standard deviation of white noise in DPC frames, from their out-of-band spectrum.

    The transfer functions vanish exactly outside the ``(na + na_illum) / wavelength``
    passband, so there the frames' spectrum is noise alone. Each frame, less its mean, is
    multiplied by a 2-D Tukey window ``w`` (cosine taper over the outer quarter on each side,
    which keeps the border discontinuity of non-periodic frames out of those bins); for white
    noise of variance ``sigma^2`` each windowed DFT bin is then complex Gaussian with
    ``E|Y(v)|^2 = sigma^2 sum(w^2)``, so ``|Y|^2`` is exponential and

    .. math::

        \hat\sigma^2 = \frac{\operatorname{median}_{j,\ v \notin \text{passband}} |Y_j(v)|^2}
        {\ln 2\ \sum_r w(r)^2}.

    The median keeps the estimate robust to the few bins where sample structure still leaks.

    Parameters
    ----------
    images : (n, H, W) array_like
        Background-normalized DPC frames ``I / I_background - 1`` (dimensionless).
    absorption_tf, phase_tf : (n, H + 2 pad, W + 2 pad) array_like
        Transfer functions as `tikhonov_dpc` takes them; only where they vanish matters. On a
        padded canvas they are interpolated to the frequencies of the measured grid.
    pad : int, optional
        Padding of the transfer functions' canvas in pixels on each side.

    Returns
    -------
    float
        Noise standard deviation per pixel, in the units of `images`. For shot noise, whose
        variance varies over the image, this is about the root-mean-square over the image
        (within a few percent: the window weights the border less).

    Raises
    ------
    ValueError
        On bad shapes or non-finite values (naming the argument), or if no frequency of the
        measured grid lies outside the passband (the pixels are too large for the NA: the
        frames then hold no pure-noise bins; pass ``noise_sigma`` to `choose_tikhonov_reg`).
    """
    images, hu, hp = _validate(images, absorption_tf, phase_tf, pad)
    _, height, width = images.shape
    window = np.outer(
        scipy.signal.windows.tukey(height, _TAPER), scipy.signal.windows.tukey(width, _TAPER)
    )
    tapered = (images - images.mean(axis=(-2, -1), keepdims=True)) * window
    spectrum = scipy.fft.fft2(tapered, workers=-1)
    outside = ~np.any((hu != 0) | (hp != 0), axis=0)
    if not outside.any():
        raise ValueError(
            "absorption_tf, phase_tf: no frequency of the measured grid lies outside the "
            "passband, so the noise level cannot be estimated from the frames; give noise_sigma"
        )
    power = np.abs(spectrum[:, outside]) ** 2
    return float(np.sqrt(np.median(power) / (np.log(2.0) * np.sum(window**2))))


def choose_tikhonov_reg(
    images: np.ndarray,
    absorption_tf: np.ndarray,
    phase_tf: np.ndarray,
    *,
    method: Method = "gcv",
    candidates: np.ndarray | None = None,
    pad: int = 0,
    noise_sigma: float | None = None,
    tau: float = 1.0,
    periodize: bool = True,
) -> RegularizationChoice:
    r"""Choose the Tikhonov weight of `tikhonov_dpc` from the DPC frames alone.

    One weight ``alpha`` is chosen and meant for both ``reg_absorption`` and ``reg_phase``. The
    rules, with ``r = A x_alpha - y`` the residual of the solution for weight ``alpha``,
    ``T = tr A (A^T A + alpha)^{-1} A^T`` the trace of the influence matrix and
    ``m = n H W`` the number of data:

    * ``"gcv"`` minimizes ``(||r||^2 / m) / (1 - T / m)^2``;
    * ``"upre"`` minimizes ``(||r||^2 + 2 sigma^2 T) / m - sigma^2``, an unbiased estimate of
      the predictive risk ``||A (x_alpha - x_true)||^2 / m``;
    * ``"discrepancy"`` solves ``||r||^2 = tau^2 m sigma^2`` (``||r||^2`` increases with
      ``alpha``): the largest weight whose residual is at the noise level;
    * ``"lcurve"`` takes the corner of ``(log ||r||, log ||x_alpha||)``: the highest interior
      maximum of its curvature (a maximum at an end of the range is not a corner).

    The criteria are evaluated exactly, in closed form (module docstring), on the **periodic**
    model of the measured ``H x W`` grid, even when `pad` > 0 and the final solve is the padded,
    non-periodic one that `tikhonov_dpc` computes by conjugate gradients: the weight means the
    same in both (units of the squared transfer functions), the periodic criteria cost
    milliseconds where the padded ones would need many conjugate-gradient solves, and with
    `periodize` the border jumps, the main difference between the two models, are left out.
    ``benchmarks/regularization_rules.py`` measures the result against the best weight of the
    padded solve.

    Parameters
    ----------
    images : (n, H, W) array_like
        Background-normalized DPC frames ``I / I_background - 1`` (dimensionless), one per
        source.
    absorption_tf, phase_tf : (n, H + 2 pad, W + 2 pad) array_like
        Transfer functions on the unshifted frequency grid of the reconstruction canvas, as
        `tikhonov_dpc` takes them. On a padded canvas they are interpolated (bilinearly, in
        cycles/pixel) to the frequencies of the measured grid.
    method : {"gcv", "upre", "discrepancy", "lcurve"}, default "gcv"
        The rule.
    candidates : (k,) array_like, optional
        Positive weights to choose from; the chosen one is one of them. By default, the
        criterion is evaluated at 10 log-spaced weights per decade over `DEFAULT_BOUNDS` and
        then refined continuously (a bounded scalar search between the neighbours of the best
        grid point, or a root bracketed by them for ``"discrepancy"``).
    pad : int, optional
        Padding of the transfer functions' canvas in pixels on each side (`tikhonov_dpc`'s
        `pad`).
    noise_sigma : float, optional
        Noise standard deviation per pixel in frame units, for ``"upre"`` and
        ``"discrepancy"``; by default `estimate_noise_sigma` of the frames. Ignored by the
        other rules.
    tau : float, optional
        Safety factor (>= 1) of the discrepancy principle.
    periodize : bool, optional
        Evaluate the criteria on the frames' `periodic_component` (default), which removes the
        jumps between opposite borders that the periodic model cannot fit; False for data that
        are periodic (e.g. simulated with ``periodic=True``).

    Returns
    -------
    RegularizationChoice
        The chosen weight, the rule, the candidate weights with the criterion at each, and the
        noise level used (if any).

    Raises
    ------
    ValueError
        If `images` is not a finite real ``(n, H, W)`` stack, a transfer function does not have
        shape ``(n, H + 2 pad, W + 2 pad)`` or is not finite, `pad` is not a non-negative int,
        `method` is unknown, `candidates` are not positive and finite, `noise_sigma` is not
        positive and finite, `tau` < 1, or every frame is constant.

    Warns
    -----
    RuntimeWarning
        ``"discrepancy"`` only: if no candidate reaches the target residual (the data are fit
        worse than the noise level at every weight: model error dominates, e.g. noiseless or
        moving samples), the smallest candidate is returned; if every candidate's residual is
        below it, the largest.

    Notes
    -----
    GCV is the default: it needs no noise level and, reading model error (motion, the
    non-linearity of real DPC) as noise, still regularizes noiseless data, where ``"upre"`` and
    ``"discrepancy"`` fall to the smallest weight; the L-curve is often closest but sometimes
    far off. ``benchmarks/regularization_rules.py`` measures each rule against the weight that
    maximizes the phase PSNR of simulated samples.

    Examples
    --------
    >>> from nstm.optics import pupil
    >>> from nstm.systems.dpc.optics import dpc_sources, transfer_functions, \
    ...     apply_transfer_functions
    >>> optics = dict(wavelength_um=0.525, pixel_size_um=0.454)
    >>> sources = dpc_sources((64, 64), na_illum=0.25, **optics)
    >>> hu, hp = transfer_functions(sources, pupil((64, 64), na=0.25, **optics))
    >>> rng = np.random.default_rng(0)
    >>> phase = np.zeros((64, 64)); phase[20:44, 20:44] = 1.0
    >>> frames = apply_transfer_functions(np.zeros((64, 64)), phase, hu, hp)
    >>> frames = frames + 0.01 * rng.standard_normal(frames.shape)
    >>> choice = choose_tikhonov_reg(frames, hu, hp)
    >>> choice.method, bool(1e-5 < choice.reg < 1e-1)
    ('gcv', True)
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {list(METHODS)}, got {method!r}")
    images, hu, hp = _validate(images, absorption_tf, phase_tf, pad)
    refine = candidates is None
    if candidates is None:
        decades = np.log10(DEFAULT_BOUNDS)
        count = int(round((decades[1] - decades[0]) * _GRID_PER_DECADE)) + 1
        candidates = np.logspace(decades[0], decades[1], count)
    else:
        candidates = np.asarray(candidates, dtype=np.float64)
        if candidates.ndim != 1 or candidates.size == 0:
            raise ValueError(
                f"candidates: expected a non-empty 1D array of weights, got shape "
                f"{candidates.shape}"
            )
        if not np.all(np.isfinite(candidates) & (candidates > 0)):
            raise ValueError(f"candidates: expected positive finite weights, got {candidates}")
        candidates = np.unique(candidates)
    if not (np.isfinite(tau) and tau >= 1):
        raise ValueError(f"tau: expected a finite safety factor >= 1, got {tau!r}")

    sigma = None
    if method in ("upre", "discrepancy"):
        if noise_sigma is None:
            sigma = estimate_noise_sigma(images, hu, hp)
        elif np.isfinite(noise_sigma) and noise_sigma > 0:
            sigma = float(noise_sigma)
        else:
            raise ValueError(
                f"noise_sigma: expected a positive finite standard deviation in frame units, got "
                f"{noise_sigma!r}"
            )

    if not np.any(images - images.mean(axis=(-2, -1), keepdims=True)):
        raise ValueError("images: every frame is constant; there is no signal to fit")
    spectrum = _decompose(periodic_component(images) if periodize else images, hu, hp)
    m = spectrum.data_count
    criteria = {
        "gcv": lambda a: spectrum.residual(a) / m / (1.0 - spectrum.trace(a) / m) ** 2,
        "upre": lambda a: (spectrum.residual(a) + 2 * sigma**2 * spectrum.trace(a)) / m - sigma**2,
        "discrepancy": lambda a: spectrum.residual(a) / (m * sigma**2),
        "lcurve": spectrum.lcurve_curvature,
    }
    function = criteria[method]
    values = np.array([function(a) for a in candidates])
    logs = np.log(candidates)

    if method == "discrepancy":
        target = tau**2
        below = np.flatnonzero(values <= target)
        if below.size == 0:
            warnings.warn(
                f"choose_tikhonov_reg: the residual exceeds the noise level (ratio "
                f"{values[0]:.3g} > tau^2 = {target:.3g}) at every candidate weight; model "
                "error dominates, returning the smallest candidate",
                RuntimeWarning,
                stacklevel=2,
            )
            reg = candidates[0]
        elif below[-1] == candidates.size - 1:
            warnings.warn(
                "choose_tikhonov_reg: the residual is below the noise level at every candidate "
                "weight; returning the largest candidate",
                RuntimeWarning,
                stacklevel=2,
            )
            reg = candidates[-1]
        else:
            i = below[-1]  # the residual is increasing: the last candidate below the target
            reg = candidates[i]
            if refine:
                root = scipy.optimize.brentq(
                    lambda t: function(np.exp(t)) - target, logs[i], logs[i + 1], xtol=1e-6
                )
                reg = float(np.exp(root))
    else:
        sign = -1.0 if method == "lcurve" else 1.0  # L-curve: maximize the curvature
        i = int(np.argmin(sign * values))
        if method == "lcurve":
            # A corner is an interior maximum; the curvature at an end of the range is not one.
            inner = np.flatnonzero((values[1:-1] > values[:-2]) & (values[1:-1] >= values[2:]))
            if inner.size:
                i = int(inner[np.argmax(values[inner + 1])] + 1)
        reg = candidates[i]
        if refine and 0 < i < candidates.size - 1:
            result = scipy.optimize.minimize_scalar(
                lambda t: sign * function(np.exp(t)),
                bounds=(logs[i - 1], logs[i + 1]),
                method="bounded",
                options={"xatol": 1e-4},
            )
            if result.fun <= sign * values[i]:
                reg = float(np.exp(result.x))
    return RegularizationChoice(
        reg=float(reg),
        method=method,
        candidates=candidates,
        criterion=values,
        noise_sigma=sigma,
    )
