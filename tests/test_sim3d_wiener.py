"""3D SIM baseline: generalized Wiener reconstruction, widefield image, bead widths.

The resolution claim (issue 15: lateral bead FWHM of the Wiener reconstruction at most 0.65x
the widefield's) is checked on the convention-check acquisition
(``tests/data/sim3d-convention-check.npz``, simulated by code we did not write; its authors'
Wiener resolves the isolated beads at about 109 nm, widefield 188 nm), with its ground-truth
parameters and with the parameters we estimate from the raw data.
"""

from __future__ import annotations

import numpy as np
import pytest
from sim3d_check import CHECK

from nstm.systems.sim3d.bands import band_otfs_from_psf, three_beam_amplitudes
from nstm.systems.sim3d.estimation import SIMParameters, estimate_parameters
from nstm.systems.sim3d.wiener import (
    FWHM_PER_SIGMA,
    apodization,
    bead_fwhm,
    fourier_upsample,
    isolated_beads,
    widefield_image,
    wiener_reconstruction,
)

ZOOM = 2
SPACING = (0.125, 0.04, 0.04)  # the file's output grid: z step, pixel / zoom


@pytest.fixture(scope="module")
def check():
    data = dict(np.load(CHECK))
    data["band_otfs"] = band_otfs_from_psf(
        data["gt_psf"], kz0=float(data["gt_kz0"]), z_step_um=float(data["z_step"])
    )
    positions = data["gt_bead_pos_um"]
    extent = np.array(data["gt_volume"].shape) * np.array(SPACING)
    data["isolated"] = positions[isolated_beads(positions, extent)]
    data["truth"] = SIMParameters(
        k0=data["gt_k0"],
        phases=data["gt_phases"],
        modulation=three_beam_amplitudes(float(data["gt_modulation"]), 3),
    )
    return data


def reconstruct(check, raw, parameters, **kwargs):
    return wiener_reconstruction(
        raw,
        parameters,
        check["band_otfs"],
        pixel_size_um=float(check["pixel_size"]),
        z_step_um=float(check["z_step"]),
        background=10.0,
        **kwargs,
    )


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def test_bead_fwhm_recovers_known_gaussians():
    """Gaussian blobs of known widths at sub-voxel positions, on a pedestal."""
    spacing = np.array([0.125, 0.04, 0.04])
    shape = (12, 64, 64)
    grid = np.stack(
        np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing, strict=True)), indexing="ij")
    )
    positions = np.array([[0.61, 0.71, 0.83], [0.77, 1.93, 1.49], [0.55, 1.31, 2.11]])
    lateral = np.array([0.10, 0.15, 0.19])
    axial = np.array([0.40, 0.50, 0.45])
    volume = np.full(shape, 3.0)
    for p, fl, fa in zip(positions, lateral, axial, strict=True):
        s_l, s_a = fl / FWHM_PER_SIGMA, fa / FWHM_PER_SIGMA
        r2 = ((grid[1] - p[1]) ** 2 + (grid[2] - p[2]) ** 2) / s_l**2 + (
            grid[0] - p[0]
        ) ** 2 / s_a**2
        volume += 100 * np.exp(-r2 / 2)
    widths = bead_fwhm(volume, positions, spacing)
    np.testing.assert_allclose(widths.lateral_um, lateral, rtol=0.01)
    # the axial fit runs through the nearest lateral voxel, not the centre: the same width
    np.testing.assert_allclose(widths.axial_um, axial, rtol=0.02)
    np.testing.assert_allclose(widths.center_um[:, 1:], positions[:, 1:], atol=1e-3)
    np.testing.assert_allclose(widths.center_um[:, 0], positions[:, 0], atol=5e-3)
    outside = bead_fwhm(volume, [[0.5, 0.01, 1.0], [0.5, 9.0, 1.0]], spacing)
    assert np.all(np.isnan(outside.lateral_um))


def test_isolated_beads():
    positions = np.array([[0.5, 1.0, 1.0], [0.5, 1.3, 1.0], [0.5, 3.0, 3.0], [0.5, 0.1, 3.0]])
    mask = isolated_beads(positions, (1.0, 5.0, 5.0), min_distance_um=0.5, margin_um=0.3)
    np.testing.assert_array_equal(mask, [False, False, True, False])


def test_fourier_upsample_interpolates_band_limited_data():
    """A sum of sinusoids below Nyquist, upsampled, equals the same sinusoids on the fine grid
    (raw pixel i at output pixel zoom * i)."""
    shape = (2, 16, 20)
    y, x = np.meshgrid(np.arange(shape[1]), np.arange(shape[2]), indexing="ij")

    def field(yy, xx):
        return (
            1.0
            + np.cos(2 * np.pi * (3 * yy / 16 + 2 * xx / 20) + 0.4)
            + 0.5 * np.sin(2 * np.pi * 7 * xx / 20)
        )

    volume = np.stack([field(y, x), 2 * field(y, x)])
    fine = fourier_upsample(volume, 3)
    yf, xf = np.meshgrid(np.arange(48) / 3, np.arange(60) / 3, indexing="ij")
    np.testing.assert_allclose(fine[1], 2 * field(yf, xf), atol=1e-12)
    np.testing.assert_allclose(fine[:, ::3, ::3], volume, atol=1e-12)


