"""Tests for nstm.systems.dpc.regularization: closed forms against dense algebra, the noise
estimate, the chosen weight against the best by ground truth, validation."""

import dataclasses
import warnings

import numpy as np
import pytest
from dpc_problems import dense_model, dpc_transfer_functions
from scipy.ndimage import gaussian_filter

from nstm.metrics import psnr_per_frame
from nstm.systems.dpc import DPC, DPCConfig
from nstm.systems.dpc.optics import apply_transfer_functions
from nstm.systems.dpc.regularization import (
    METHODS,
    _decompose,
    _validate,
    choose_tikhonov_reg,
    estimate_noise_sigma,
    periodic_component,
)
from nstm.systems.dpc.simulation import DPCSimulationConfig, simulate_dpc


def dense_quantities(matrix, data, reg):
    """Residual norm^2, solution norm^2 and influence-matrix trace by dense linear algebra."""
    normal = matrix.T @ matrix + reg * np.eye(matrix.shape[1])
    solution = np.linalg.solve(normal, matrix.T @ data)
    influence = matrix @ np.linalg.solve(normal, matrix.T)
    residual = matrix @ solution - data
    return residual @ residual, solution @ solution, np.trace(influence)


@pytest.fixture(scope="module", params=[(8, 10), (7, 9)], ids=["even", "odd"])
def tiny_problem(request):
    shape = request.param
    absorption_tf, phase_tf = dpc_transfer_functions(shape)
    images = np.random.default_rng(0).standard_normal((4,) + shape)
    return images, absorption_tf, phase_tf, dense_model(absorption_tf, phase_tf)


REGS = [1e-4, 3e-3, 1e-1, 2.0]


def test_closed_forms_equal_dense_linear_algebra(tiny_problem):
    images, absorption_tf, phase_tf, matrix = tiny_problem
    spectrum = _decompose(*_validate(images, absorption_tf, phase_tf, 0))
    assert spectrum.data_count == matrix.shape[0]
    for reg in REGS:
        residual, solution, trace = dense_quantities(matrix, images.ravel(), reg)
        assert spectrum.trace(reg) == pytest.approx(trace, rel=1e-6)
        assert spectrum.residual(reg) == pytest.approx(residual, rel=1e-6)
        assert spectrum.solution(reg) == pytest.approx(solution, rel=1e-6)


@pytest.mark.filterwarnings("ignore:choose_tikhonov_reg:RuntimeWarning")  # 1 candidate
def test_criteria_equal_their_dense_definitions(tiny_problem):
    images, absorption_tf, phase_tf, matrix = tiny_problem
    m, sigma = matrix.shape[0], 0.3
    dense = np.array([dense_quantities(matrix, images.ravel(), reg) for reg in REGS])
    residual, _, trace = dense.T
    expected = {
        "gcv": residual / m / (1 - trace / m) ** 2,
        "upre": (residual + 2 * sigma**2 * trace) / m - sigma**2,
        "discrepancy": residual / (m * sigma**2),
    }
    for method, values in expected.items():
        choice = choose_tikhonov_reg(
            images,
            absorption_tf,
            phase_tf,
            method=method,
            candidates=REGS,
            noise_sigma=sigma,
            periodize=False,
        )
        np.testing.assert_allclose(choice.criterion, values, rtol=1e-6)
        if method != "discrepancy":
            assert choice.reg == REGS[int(np.argmin(values))]


def test_lcurve_curvature_equals_finite_differences(tiny_problem):
    images, absorption_tf, phase_tf, matrix = tiny_problem
    t = np.linspace(np.log(1e-3), np.log(1e-1), 201)  # fine enough for 0.1 % differences
    norms = np.array([dense_quantities(matrix, images.ravel(), reg)[:2] for reg in np.exp(t)])
    a, b = np.log(norms[:, 0]), np.log(norms[:, 1])
    a1, b1 = np.gradient(a, t), np.gradient(b, t)
    a2, b2 = np.gradient(a1, t), np.gradient(b1, t)
    numeric = (a1 * b2 - a2 * b1) / (a1**2 + b1**2) ** 1.5
    choice = choose_tikhonov_reg(
        images, absorption_tf, phase_tf, method="lcurve", candidates=np.exp(t), periodize=False
    )
    scale = np.abs(numeric).max()
    np.testing.assert_allclose(choice.criterion[4:-4], numeric[4:-4], atol=1e-3 * scale)


