"""3D SIM parameter estimation: band separation, k0, phases and modulation.

Pinned to the convention-check acquisition (``tests/data/sim3d-convention-check.npz``,
simulated by code we did not write, with its ground truth) and to exact synthetic point-bead
data at 1000 photons peak with Poisson noise (issue 15's targets: |k0| within 0.2 %, angle
within 0.1 degree, phases within 0.1 rad).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sim3d_check import CHECK

from nstm.systems.sim3d.bands import FULL_CONTRAST_AMPLITUDES, band_otfs_from_psf
from nstm.systems.sim3d.estimation import (
    SIMParameters,
    estimate_k0,
    estimate_parameters,
    estimate_phases_and_modulation,
    nominal_phase_steps,
    separate_bands,
)

THREE_BEAMS = np.array(FULL_CONTRAST_AMPLITUDES)  # amp_m of three equal beams, full contrast


@pytest.fixture(scope="module")
def check():
    data = dict(np.load(CHECK))
    data["band_otfs"] = band_otfs_from_psf(
        data["gt_psf"], kz0=float(data["gt_kz0"]), z_step_um=float(data["z_step"])
    )
    return data


def simulate_points(otfs, k0, phases, amp, positions_um, brightness, pixel_um, z_step_um):
    """Raw stacks ``(orientations, phases, Z, Y, X)`` of point emitters, the exact circular
    model of ``bands.py``: band m of a point at ``r_b`` is ``amp_m exp(i m 2 pi k0 . r_b)``
    times the band PSF centred on it, i.e. the spectrum ``amp_m OTF_m(k) sum_b a_b
    exp(-i 2 pi (k - m k0) . r_b)``; ``amp`` holds orders 1, 2 (one entry: two-beam)."""
    _, nz, ny, nx = otfs.shape
    fz, fy, fx = (
        np.fft.fftfreq(n, d) for n, d in ((nz, z_step_um), (ny, pixel_um), (nx, pixel_um))
    )
    ez = np.exp(-2j * np.pi * np.outer(positions_um[:, 0], fz))
    raw = np.zeros((*phases.shape, nz, ny, nx))
    for d in range(len(k0)):
        bands = []
        for m in range(len(amp) + 1):
            ey = np.exp(-2j * np.pi * np.outer(positions_um[:, 1], fy - m * k0[d, 0]))
            ex = np.exp(-2j * np.pi * np.outer(positions_um[:, 2], fx - m * k0[d, 1]))
            spectrum = np.einsum("b,bz,by,bx->zyx", brightness, ez, ey, ex)
            bands.append((1.0 if m == 0 else amp[m - 1]) * np.fft.ifftn(otfs[m] * spectrum))
        for j, phi in enumerate(phases[d]):
            raw[d, j] = bands[0].real + sum(
                2 * (np.exp(1j * m * phi) * bands[m]).real for m in range(1, len(bands))
            )
    return raw


def random_acquisition(otfs, seed, *, steps_jitter=0.0, two_beam=False, k0_norm=2.3):
    """Beads in a slab, three orientations at a random angle and sub-pixel |k0|, random start
    phases; Poisson noise at 1000 photons peak over a background of 10."""
    rng = np.random.default_rng(seed)
    n = 80
    positions = np.c_[rng.uniform(0.2, 0.8, n), rng.uniform(0, 5.12, (n, 2))]
    angles = rng.uniform(0, 2 * np.pi) + np.arange(3) * 2 * np.pi / 3
    k0 = (k0_norm + rng.uniform(-0.1, 0.1)) * np.c_[np.sin(angles), np.cos(angles)]
    n_phase = 3 if two_beam else 5
    phases = (
        rng.uniform(0, 2 * np.pi, (3, 1))
        + nominal_phase_steps(n_phase)
        + steps_jitter * np.c_[np.zeros(3), rng.uniform(-1, 1, (3, n_phase - 1))]
    )
    amp = [0.4] if two_beam else 0.8 * THREE_BEAMS  # two beams: 1 + 0.8 cos, non-negative
    bands = np.stack([otfs[0], otfs[0], otfs[0]]) if two_beam else otfs
    clean = simulate_points(
        bands, k0, phases, amp, positions, rng.uniform(0.7, 1.3, n), 0.08, 0.125
    )
    raw = rng.poisson(clean / clean.max() * 1000 + 10).astype(np.float64)
    return raw, bands, k0, phases


def k0_errors(estimate, truth):
    """Relative |k0| error and angle error (degrees) per orientation."""
    norm = np.hypot(*estimate.T) / np.hypot(*truth.T) - 1
    angle = np.angle(
        np.exp(1j * (np.arctan2(*estimate.T) - np.arctan2(*truth.T)))
    )  # arctan2(ky, kx)
    return np.abs(norm), np.degrees(np.abs(angle))


def phase_errors(estimate, truth):
    return np.abs(np.angle(np.exp(1j * (estimate - truth))))


def assert_targets(parameters, k0, phases):
    norm, angle = k0_errors(parameters.k0, k0)
    assert norm.max() < 2e-3, norm
    assert angle.max() < 0.1, angle
    assert phase_errors(parameters.phases, phases).max() < 0.1, parameters.phases - phases


# ---------------------------------------------------------------------------------------------
# Band separation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orders", "phases"),
    [
        ((-2, -1, 0, 1, 2), [0.1, 1.2, 2.9, 3.3, 5.0]),  # uneven steps
        ((-2, -1, 0, 1, 2), [0.0, 0.8, 1.7, 2.4, 3.3, 4.4, 5.5]),  # 7 phases
        ((-1, 0, 1), [0.3, 2.2, 4.0]),  # two-beam
        ((-1, 0, 1), [0.3, 1.9, 3.7, 5.1]),
    ],
)
def test_separate_bands_inverts_the_mixing(orders, phases):
    """Bands mixed by exp(i m phi_j) (raw real: band_-m = conj(band_m)) come back exactly."""
    rng = np.random.default_rng(len(phases))
    shape = (3, 4, 5)
    bands = {0: rng.normal(size=shape)}
    for m in (m for m in orders if m > 0):
        bands[m] = rng.normal(size=shape) + 1j * rng.normal(size=shape)
        bands[-m] = np.conj(bands[m])
    raw = np.stack([sum(np.exp(1j * m * p) * bands[m] for m in orders) for p in phases])
    assert np.abs(raw.imag).max() < 1e-12
    separated = separate_bands(raw.real, phases, orders=orders)
    assert separated.shape == (len(orders), *shape)
    for i, m in enumerate(orders):
        np.testing.assert_allclose(separated[i], bands[m], atol=1e-10)


def test_separate_bands_refuses_what_it_cannot_separate():
    raw = np.zeros((4, 2, 3, 3))
    with pytest.raises(ValueError, match=r"orders=\(-1, 0, 1\)"):
        separate_bands(raw, nominal_phase_steps(4))
    with pytest.raises(ValueError, match="distinct"):
        separate_bands(np.zeros((5, 2, 3, 3)), [0, 1, 2, 3, 1 + 2 * np.pi])
    with pytest.raises(ValueError, match="phases_rad"):
        separate_bands(np.zeros((5, 2, 3, 3)), [0, 1, 2])
    with pytest.raises(ValueError, match="raw"):
        separate_bands(np.zeros((2, 2, 3, 3)), [0, 1], orders=(-1, 0, 1))


# ---------------------------------------------------------------------------------------------
# The convention-check acquisition
# ---------------------------------------------------------------------------------------------


def test_convention_file_parameters(check):
    """k0, phases and modulation of the file's noise-free acquisition.

    Measured: |k0| within 2e-4, angle within 0.003 degrees, phases within 0.008 rad; the
    modulation (0.80, 0.80) x (2/3, 1/3), i.e. the file's ``gt_modulation`` 0.8 of three equal
    beams: amp_m is relative to band_otfs_from_psf's OTFs (OTF_0 1 at DC)."""
    parameters = estimate_parameters(
        check["raw"],
        pixel_size_um=float(check["pixel_size"]),
        z_step_um=float(check["z_step"]),
        band_otfs=check["band_otfs"],
        background=10.0,
    )
    norm, angle = k0_errors(parameters.k0, check["gt_k0"])
    assert norm.max() < 5e-4 and angle.max() < 0.02, (norm, angle)
    assert phase_errors(parameters.phases, check["gt_phases"]).max() < 0.02
    depth = parameters.modulation / THREE_BEAMS
    np.testing.assert_allclose(depth, float(check["gt_modulation"]), rtol=0.03)
    assert parameters.estimated == {"k0": True, "phases": True, "modulation": True}


