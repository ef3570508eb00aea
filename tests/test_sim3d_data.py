"""The 3D SIM data layout: the convention file loads as documented, round trips, TIFF page
orders, and clear errors naming the field."""

import numpy as np
import pytest
import tifffile
from sim3d_check import CHECK

from nstm.systems.sim3d.data import SIMData, default_times, load_sim, save_sim

OPTICS = dict(
    pixel_size=0.08, z_step=0.125, wavelength_em=0.515, wavelength_ex=0.488, na=1.4,
    n_immersion=1.515,
)  # fmt: skip


def small_raw(orientations=3, phases=5, z=4, size=16):
    """Raw stacks whose every plane holds its own (orientation, phase, z) code."""
    o, p, k = np.meshgrid(range(orientations), range(phases), range(z), indexing="ij")
    codes = (100 * o + 10 * p + k).astype(np.float32)
    return np.broadcast_to(codes[..., None, None], (orientations, phases, z, size, size)).copy()


def test_the_convention_file_loads_as_documented():
    with pytest.warns(UserWarning, match="ignoring keys .*gt_k0"):
        data = load_sim(CHECK)
    assert data.raw.shape == (3, 5, 8, 64, 64) and data.times.shape == (3, 5)
    assert (data.pixel_size_um, data.z_step_um, data.na) == (0.08, 0.125, 1.4)
    assert data.k0 is None and data.phases is None  # to be estimated


def test_npz_round_trip_with_overrides(tmp_path):
    raw = small_raw()
    k0 = np.array([[0.7, 2.2], [2.3, 0.5], [1.6, -1.7]])
    data = SIMData(
        raw, 0.08, 0.125, 0.515, 0.488, 1.4, 1.515, times=default_times(3, 5), background=10,
        k0=k0, phases=np.zeros((3, 5)), modulation=0.8,
    )  # fmt: skip
    save_sim(tmp_path / "d.npz", data)
    back = load_sim(tmp_path / "d.npz")
    np.testing.assert_array_equal(back.raw, raw)
    np.testing.assert_array_equal(back.k0, k0)
    # A modulation depth of 0.8: amp_1, amp_2 = 0.8 * (2/3, 1/3) (bands.three_beam_amplitudes).
    np.testing.assert_allclose(back.modulation, np.tile([0.8 * 2 / 3, 0.8 / 3], (3, 1)))
    assert back.background == 10
    # Acquisition order: orientation-major, then phase, evenly over [-1, 1].
    np.testing.assert_allclose(back.times.ravel(), np.linspace(-1, 1, 15), atol=1e-6)
    # Given values override the file's.
    assert load_sim(tmp_path / "d.npz", na=1.2).na == 1.2


@pytest.mark.parametrize("order", ["OZP", "OPZ", "ZPO"])
def test_tiff_pages_in_any_axis_order(tmp_path, order):
    raw = small_raw()
    # Pages written slowest axis first, as the order names them.
    positions = {"O": 0, "P": 1, "Z": 2}
    pages = np.transpose(raw, [positions[a] for a in order] + [3, 4]).reshape(-1, 16, 16)
    tifffile.imwrite(tmp_path / "raw.tif", pages)
    optics = {
        "pixel_size_um": 0.08, "z_step_um": 0.125, "wavelength_em_um": 0.515,
        "wavelength_ex_um": 0.488, "na": 1.4, "n_immersion": 1.515,
    }  # fmt: skip
    data = load_sim(tmp_path / "raw.tif", axis_order=order, orientations=3, phases=5, **optics)
    np.testing.assert_array_equal(data.raw, raw)


def test_tiff_takes_its_voxel_size_from_the_metadata(tmp_path):
    from nstm.io.tiff import save_tiff

    pages = small_raw().transpose(0, 2, 1, 3, 4).reshape(-1, 16, 16)  # OZP
    save_tiff(tmp_path / "raw.ome.tif", pages, axes="ZYX", spacing_um={"Z": 0.125, "Y": 0.08,
              "X": 0.08})  # fmt: skip
    data = load_sim(
        tmp_path / "raw.ome.tif", orientations=3, phases=5, wavelength_em_um=0.515,
        wavelength_ex_um=0.488, na=1.4, n_immersion=1.515,
    )  # fmt: skip
    assert data.pixel_size_um == pytest.approx(0.08) and data.z_step_um == pytest.approx(0.125)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(raw=np.zeros((5, 4, 16, 16))), r"raw: expected a 5D array"),
        (dict(raw=np.zeros((3, 2, 4, 16, 16))), r"raw: expected at least 3 phases"),
        (dict(raw=np.full((3, 5, 4, 16, 16), np.nan)), "raw: expected finite"),
        (dict(na=1.6), "na: 1.6 must be below the immersion index"),
        (dict(pixel_size=-0.1), "pixel_size_um: expected a positive"),
        (dict(times=np.zeros((3, 4))), r"times: expected shape \(orientations, phases\)"),
        (dict(times=np.full((3, 5), 2.0)), r"times: expected normalized times in \[-1, 1\]"),
        (dict(k0=np.full((3, 2), 10.0)), "k0: .* beyond the detection passband"),
        (dict(k0=np.zeros((2, 2))), r"k0: expected finite \(orientations, 2\)"),
        (dict(phases=np.zeros((3, 4))), r"phases: expected finite \(orientations, phases\)"),
        (dict(wavelength_em=np.str_("0.5")), "wavelength_em: expected a number"),
    ],
)
def test_bad_inputs_name_the_field(tmp_path, change, message):
    arrays = {"raw": small_raw(z=4), **OPTICS, **change}
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises((ValueError, TypeError), match=message) as caught:
        load_sim(tmp_path / "bad.npz")
    assert str(caught.value).startswith("bad.npz: ")


def test_missing_microscope_values_name_their_option(tmp_path):
    np.savez(tmp_path / "d.npz", raw=small_raw(), pixel_size=0.08)
    with pytest.raises(ValueError, match="z_step: missing; give it in the file or with "
                       "--system.z-step-um"):  # fmt: skip
        load_sim(tmp_path / "d.npz")
    with pytest.raises(ValueError, match="orientations and phases"):
        tifffile.imwrite(tmp_path / "r.tif", np.zeros((15, 16, 16), np.float32))
        load_sim(tmp_path / "r.tif", pixel_size_um=0.08)
