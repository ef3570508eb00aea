"""Tests for nstm.systems.dpc.tikhonov: exactness, recovery on the passband, padding, validation."""

import numpy as np
import pytest
from dpc_problems import dense_model, dpc_transfer_functions
from scipy.ndimage import gaussian_filter

from nstm.systems.dpc.optics import apply_transfer_functions
from nstm.systems.dpc.tikhonov import tikhonov_dpc


@pytest.mark.parametrize("shape", [(8, 10), (7, 9)])
def test_closed_form_equals_dense_least_squares(shape):
    rng = np.random.default_rng(0)
    absorption_tf, phase_tf = dpc_transfer_functions(shape)
    images = rng.standard_normal((4,) + shape)
    reg_u, reg_p = 1e-2, 3e-3
    matrix = dense_model(absorption_tf, phase_tf)
    pixels = shape[0] * shape[1]
    regs = np.concatenate([np.full(pixels, reg_u), np.full(pixels, reg_p)])
    expected = np.linalg.solve(matrix.T @ matrix + np.diag(regs), matrix.T @ images.ravel())
    mu, phi = tikhonov_dpc(images, absorption_tf, phase_tf, reg_absorption=reg_u, reg_phase=reg_p)
    assert mu.shape == phi.shape == shape and mu.dtype == phi.dtype == np.float32
    np.testing.assert_allclose(mu.ravel(), expected[:pixels], atol=1e-5)
    np.testing.assert_allclose(phi.ravel(), expected[pixels:], atol=1e-5)


def test_padded_solve_equals_dense_cropped_least_squares():
    # Data term only on the central 7 x 9 pixels of a 13 x 15 canvas: CG must reach the exact
    # minimizer of the documented objective.
    shape, pad = (7, 9), 3
    canvas = (shape[0] + 2 * pad, shape[1] + 2 * pad)
    rng = np.random.default_rng(1)
    absorption_tf, phase_tf = dpc_transfer_functions(canvas)
    images = rng.standard_normal((4,) + shape)
    reg_u, reg_p = 1e-2, 3e-3
    crop = np.zeros((4,) + canvas, dtype=bool)
    crop[:, pad:-pad, pad:-pad] = True
    matrix = dense_model(absorption_tf, phase_tf)[crop.ravel()]
    pixels = canvas[0] * canvas[1]
    regs = np.concatenate([np.full(pixels, reg_u), np.full(pixels, reg_p)])
    expected = np.linalg.solve(matrix.T @ matrix + np.diag(regs), matrix.T @ images.ravel())
    mu, phi = tikhonov_dpc(
        images,
        absorption_tf,
        phase_tf,
        reg_absorption=reg_u,
        reg_phase=reg_p,
        pad=pad,
        tol=1e-10,
        max_iter=1000,
    )
    np.testing.assert_allclose(mu, expected[:pixels].reshape(canvas)[pad:-pad, pad:-pad], atol=1e-5)
    np.testing.assert_allclose(
        phi, expected[pixels:].reshape(canvas)[pad:-pad, pad:-pad], atol=1e-5
    )


def test_recovers_object_on_the_well_conditioned_passband():
    shape = (48, 60)
    absorption_tf, phase_tf = dpc_transfer_functions(shape)
    # Smallest eigenvalue of the per-frequency 2 x 2 Gram matrix sum_j [Hu Hp]^H [Hu Hp].
    hu, hp = absorption_tf.astype(complex), phase_tf.astype(complex)
    g11, g22 = np.sum(np.abs(hu) ** 2, 0), np.sum(np.abs(hp) ** 2, 0)
    g12 = np.sum(np.conj(hu) * hp, 0)
    smallest = 0.5 * (g11 + g22) - np.sqrt(0.25 * (g11 - g22) ** 2 + np.abs(g12) ** 2)
    passband = smallest > 0.05 * smallest.max()

    rng = np.random.default_rng(2)
    truth_mu, truth_phi = (
        np.fft.ifft2(passband * np.fft.fft2(rng.standard_normal(shape))).real for _ in range(2)
    )
    images = apply_transfer_functions(truth_mu, truth_phi, absorption_tf, phase_tf)

    def error(reg):
        mu, phi = tikhonov_dpc(images, absorption_tf, phase_tf, reg_absorption=reg, reg_phase=reg)
        return max(
            np.linalg.norm(mu - truth_mu) / np.linalg.norm(truth_mu),
            np.linalg.norm(phi - truth_phi) / np.linalg.norm(truth_phi),
        )

    errors = [error(reg) for reg in (1e-1, 1e-3, 1e-5, 1e-8)]
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False))
    assert errors[-1] < 1e-5  # float32 output and transfer functions set the floor