@pytest.mark.parametrize("seed", [0, 1])
def test_convention_file_with_poisson_noise(check, seed):
    """The file's raw as photon counts (1000 above a background of 10) with Poisson noise."""
    rng = np.random.default_rng(seed)
    raw = rng.poisson(check["raw"]).astype(np.float64)
    parameters = estimate_parameters(
        raw, pixel_size_um=0.08, z_step_um=0.125, band_otfs=check["band_otfs"], background=10.0
    )
    assert_targets(parameters, check["gt_k0"], check["gt_phases"])
    np.testing.assert_allclose(parameters.modulation / THREE_BEAMS, 0.8, rtol=0.05)


def test_psf_input_and_k0_guess(check):
    """A PSF smaller than the stack (zero-padded) and a rough guess give the same k0."""
    psf = check["gt_psf"][:, 16:48, 16:48]
    guess = check["gt_k0"] * 1.05
    parameters = estimate_parameters(
        check["raw"],
        pixel_size_um=0.08,
        z_step_um=0.125,
        psf=psf,
        kz0=float(check["gt_kz0"]),
        background=10.0,
        k0_guess=guess,
    )
    norm, angle = k0_errors(parameters.k0, check["gt_k0"])
    assert norm.max() < 1e-3 and angle.max() < 0.05