def test_apodization_is_a_bent_triangle():
    weight = apodization((4, 8, 8), (0.25, 0.1, 0.1), cutoff=(2.0, 5.0), bend=2.0)
    assert weight[0, 0, 0] == 1.0
    np.testing.assert_allclose(weight[0, 0, 2], (1 - 2.5 / 5.0) ** 2)  # kx 2.5 cycles/µm
    np.testing.assert_allclose(weight[1, 0, 0], (1 - 1.0 / 2.0) ** 2)  # kz 1 cycle/µm
    assert weight[2, 0, 0] == 0.0  # kz 2 cycles/µm: the cutoff


# ---------------------------------------------------------------------------------------------
# The convention-check acquisition
# ---------------------------------------------------------------------------------------------


def test_widefield_is_the_phase_average(check):
    wf = widefield_image(check["raw"], zoom=ZOOM, background=10.0)
    assert wf.shape == (8, 128, 128)
    np.testing.assert_allclose(
        wf[:, ::ZOOM, ::ZOOM], check["raw"].mean(axis=(0, 1)) - 10.0, rtol=1e-6, atol=1e-4
    )


def test_wiener_resolves_beads_with_true_parameters(check):
    """Measured: Wiener 110 nm, widefield 185 nm (ratio 0.60) at the default w; localization
    within 1 nm of the true bead centres (the output grid's convention)."""
    wiener = reconstruct(check, check["raw"], check["truth"])
    wf = widefield_image(check["raw"], zoom=ZOOM, background=10.0)
    assert wiener.shape == wf.shape == (8, 128, 128)
    beads = check["isolated"]
    assert len(beads) >= 4
    sim = bead_fwhm(wiener, beads, SPACING)
    widefield = bead_fwhm(wf, beads, SPACING)
    assert np.all(np.isfinite(sim.lateral_um)) and np.all(np.isfinite(widefield.lateral_um))
    ratio = np.median(sim.lateral_um) / np.median(widefield.lateral_um)
    assert ratio <= 0.65, (sim.lateral_um, widefield.lateral_um)
    assert 0.17 < np.median(widefield.lateral_um) < 0.20  # the file's authors: 188 nm
    assert np.median(sim.lateral_um) < 0.12  # the file's authors: 109 nm
    assert np.median(sim.axial_um) < 0.8 * np.median(widefield.axial_um)
    error = np.linalg.norm(sim.center_um[:, 1:] - beads[:, 1:], axis=1)
    assert error.max() < 0.005, error
    # the scale: the Wiener volume's mean is the widefield's (both counts per raw stack)
    np.testing.assert_allclose(wiener.mean(), wf.mean(), rtol=0.01)


def test_wiener_parameter_trades_resolution_for_smoothing(check):
    raw = check["raw"]
    widths = [
        np.median(
            bead_fwhm(
                reconstruct(check, raw, check["truth"], wiener=w), check["isolated"], SPACING
            ).lateral_um
        )
        for w in (0.01, 0.1)
    ]
    assert widths[0] < widths[1]


@pytest.mark.parametrize("seed", [0])
def test_wiener_with_estimated_parameters_and_noise(check, seed):
    """The whole baseline from the raw data alone: Poisson noise at 1000 photons peak,
    parameters estimated from it."""
    rng = np.random.default_rng(seed)
    raw = rng.poisson(check["raw"]).astype(np.float64)
    parameters = estimate_parameters(
        raw, pixel_size_um=0.08, z_step_um=0.125, band_otfs=check["band_otfs"], background=10.0
    )
    beads = check["isolated"]
    sim = bead_fwhm(reconstruct(check, raw, parameters), beads, SPACING)
    widefield = bead_fwhm(widefield_image(raw, zoom=ZOOM, background=10.0), beads, SPACING)
    ratio = np.median(sim.lateral_um) / np.median(widefield.lateral_um)
    assert ratio <= 0.65, (sim.lateral_um, widefield.lateral_um)
    error = np.linalg.norm(sim.center_um[:, 1:] - beads[:, 1:], axis=1)
    assert error.max() < 0.01, error


def test_wiener_errors_name_the_field(check):
    raw = check["raw"]
    with pytest.raises(ValueError, match="zoom"):
        reconstruct(check, raw, check["truth"], zoom=1.5)
    with pytest.raises(ValueError, match="parameters"):
        reconstruct(check, raw[:2], check["truth"])
    with pytest.raises(ValueError, match="band_otfs"):
        wiener_reconstruction(
            raw, check["truth"], np.ones((3, 8, 32, 32)), pixel_size_um=0.08, z_step_um=0.125
        )
    with pytest.raises(ValueError, match="wiener"):
        reconstruct(check, raw, check["truth"], wiener=-1.0)
