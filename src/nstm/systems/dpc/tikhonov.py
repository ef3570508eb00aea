"""Tikhonov-regularized DPC reconstruction: the conventional static baseline.

Solves the weak-object DPC model of `nstm.systems.dpc.optics` for one static absorption and phase
map. With ``pad == 0`` the images are treated as periodic and the least-squares problem
decouples into a 2 x 2 system per spatial frequency; with ``pad > 0`` the unknowns live on a
larger canvas and only the measured centre enters the data term, which removes the artefacts
that the periodic assumption creates at the border of real (non-periodic) images.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.fft

from ...fourier import negated_frequency
from ...solvers import conjugate_gradients

__all__ = ["tikhonov_dpc"]

# Relative size below which a per-frequency determinant counts as zero (singular system).
_SINGULAR_RTOL = 1e-12


class _NormalEquations:
    """Per-frequency normal equations of the DPC model on an rfft half-spectrum grid.

    The model acts on real maps as ``Re IFFT2(H * FFT2(x))``, which equals ``IFFT2(H_r *
    FFT2(x))`` with the Hermitian part ``H_r(v) = (H(v) + conj H(-v)) / 2``. Working with
    ``H_r`` keeps every spectrum Hermitian, so rfft2/irfft2 are exact. For transfer functions
    from `nstm.systems.dpc.optics.transfer_functions` (Hu real and even, Hp imaginary and odd),
    ``H_r = H``.
    """

    def __init__(self, absorption_tf, phase_tf, reg_absorption, reg_phase):
        self.shape = absorption_tf.shape[-2:]
        half = self.shape[1] // 2 + 1
        self.hu = (0.5 * (absorption_tf + np.conj(negated_frequency(absorption_tf))))[..., :half]
        self.hp = (0.5 * (phase_tf + np.conj(negated_frequency(phase_tf))))[..., :half]
        self.hu_conj = np.conj(self.hu)
        self.hp_conj = np.conj(self.hp)
        self.regs = (reg_absorption, reg_phase)
        gram_uu = np.sum(np.abs(self.hu) ** 2, axis=0)
        gram_pp = np.sum(np.abs(self.hp) ** 2, axis=0)
        self.a11 = gram_uu + reg_absorption
        self.a22 = gram_pp + reg_phase
        self.a12 = np.sum(self.hu_conj * self.hp, axis=0)
        # det = (Gram determinant >= 0) + the regularization terms, added exactly: the direct
        # a11 a22 - |a12|^2 cancels catastrophically for tiny regs where Hu and Hp are parallel.
        gram_det = np.maximum(gram_uu * gram_pp - np.abs(self.a12) ** 2, 0.0)
        self.det = (
            gram_det + reg_absorption * gram_pp + reg_phase * gram_uu + reg_absorption * reg_phase
        )
        # rfft bins other than column 0 (and the Nyquist column of an even width) stand for
        # two conjugate bins of the full spectrum.
        self.weights = np.full(half, 2.0)
        self.weights[0] = 1.0
        if self.shape[1] % 2 == 0:
            self.weights[-1] = 1.0

    def singular_count(self) -> int:
        """Number of frequencies whose 2 x 2 system is numerically singular."""
        return int(np.count_nonzero(self.det <= _SINGULAR_RTOL * self.a11 * self.a22))

    def solve(self, rhs_u: np.ndarray, rhs_p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apply the inverse of the periodic normal matrix (Cramer's rule), per frequency."""
        mu = (self.a22 * rhs_u - self.a12 * rhs_p) / self.det
        phi = (self.a11 * rhs_p - np.conj(self.a12) * rhs_u) / self.det
        return mu, phi

    def adjoint(self, frames_spectrum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Half spectra of ``A^T y`` from the half spectra of the frames ``y``."""
        return (
            np.einsum("jyx,jyx->yx", self.hu_conj, frames_spectrum),
            np.einsum("jyx,jyx->yx", self.hp_conj, frames_spectrum),
        )

    def forward(self, mu: np.ndarray, phi: np.ndarray) -> np.ndarray:
        """Half spectra of the frames ``A x`` from the half spectra of ``x = (mu, phi)``."""
        frames = self.hu * mu
        frames += self.hp * phi
        return frames

    def inner(self, a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> float:
        """Real-space inner product of two (mu, phi) pairs given as half spectra (Parseval)."""
        total = sum(
            np.sum(self.weights * (x.real * y.real + x.imag * y.imag))
            for x, y in zip(a, b, strict=True)
        )
        return float(total) / (self.shape[0] * self.shape[1])


def check_problem(images, absorption_tf, phase_tf, pad) -> np.ndarray:
    """Float64 ``(frames, H, W)`` frames, after checking them and the transfer functions of the
    padded canvas against each other, or an error naming the argument (shared with
    :mod:`.regularization`)."""
    images = np.asarray(images)
    if images.ndim == 2:
        raise ValueError(
            f"images: expected a non-empty stack (frames, H, W), got a single 2D image of shape "
            f"{images.shape}; DPC needs one image per source (use images[None] for one frame)"
        )
    if images.ndim != 3 or 0 in images.shape:
        raise ValueError(
            f"images: expected a non-empty stack (frames, H, W), got shape {images.shape}"
        )
    if np.iscomplexobj(images) or not np.issubdtype(images.dtype, np.number):
        raise TypeError(f"images: expected real DPC frames, got dtype {images.dtype}")
    bad = np.size(images) - np.count_nonzero(np.isfinite(images))
    if bad:
        raise ValueError(f"images: expected finite values, got {bad} NaN or inf entries")
    if isinstance(pad, bool) or not isinstance(pad, int | np.integer) or pad < 0:
        raise ValueError(f"pad: expected a non-negative int (pixels), got {pad!r}")
    frames, height, width = images.shape
    expected = (frames, height + 2 * pad, width + 2 * pad)
    for name, tf in (("absorption_tf", absorption_tf), ("phase_tf", phase_tf)):
        tf = np.asarray(tf)
        if tf.shape != expected:
            raise ValueError(
                f"{name}: expected shape (frames, H + 2*pad, W + 2*pad) = {expected} for images "
                f"{images.shape} and pad={pad}, got {tf.shape}"
            )
        if not np.all(np.isfinite(tf)):
            raise ValueError(f"{name}: expected finite values, got NaN or inf")
    return images.astype(np.float64)


def _validate(images, absorption_tf, phase_tf, reg_absorption, reg_phase, pad, max_iter, tol):
    images = check_problem(images, absorption_tf, phase_tf, pad)
    for name, reg in (("reg_absorption", reg_absorption), ("reg_phase", reg_phase)):
        if not np.isfinite(reg) or reg < 0:
            raise ValueError(f"{name}: expected a finite value >= 0, got {reg!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int | np.integer) or max_iter < 1:
        raise ValueError(f"max_iter: expected a positive int, got {max_iter!r}")
    if not np.isfinite(tol) or tol <= 0:
        raise ValueError(f"tol: expected a positive relative residual, got {tol!r}")
    return images


def tikhonov_dpc(
    images: np.ndarray,
    absorption_tf: np.ndarray,
    phase_tf: np.ndarray,
    *,
    reg_absorption: float = 1e-3,
    reg_phase: float = 1e-3,
    pad: int = 0,
    max_iter: int = 200,
    tol: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Static absorption and phase from DPC frames by Tikhonov-regularized least squares.

    Solves

    .. math::

        \min_{\mu, \phi} \sum_j \| C\, A_j(\mu, \phi) - I_j \|^2
        + \alpha \|\mu\|^2 + \beta \|\phi\|^2,
        \qquad A_j(\mu, \phi) = \mathrm{Re}\, \mathcal F^{-1}\{H^u_j \hat\mu + H^\phi_j \hat\phi\},

    where ``C`` crops the central ``H x W`` measured region of the ``(H + 2 pad, W + 2 pad)``
    reconstruction canvas (the identity for ``pad = 0``).

    * ``pad == 0``: the images are taken as periodic and the problem decouples into one 2 x 2
      system per spatial frequency, solved in closed form (Cramer's rule).
    * ``pad > 0``: the unknowns live on the padded canvas and only the measured centre enters
      the data term, so the periodic wrap-around of the FFT no longer couples opposite image
      borders (real images are not periodic). Solved by preconditioned conjugate gradients on
      the normal equations, with the closed-form solution for the zero-padded images as both
      the starting point and the (circulant) preconditioner; the central crop is returned.

    Parameters
    ----------
    images : (n, H, W) array_like
        Background-normalized DPC frames ``I / I_background - 1``, one per source.
    absorption_tf, phase_tf : (n, H + 2 pad, W + 2 pad) array_like
        Transfer functions on the unshifted frequency grid of the (padded) reconstruction
        canvas, e.g. from `nstm.systems.dpc.optics.transfer_functions` computed for shape
        ``(H + 2 pad, W + 2 pad)``.
    reg_absorption, reg_phase : float, optional
        Tikhonov weights ``alpha`` and ``beta`` (>= 0), in units of the squared transfer
        functions (``|Hu(0)|^2 = 4``). Zero is allowed only where the system stays invertible:
        ``reg_phase = 0`` is always singular (the phase transfer vanishes at DC) and
        ``reg_absorption = 0`` is singular outside the ``(na + na_illum) / wavelength``
        passband, so in practice both should be positive.
    pad : int, optional
        Padding in pixels on each side of the reconstruction canvas; 0 for periodic data.
    max_iter : int, optional
        Maximum conjugate-gradient iterations (``pad > 0`` only).
    tol : float, optional
        Stop when the normal-equation residual falls below ``tol`` times the right-hand side
        (``pad > 0`` only).

    Returns
    -------
    absorption : (H, W) ndarray of float32
        Natural-log amplitude ``mu`` (dimensionless).
    phase : (H, W) ndarray of float32
        Phase ``phi`` in radians (up to an unobservable constant: the DC of the phase is pulled
        to zero by ``reg_phase``).

    Raises
    ------
    ValueError
        If `images` is not a finite 3D stack (a single 2D image is rejected rather than
        broadcast against all transfer functions), the transfer-function shape does not equal
        ``(n, H + 2 pad, W + 2 pad)``, a regularization weight is negative, or a zero weight
        leaves a frequency without a unique solution.

    Warns
    -----
    RuntimeWarning
        If conjugate gradients stop at `max_iter` before reaching `tol`.
    """
    images = _validate(
        images, absorption_tf, phase_tf, reg_absorption, reg_phase, pad, max_iter, tol
    )
    frames, height, width = images.shape
    system = _NormalEquations(
        np.asarray(absorption_tf, dtype=np.complex128),
        np.asarray(phase_tf, dtype=np.complex128),
        float(reg_absorption),
        float(reg_phase),
    )
    if min(reg_absorption, reg_phase) == 0:
        singular = system.singular_count()
        if singular:
            raise ValueError(
                f"reg_absorption={reg_absorption}, reg_phase={reg_phase}: the DPC system is "
                f"singular at {singular} spatial frequencies (the phase transfer vanishes at DC "
                "and both vanish outside the passband); use positive regularization weights"
            )

    canvas = system.shape
    padded = np.zeros((frames,) + canvas)
    padded[:, pad : pad + height, pad : pad + width] = images
    rhs = system.adjoint(scipy.fft.rfft2(padded, workers=-1))
    solution = system.solve(*rhs)  # exact for pad == 0, warm start otherwise
    if pad > 0:
        solution = _conjugate_gradients(system, rhs, solution, pad, (height, width), max_iter, tol)
    absorption, phase = (
        scipy.fft.irfft2(x, s=canvas, workers=-1)[pad : pad + height, pad : pad + width]
        for x in solution
    )
    return absorption.astype(np.float32), phase.astype(np.float32)


def _conjugate_gradients(system, rhs, start, pad, measured, max_iter, tol):
    """Preconditioned CG on ``(A^T C^T C A + R) x = A^T C^T y`` with half-spectrum vectors."""
    height, width = measured

    def normal(x):
        frames = scipy.fft.irfft2(system.forward(*x), s=system.shape, workers=-1)
        # C^T C: keep only the measured centre of each predicted frame.
        frames[:, :pad, :] = 0.0
        frames[:, pad + height :, :] = 0.0
        frames[:, :, :pad] = 0.0
        frames[:, :, pad + width :] = 0.0
        data_u, data_p = system.adjoint(scipy.fft.rfft2(frames, workers=-1))
        return data_u + system.regs[0] * x[0], data_p + system.regs[1] * x[1]

    # The periodic closed form is the (circulant) preconditioner; the inner product is the
    # real-space one of the (mu, phi) maps, in which the normal operator is self-adjoint.
    x, info = conjugate_gradients(
        normal,
        rhs,
        start,
        tol=tol,
        max_iter=max_iter,
        preconditioner=lambda residual: system.solve(*residual),
        inner=system.inner,
        warn=False,
    )
    if not info.converged:
        warnings.warn(
            f"tikhonov_dpc: conjugate gradients stopped at max_iter={max_iter} with relative "
            f"residual {info.relative_residual:.2e} > tol={tol:.1e}; increase max_iter or tol",
            RuntimeWarning,
            stacklevel=3,
        )
    return x