def test_given_values_override(check):
    """A given k0 is used as is (and the phases estimated with it); flags say which is which."""
    k0 = check["gt_k0"] * (1 + 1e-4)
    parameters = estimate_parameters(
        check["raw"],
        pixel_size_um=0.08,
        z_step_um=0.125,
        band_otfs=check["band_otfs"],
        background=10.0,
        k0=k0,
        modulation=[0.5, 0.25],
    )
    np.testing.assert_array_equal(parameters.k0, k0)
    np.testing.assert_array_equal(parameters.modulation, [[0.5, 0.25]] * 3)
    assert phase_errors(parameters.phases, check["gt_phases"]).max() < 0.05
    assert parameters.estimated == {"k0": False, "phases": True, "modulation": False}


def test_refine_steps_recovers_wrong_steps(check):
    """Told wrong steps (+-0.25 rad), the start-only estimate is off; estimating each step's
    phase recovers the true (nominal) ones."""
    raw = check["raw"][0] - 10.0
    wrong = nominal_phase_steps(5) + np.array([0, 0.25, -0.2, 0.15, -0.25])
    truth = check["gt_phases"][0]
    kwargs = {"pixel_size_um": 0.08, "phase_steps_rad": wrong}
    trusted, _ = estimate_phases_and_modulation(
        raw, check["band_otfs"], check["gt_k0"][0], **kwargs
    )
    refined, modulation = estimate_phases_and_modulation(
        raw, check["band_otfs"], check["gt_k0"][0], refine_steps=True, **kwargs
    )
    assert phase_errors(trusted, truth).max() > 0.1
    assert phase_errors(refined, truth).max() < 0.03
    np.testing.assert_allclose(modulation / THREE_BEAMS, 0.8, rtol=0.03)


# ---------------------------------------------------------------------------------------------
# Synthetic acquisitions at 1000 photons peak
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [3, 4])
def test_synthetic_poisson_targets(check, seed):
    raw, otfs, k0, phases = random_acquisition(check["band_otfs"], seed)
    parameters = estimate_parameters(
        raw, pixel_size_um=0.08, z_step_um=0.125, band_otfs=otfs, background=10.0
    )
    assert_targets(parameters, k0, phases)
    np.testing.assert_allclose(parameters.modulation / THREE_BEAMS, 0.8, rtol=0.06)