@pytest.mark.filterwarnings("ignore:choose_tikhonov_reg:RuntimeWarning")  # 1 candidate
def test_continuous_search_improves_on_its_grid():
    shape = (32, 32)
    absorption_tf, phase_tf = dpc_transfer_functions(shape)
    rng = np.random.default_rng(3)
    phase = gaussian_filter(rng.standard_normal(shape), 2.0, mode="wrap")
    phase *= 3.0 / phase.std()  # rad: enough signal for the discrepancy root to lie in range
    images = apply_transfer_functions(np.zeros(shape), phase, absorption_tf, phase_tf)
    images = images + 0.02 * rng.standard_normal(images.shape)
    kwargs = dict(noise_sigma=0.02, periodize=False)  # periodic data

    def criterion(method, reg, **extra):
        return choose_tikhonov_reg(
            images, absorption_tf, phase_tf, method=method, candidates=[reg], **kwargs, **extra
        ).criterion[0]

    for method, sign in (("gcv", 1), ("upre", 1), ("lcurve", -1)):
        choice = choose_tikhonov_reg(images, absorption_tf, phase_tf, method=method, **kwargs)
        assert np.all(np.diff(choice.candidates) > 0)
        assert choice.candidates[0] < choice.reg < choice.candidates[-1]
        assert sign * criterion(method, choice.reg) <= np.min(sign * choice.criterion)
    choice = choose_tikhonov_reg(
        images, absorption_tf, phase_tf, method="discrepancy", tau=1.02, **kwargs
    )
    assert criterion("discrepancy", choice.reg) == pytest.approx(1.02**2, rel=1e-4)


@pytest.mark.parametrize("shape", [(64, 64), (50, 71)])
@pytest.mark.parametrize("sigma", [1e-3, 3e-2])
def test_noise_estimate_recovers_white_noise_on_non_periodic_frames(shape, sigma):
    # Noiseless Abbe frames of a sample larger than the field of view (non-periodic borders)
    # plus white Gaussian noise of known sigma.
    config = DPCSimulationConfig(shape=shape, phantom="cells", photons_per_pixel=None, seed=2)
    data, _ = simulate_dpc(config)
    absorption_tf, phase_tf = dpc_transfer_functions(shape)
    rng = np.random.default_rng(4)
    images = data.images + sigma * rng.standard_normal(data.images.shape)
    estimate = estimate_noise_sigma(images, absorption_tf, phase_tf)
    assert estimate == pytest.approx(sigma, rel=0.04)
    # The padded canvas's transfer functions, read on the measured grid, give the same bins.
    pad = 5
    canvas = (shape[0] + 2 * pad, shape[1] + 2 * pad)
    padded = estimate_noise_sigma(images, *dpc_transfer_functions(canvas), pad=pad)
    assert padded == pytest.approx(sigma, rel=0.05)


def test_noise_estimate_of_shot_noise_and_of_noiseless_frames():
    config = DPCSimulationConfig(shape=(64, 64), phantom="c-elegans", photons_per_pixel=1e4)
    data, _ = simulate_dpc(config)
    tfs = dpc_transfer_functions((64, 64))
    rms = np.sqrt(np.mean(1.0 + data.images) / 1e4)  # shot-noise variance (1 + frame) / photons
    assert estimate_noise_sigma(data.images, *tfs) == pytest.approx(rms, rel=0.06)
    clean, _ = simulate_dpc(dataclasses.replace(config, photons_per_pixel=None))
    assert estimate_noise_sigma(clean.images, *tfs) < 1e-3 * rms


def test_periodic_component_removes_border_jumps_only():
    height, width = 24, 31
    y, x = np.mgrid[:height, :width]
    texture = np.sin(2 * np.pi * 3 * x / width) * np.cos(2 * np.pi * 2 * y / height)
    image = 0.1 * x + 0.05 * y + texture  # a ramp: jumps of 3.0 and 1.15 across the wrap
    periodic = periodic_component(image[None])[0]
    smooth = image - periodic
    # The smooth part is discrete-harmonic away from the border, with zero mean.
    laplacian = (
        smooth[:-2, 1:-1] + smooth[2:, 1:-1] + smooth[1:-1, :-2] + smooth[1:-1, 2:]
    ) - 4 * smooth[1:-1, 1:-1]
    assert np.abs(laplacian).max() < 1e-10
    assert abs(smooth.mean()) < 1e-12
    # The jumps across the wrap shrink to the size of ordinary steps inside.
    steps = max(np.abs(np.diff(periodic, axis=0)).max(), np.abs(np.diff(periodic, axis=1)).max())
    assert np.abs(periodic[:, -1] - periodic[:, 0]).max() < 0.5 * steps
    assert np.abs(periodic[-1] - periodic[0]).max() < 0.5 * steps


@pytest.fixture(scope="module", params=["none", "elastic"])
def simulated_sample(request):
    config = DPCSimulationConfig(
        shape=(64, 64), phantom="cells", motion=request.param, photons_per_pixel=1e4, seed=0
    )
    data, truth = simulate_dpc(config)
    system = DPC.from_data(data, DPCConfig())
    grid = np.logspace(-6, -1, 11)
    psnr = {}
    for reg in map(float, grid):
        with warnings.catch_warnings():  # CG stops at max_iter for the smallest weights
            warnings.simplefilter("ignore", RuntimeWarning)
            system_reg = dataclasses.replace(system, tikhonov_reg=(reg, reg))
            phase = system_reg.reconstruct_static()["phase"]
        frames = np.broadcast_to(phase, truth["phase"].shape)
        psnr[reg] = psnr_per_frame(frames, truth["phase"], border=8).mean()
    return system, grid, psnr