def psnr(estimate, truth):
    estimate, truth = estimate - estimate.mean(), truth - truth.mean()  # phase DC is unobservable
    return 10 * np.log10(np.ptp(truth) ** 2 / np.mean((estimate - truth) ** 2))


def test_padding_removes_border_artefacts_on_non_periodic_data():
    height, width, pad, margin = 80, 96, 16, 48
    canvas = (height + 2 * margin, width + 2 * margin)
    rng = np.random.default_rng(3)
    truth = [
        scale * gaussian_filter(rng.standard_normal(canvas), 2.0, mode="wrap") / 0.14
        for scale in (0.05, 0.3)
    ]
    # Simulate on a large periodic canvas, then crop: the measured field is not periodic.
    frames = apply_transfer_functions(*truth, *dpc_transfer_functions(canvas))
    images = frames[:, margin : margin + height, margin : margin + width]
    truth_mu, truth_phi = (t[margin : margin + height, margin : margin + width] for t in truth)

    kwargs = dict(reg_absorption=1e-2, reg_phase=1e-2)
    periodic = tikhonov_dpc(images, *dpc_transfer_functions((height, width)), **kwargs)
    padded_tfs = dpc_transfer_functions((height + 2 * pad, width + 2 * pad))
    padded = tikhonov_dpc(images, *padded_tfs, pad=pad, **kwargs)

    # Full frame: the periodic solution is ruined at the border, the padded one is not.
    assert psnr(padded[0], truth_mu) > psnr(periodic[0], truth_mu) + 15
    assert psnr(padded[1], truth_phi) > psnr(periodic[1], truth_phi) + 3
    # Centre: both are close to the truth (phase limited by the regularized low frequencies).
    centre = (slice(24, -24), slice(24, -24))
    for solution_periodic, solution_padded, truth_map in zip(
        periodic, padded, (truth_mu, truth_phi), strict=True
    ):
        assert psnr(solution_periodic[centre], truth_map[centre]) > 35
        assert psnr(solution_padded[centre], truth_map[centre]) > 35


def test_zero_images_give_zero_solution():
    absorption_tf, phase_tf = dpc_transfer_functions((20, 24))
    mu, phi = tikhonov_dpc(np.zeros((4, 16, 20)), absorption_tf, phase_tf, pad=2)
    assert not mu.any() and not phi.any()


def test_warns_when_cg_stops_early():
    absorption_tf, phase_tf = dpc_transfer_functions((28, 30))
    images = np.random.default_rng(4).standard_normal((4, 20, 22))
    with pytest.warns(RuntimeWarning, match="max_iter=2"):
        tikhonov_dpc(images, absorption_tf, phase_tf, pad=4, max_iter=2, tol=1e-12)


def test_rejects_bad_inputs():
    shape = (16, 20)
    absorption_tf, phase_tf = dpc_transfer_functions(shape)
    images = np.zeros((4,) + shape)
    with pytest.raises(ValueError, match=r"images: expected a non-empty stack .* single 2D image"):
        tikhonov_dpc(images[0], absorption_tf, phase_tf)
    corrupted = images.copy()
    corrupted[2, 5, 7] = np.nan
    with pytest.raises(ValueError, match="images: expected finite values, got 1 NaN or inf"):
        tikhonov_dpc(corrupted, absorption_tf, phase_tf)
    with pytest.raises(
        ValueError,
        match=r"absorption_tf: expected shape \(frames, H \+ 2\*pad, W \+ 2\*pad\) = "
        r"\(4, 20, 24\) for images \(4, 16, 20\) and pad=2, got \(4, 16, 20\)",
    ):
        tikhonov_dpc(images, absorption_tf, phase_tf, pad=2)
    with pytest.raises(ValueError, match=r"phase_tf: expected shape .* = \(4, 16, 20\)"):
        tikhonov_dpc(images, absorption_tf, phase_tf[:3])
    with pytest.raises(ValueError, match=r"expected shape .* = \(3, 16, 20\)"):
        tikhonov_dpc(images[:3], absorption_tf, phase_tf)
    with pytest.raises(ValueError, match="reg_absorption: expected a finite value >= 0"):
        tikhonov_dpc(images, absorption_tf, phase_tf, reg_absorption=-1e-3)
    with pytest.raises(ValueError, match="singular"):
        tikhonov_dpc(images, absorption_tf, phase_tf, reg_phase=0.0)
    with pytest.raises(ValueError, match="pad: expected a non-negative int"):
        tikhonov_dpc(images, absorption_tf, phase_tf, pad=-1)
    with pytest.raises(TypeError, match="images: expected real"):
        tikhonov_dpc(images.astype(complex), absorption_tf, phase_tf)