def test_synthetic_uneven_steps_need_refining(check):
    """Steps off by up to 0.25 rad: the nominal steps miss the phase target, refined ones
    meet it (and k0, re-estimated with the refined steps, too)."""
    raw, otfs, k0, phases = random_acquisition(check["band_otfs"], 6, steps_jitter=0.25)
    common = {"pixel_size_um": 0.08, "z_step_um": 0.125, "band_otfs": otfs, "background": 10.0}
    nominal = estimate_parameters(raw, **common)
    assert phase_errors(nominal.phases, phases).max() > 0.1
    refined = estimate_parameters(raw, refine_steps=True, **common)
    assert_targets(refined, k0, phases)


def test_two_beam(check):
    """Two-beam SIM, 3 phases, |k0| at 0.85 of the passband: orders -1..1 only."""
    raw, otfs, k0, phases = random_acquisition(check["band_otfs"], 6, two_beam=True, k0_norm=4.6)
    parameters = estimate_parameters(
        raw,
        pixel_size_um=0.08,
        z_step_um=0.125,
        band_otfs=otfs,
        background=10.0,
        orders=(-1, 0, 1),
    )
    assert parameters.modulation.shape == (3, 1)
    assert parameters.orders == (-1, 0, 1)
    assert_targets(parameters, k0, phases)
    np.testing.assert_allclose(parameters.modulation, 0.4, rtol=0.06)


def test_estimate_k0_alone_and_its_sign(check):
    """Reversed phase steps move band +1 to -k0: the sign follows the steps' direction."""
    raw = check["raw"][1] - 10.0
    forward = estimate_k0(raw, check["band_otfs"], pixel_size_um=0.08)
    backward = estimate_k0(raw[::-1], check["band_otfs"], pixel_size_um=0.08)
    np.testing.assert_allclose(forward, check["gt_k0"][1], rtol=1e-3)
    np.testing.assert_allclose(backward, -check["gt_k0"][1], rtol=1e-3)


# ---------------------------------------------------------------------------------------------
# The parameters record
# ---------------------------------------------------------------------------------------------


def test_parameters_json_round_trip():
    k0 = np.array([[0.0, 2.0], [1.0, 0.0], [-1.0, -1.0]])
    parameters = SIMParameters(
        k0=k0,
        phases=np.arange(15.0).reshape(3, 5),
        modulation=[0.5, 0.25],
        estimated={"k0": True, "phases": False, "modulation": True},
    )
    data = json.loads(parameters.to_json())
    np.testing.assert_allclose(data["line_spacing_um"], [0.5, 1.0, 1 / np.sqrt(2)])
    np.testing.assert_allclose(data["angle_deg"], [0.0, 90.0, -135.0])
    again = SIMParameters.from_dict(data)
    np.testing.assert_array_equal(again.k0, k0)
    np.testing.assert_array_equal(again.phases, parameters.phases)
    np.testing.assert_array_equal(again.modulation, [[0.5, 0.25]] * 3)
    assert again.estimated == parameters.estimated


def test_errors_name_the_field(check):
    raw = check["raw"]
    with pytest.raises(ValueError, match="band_otfs"):
        estimate_parameters(
            raw, pixel_size_um=0.08, z_step_um=0.125, band_otfs=np.ones((3, 4, 4, 4))
        )
    with pytest.raises(ValueError, match="k0"):
        estimate_parameters(
            raw, pixel_size_um=0.08, z_step_um=0.125, band_otfs=check["band_otfs"], k0=[1, 2]
        )
    with pytest.raises(ValueError, match="raw"):
        estimate_parameters(
            raw[0], pixel_size_um=0.08, z_step_um=0.125, band_otfs=check["band_otfs"]
        )
    with pytest.raises(ValueError, match="modulation"):
        SIMParameters(k0=[[1.0, 0.0]], phases=[[0.0] * 5], modulation=[[-0.1, 0.2]])