# Measured on these two samples: 0.0 dB static, 0.1 dB moving (seed 1 of the moving one: 1.8 dB;
# benchmarks/regularization_rules.py measures many more).
GCV_MARGIN_DB = 1.0


def test_default_rule_is_near_the_best_weight_by_ground_truth(simulated_sample):
    system, grid, psnr = simulated_sample
    choice = choose_tikhonov_reg(
        np.asarray(system.images),
        np.asarray(system.absorption_tf),
        np.asarray(system.phase_tf),
        pad=system.pad_px,
        candidates=grid,
    )
    assert choice.method == "gcv" and choice.noise_sigma is None
    assert max(psnr.values()) - psnr[choice.reg] <= GCV_MARGIN_DB


def test_choice_is_a_frozen_record():
    tfs = dpc_transfer_functions((16, 16))
    images = np.random.default_rng(6).standard_normal((4, 16, 16))
    choice = choose_tikhonov_reg(images, *tfs, method="upre")
    assert choice.noise_sigma == pytest.approx(1.0, rel=0.2)
    assert choice.candidates.shape == choice.criterion.shape
    with pytest.raises(dataclasses.FrozenInstanceError):
        choice.reg = 1.0


def test_discrepancy_warns_when_the_noise_level_is_unreachable():
    shape = (32, 32)
    absorption_tf, phase_tf = dpc_transfer_functions(shape)
    rng = np.random.default_rng(7)
    images = rng.standard_normal((4,) + shape)  # in-band noise far above the given level
    with pytest.warns(RuntimeWarning, match="smallest candidate"):
        choice = choose_tikhonov_reg(
            images, absorption_tf, phase_tf, method="discrepancy", noise_sigma=1e-3
        )
    assert choice.reg == choice.candidates[0]
    with pytest.warns(RuntimeWarning, match="largest candidate"):
        choice = choose_tikhonov_reg(
            images, absorption_tf, phase_tf, method="discrepancy", noise_sigma=1e3
        )
    assert choice.reg == choice.candidates[-1]


def test_methods_are_listed():
    assert set(METHODS) == {"gcv", "upre", "discrepancy", "lcurve"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(images=np.zeros((8, 8))), "images: expected a non-empty stack"),
        (dict(images=np.full((4, 8, 8), np.nan)), "images: expected finite"),
        (dict(absorption_tf=np.zeros((4, 8, 9))), r"absorption_tf: expected shape"),
        (dict(phase_tf=np.zeros((3, 8, 8))), r"phase_tf: expected shape"),
        (dict(phase_tf=np.full((4, 8, 8), np.inf)), "phase_tf: expected finite"),
        (dict(pad=-1), "pad: expected a non-negative int"),
        (dict(pad=2), r"absorption_tf: expected shape .* pad=2"),
        (dict(method="gvc"), "method: expected one of"),
        (dict(candidates=[]), "candidates: expected a non-empty 1D"),
        (dict(candidates=[1e-3, -1.0]), "candidates: expected positive finite"),
        (dict(candidates=[[1e-3]]), "candidates: expected a non-empty 1D"),
        (dict(method="upre", noise_sigma=0.0), "noise_sigma: expected a positive"),
        (dict(method="discrepancy", tau=0.5), "tau: expected a finite safety factor"),
    ],
)
def test_bad_input_raises_naming_the_argument(kwargs, match):
    absorption_tf, phase_tf = dpc_transfer_functions((8, 8))
    args = dict(images=np.zeros((4, 8, 8)), absorption_tf=absorption_tf, phase_tf=phase_tf)
    args.update(kwargs)
    positional = [args.pop(k) for k in ("images", "absorption_tf", "phase_tf")]
    with pytest.raises(ValueError, match=match):
        choose_tikhonov_reg(*positional, **args)


def test_complex_frames_are_refused_as_the_wrong_type():
    absorption_tf, phase_tf = dpc_transfer_functions((8, 8))
    with pytest.raises(TypeError, match="images: expected real"):
        choose_tikhonov_reg(np.zeros((4, 8, 8), complex), absorption_tf, phase_tf)


def test_constant_frames_are_refused():
    tfs = dpc_transfer_functions((8, 8))
    with pytest.raises(ValueError, match="images: every frame is constant"):
        choose_tikhonov_reg(np.full((4, 8, 8), 0.5), *tfs)


def test_noise_estimate_needs_out_of_band_frequencies():
    ones = np.ones((4, 8, 8), complex)  # a passband covering the whole grid
    with pytest.raises(ValueError, match="outside the passband"):
        estimate_noise_sigma(np.zeros((4, 8, 8)), ones, ones)
    with pytest.raises(ValueError, match="outside the passband"):
        choose_tikhonov_reg(np.zeros((4, 8, 8)), ones, ones, method="upre")
