"""The DPC imaging system: forward model, padding, sources on the padded grid, validation."""

import jax.numpy as jnp
import numpy as np
import pytest

from nstm.optics import pupil
from nstm.systems.dpc import DPC, DPCConfig, resample_sources
from nstm.systems.dpc.data import DPCData
from nstm.systems.dpc.optics import apply_transfer_functions, dpc_sources, transfer_functions
from nstm.systems.dpc.regularization import choose_tikhonov_reg

OPTICS = dict(wavelength_um=0.525, pixel_size_um=0.454)


def make_data(shape=(40, 52), frames=4, seed=0):
    rng = np.random.default_rng(seed)
    sources = dpc_sources(shape, na_illum=0.25, **OPTICS)
    return DPCData(
        images=0.01 * rng.standard_normal((frames, *shape)).astype(np.float32),
        sources=sources[:frames],
        times=np.linspace(-1, 1, frames, dtype=np.float32),
        na=0.25,
        **OPTICS,
    )


@pytest.mark.parametrize("pad", [0, 6])
def test_forward_is_the_linear_model_of_that_frame_only(pad):
    data = make_data()
    system = DPC.from_data(data, DPCConfig(pad_px=pad))
    assert system.grid_shape == (40 + 2 * pad, 52 + 2 * pad)
    rng = np.random.default_rng(1)
    scene = rng.standard_normal((1, *system.grid_shape, 2)).astype(np.float32)
    hu, hp = np.asarray(system.absorption_tf), np.asarray(system.phase_tf)
    expected = apply_transfer_functions(scene[0, ..., 0], scene[0, ..., 1], hu, hp)
    for k in range(4):
        got = np.asarray(system.forward(jnp.asarray(scene), jnp.asarray(k)))
        np.testing.assert_allclose(got, expected[k][system.fov], atol=2e-5)


def test_padded_transfer_functions_keep_the_dpc_identities():
    system = DPC.from_data(make_data(), DPCConfig(pad_px=10))
    hu, hp = np.asarray(system.absorption_tf), np.asarray(system.phase_tf)
    assert hu.shape == hp.shape == (4, 60, 72)
    np.testing.assert_allclose(hu[:, 0, 0], 2.0, atol=1e-5)  # absorption TF = 2 at DC
    np.testing.assert_allclose(hp[:, 0, 0], 0.0, atol=1e-6)  # phase invisible at DC
    shape = system.grid_shape
    direct = transfer_functions(
        dpc_sources(shape, na_illum=0.25, **OPTICS), pupil(shape, na=0.25, **OPTICS)
    )
    # Resampled sources agree with sources drawn on the padded grid except on a few rim pixels
    # (mean differences of about 0.001 against mean magnitudes of 0.29 and 0.15).
    assert np.mean(np.abs(hu - direct[0])) < 0.005
    assert np.mean(np.abs(hp - direct[1])) < 0.005
    assert np.mean(np.abs(hp)) > 0.1


def test_resample_sources_is_identity_on_same_grid_and_nearest_otherwise():
    s = dpc_sources((16, 20), na_illum=0.25, **OPTICS)
    assert resample_sources(s, (16, 20)) is s
    big = resample_sources(s, (32, 40))
    np.testing.assert_array_equal(big[:, ::2, ::2], s)
    # A grid that is no multiple of the old one: every new frequency (cycles/px, unshifted
    # layout) takes the value at the nearest old frequency, measured around the circle (random
    # maps, so that every frequency, Nyquist's included, tells).
    maps = np.random.default_rng(0).uniform(size=(2, 16, 20))
    odd = resample_sources(maps, (27, 33))
    assert odd.shape == (2, 27, 33)

    def nearest(old, new):
        f_old, f_new = np.fft.fftfreq(old), np.fft.fftfreq(new)
        distance = np.abs((f_new[:, None] - f_old[None, :] + 0.5) % 1.0 - 0.5)
        assert np.all(np.sort(distance, axis=1)[:, 1] > distance.min(axis=1) + 1e-9)  # no ties
        return distance.argmin(axis=1)

    iy, ix = nearest(16, 27), nearest(20, 33)
    np.testing.assert_array_equal(odd, maps[:, iy[:, None], ix[None, :]])


def test_shifting_the_sample_shifts_the_image():
    system = DPC.from_data(make_data(shape=(32, 32)), DPCConfig(pad_px=0))
    rng = np.random.default_rng(2)
    scene = rng.standard_normal((1, 32, 32, 2)).astype(np.float32)
    image = np.asarray(system.forward(jnp.asarray(scene), jnp.asarray(1)))
    shifted = np.roll(scene, (3, -5), axis=(1, 2))
    image2 = np.asarray(system.forward(jnp.asarray(shifted), jnp.asarray(1)))
    np.testing.assert_allclose(image2, np.roll(image, (3, -5), axis=(0, 1)), atol=2e-5)


def test_loss_margin_and_regularizers():
    data = make_data()
    system = DPC.from_data(data, DPCConfig(pad_px=0, loss_margin_px=3, phase_l2_weight=0.5))
    scene = jnp.zeros((1, *system.grid_shape, 2))
    residual = -np.asarray(data.images[0])[3:-3, 3:-3]
    np.testing.assert_allclose(
        system.data_loss(scene, jnp.asarray(0)), np.mean(residual**2), rtol=1e-5
    )
    phase = scene.at[..., 1].set(2.0)
    np.testing.assert_allclose(system.regularization(phase), 0.5 * 4.0, rtol=1e-6)


def test_bad_config_values_name_the_field():
    with pytest.raises(ValueError, match="pad_px"):
        DPC.from_data(make_data(), DPCConfig(pad_px=-1))
    with pytest.raises(ValueError, match="loss_margin_px"):
        DPC.from_data(make_data(), DPCConfig(loss_margin_px=30))


def test_baseline_weight_from_the_data_unless_given():
    data = make_data()
    system = DPC.from_data(data, DPCConfig(pad_px=4))
    chosen = choose_tikhonov_reg(
        data.images, np.asarray(system.absorption_tf), np.asarray(system.phase_tf), pad=4
    ).reg
    assert system.baseline_info() == {
        "method": "tikhonov",
        "reg_absorption": pytest.approx(chosen, rel=1e-6),
        "reg_phase": pytest.approx(chosen, rel=1e-6),
        "chosen_by": "gcv",
    }
    given = DPC.from_data(data, DPCConfig(tikhonov_reg_absorption=1e-2, tikhonov_reg_phase=1e-3))
    assert given.tikhonov_reg == (1e-2, 1e-3) and given.baseline_info()["chosen_by"] == "config"
    with pytest.raises(ValueError, match="tikhonov_reg_absorption, tikhonov_reg_phase: give both"):
        DPC.from_data(data, DPCConfig(tikhonov_reg_phase=1e-3))
