"""Tests for nstm.systems.dpc.data: DPCData validation, load_dpc / save_dpc."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from nstm.io import save_tiff
from nstm.systems.dpc.data import DPCData, load_dpc, save_dpc

WAVELENGTH_UM = 0.525
NA = 0.25
PIXEL_SIZE_UM = 0.454
SHAPE = (64, 64)


def half_disc_sources(shape=SHAPE, na=NA, wavelength_um=WAVELENGTH_UM, pixel_um=PIXEL_SIZE_UM):
    """Four half-disc DPC sources (right, left, bottom, top) on the unshifted FFT grid."""
    fy = np.fft.fftfreq(shape[0], d=pixel_um)[:, None]  # µm⁻¹
    fx = np.fft.fftfreq(shape[1], d=pixel_um)[None, :]
    disc = np.hypot(fy, fx) <= na / wavelength_um
    halves = [disc & (fx > 0), disc & (fx < 0), disc & (fy > 0), disc & (fy < 0)]
    return np.stack(halves).astype(np.float32)


def dpc_images(frames=4, shape=SHAPE, seed=0):
    """Zero-centred frames (I / I_background - 1) of a weak random object."""
    rng = np.random.default_rng(seed)
    return (0.05 * rng.standard_normal((frames, *shape))).astype(np.float32)


def make_data(**overrides) -> DPCData:
    kwargs = dict(
        images=dpc_images(),
        sources=half_disc_sources(),
        times=np.linspace(-1, 1, 4),
        wavelength_um=WAVELENGTH_UM,
        pixel_size_um=PIXEL_SIZE_UM,
        na=NA,
    )
    kwargs.update(overrides)
    return DPCData(**kwargs)


# --- DPCData -------------------------------------------------------------------------------------


def test_dpcdata_converts_and_reports_shape():
    data = make_data(images=dpc_images().astype(np.float64), times=[-1, -0.5, 0.5, 1])
    assert data.images.dtype == np.float32
    assert data.sources.dtype == np.float32
    assert data.times.dtype == np.float32
    assert data.num_frames == 4
    assert data.shape == SHAPE
    assert isinstance(data.na, float)


@pytest.mark.parametrize("shape", [(64, 64), (63, 65), (40, 96)])
def test_unshifted_sources_accepted_centred_rejected(shape):
    s = half_disc_sources(shape)
    images = dpc_images(shape=shape)
    make_data(images=images, sources=s)  # unshifted: accepted
    for shift in (np.fft.fftshift, np.fft.ifftshift):  # differ for odd sizes
        with pytest.raises(ValueError, match=r"sources: the source maps look centred .*ifftshift"):
            make_data(images=images, sources=shift(s, axes=(-2, -1)))


def test_centred_detection_near_nyquist_and_tiny_sources():
    # Pupil radius at ~0.9 of Nyquist, and a source only ~1 pixel wide.
    for na, wavelength in [(1.2, 0.525 * 0.454 / 0.2), (0.02, WAVELENGTH_UM)]:
        s = half_disc_sources(na=na, wavelength_um=wavelength)
        make_data(sources=s, wavelength_um=wavelength, na=na)
        with pytest.raises(ValueError, match="sources: the source maps look centred"):
            make_data(sources=np.fft.fftshift(s, axes=(-2, -1)), wavelength_um=wavelength, na=na)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"images": dpc_images()[0]}, r"images: expected a 3D array \(frames, H, W\).*\(64, 64\)"),
        ({"images": dpc_images(frames=1)}, "images: expected at least 2 frames"),
        (
            {"sources": half_disc_sources()[:, :, :63]},
            r"sources: expected shape \(frames, H, W\) = \(4, 64, 64\) to match images, "
            r"got \(4, 64, 63\)",
        ),
        ({"sources": half_disc_sources()[:2]}, r"numpy.tile\(s, \(2, 1, 1\)\)"),
        ({"sources": -half_disc_sources()}, "sources: expected non-negative"),
        ({"sources": half_disc_sources() * [[[1]], [[1]], [[0]], [[1]]]}, r"source\(s\) \[2\]"),
        ({"times": np.linspace(-1, 1, 5)}, r"times: expected shape \(frames,\) = \(4,\).*\(5,\)"),
        ({"times": [0.0, 1.0, 2.0, 3.0]}, r"times: .*\[-1, 1\], got min 0, max 3"),
        ({"times": [-1.0, np.nan, 0.0, 1.0]}, "times: expected finite values.*1 NaN"),
        ({"wavelength_um": 525.0}, "wavelength_um: .*got 525.*nm"),
        ({"wavelength_um": -0.5}, "wavelength_um"),
        ({"pixel_size_um": 0.0}, "pixel_size_um: expected a positive"),
        ({"na": 1.7}, r"na: expected a numerical aperture in \(0, 1.6\), got 1.7"),
        ({"na": 0.0}, "na: expected"),
    ],
)
def test_dpcdata_validation_errors(overrides, match):
    with pytest.raises(ValueError, match=match):
        make_data(**overrides)


def test_nan_images_counted():
    images = dpc_images()
    images[0, :2, :3] = np.nan
    images[1, 0, 0] = np.inf
    with pytest.raises(
        ValueError, match=r"images: expected finite values, got 7 non-finite .*6 NaN"
    ):
        make_data(images=images)


def test_complex_images_rejected():
    with pytest.raises(TypeError, match="images: expected a real-valued"):
        make_data(images=dpc_images().astype(np.complex64))


def test_wavelength_outside_usual_range_warns():
    with pytest.warns(UserWarning, match="wavelength_um"):
        make_data(wavelength_um=3.0)


def test_times_rounding_is_clipped():
    data = make_data(times=np.array([-1.000001, -0.3, 0.3, 1.000001]))
    assert data.times.min() == -1.0 and data.times.max() == 1.0


def test_raw_intensities_rejected_by_dpcdata():
    with pytest.raises(ValueError, match=r"raw intensities.*--system.normalize"):
        make_data(images=1.0 + dpc_images())


# --- load_dpc / save_dpc -------------------------------------------------------------------------


def test_npz_round_trip(tmp_path):
    data = make_data(times=[-1.0, -0.2, 0.4, 1.0])
    gt = np.ones(SHAPE, np.float32)
    save_dpc(tmp_path / "d.npz", data, phase=gt)
    with pytest.warns(UserWarning, match=r"ignoring keys \['phase'\]"):
        loaded = load_dpc(tmp_path / "d.npz")
    np.testing.assert_array_equal(loaded.images, data.images)
    np.testing.assert_array_equal(loaded.sources, data.sources)
    np.testing.assert_array_equal(loaded.times, data.times)
    assert (loaded.wavelength_um, loaded.pixel_size_um, loaded.na) == (
        data.wavelength_um,
        data.pixel_size_um,
        data.na,
    )
    np.testing.assert_array_equal(np.load(tmp_path / "d.npz")["phase"], gt)


def test_save_dpc_rejects_reserved_extra(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        save_dpc(tmp_path / "d.npz", make_data(), img=np.zeros(3))
    with pytest.raises(ValueError, match=r"\.npz"):
        save_dpc(tmp_path / "d.npy", make_data())


def test_original_layout_with_keyword_params(tmp_path):
    # The original notebook's dpc_data.npz: only img and s, float64, constants in code.
    images, s = dpc_images().astype(np.float64), half_disc_sources().astype(np.float64)
    np.savez(tmp_path / "dpc_data.npz", img=images, s=s)
    data = load_dpc(
        tmp_path / "dpc_data.npz", wavelength_um=WAVELENGTH_UM, pixel_size_um=PIXEL_SIZE_UM, na=NA
    )
    np.testing.assert_array_equal(data.images, images.astype(np.float32))
    np.testing.assert_array_equal(data.times, np.linspace(-1, 1, 4, dtype=np.float32))
    assert data.na == NA


def test_overrides_win_over_file(tmp_path):
    save_dpc(tmp_path / "d.npz", make_data())
    times = np.array([-1.0, 0.0, 0.5, 1.0])
    data = load_dpc(tmp_path / "d.npz", na=0.4, wavelength_um=0.6, pixel_size_um=0.3, times=times)
    assert (data.na, data.wavelength_um, data.pixel_size_um) == (0.4, 0.6, 0.3)
    np.testing.assert_array_equal(data.times, times.astype(np.float32))


def test_missing_na_names_key_and_option(tmp_path):
    np.savez(tmp_path / "data.npz", img=dpc_images(), s=half_disc_sources(), wavelength=0.525)
    with pytest.raises(
        ValueError, match=r"na: not in data.npz \(key 'na'\) and not given; pass --system.na"
    ):
        load_dpc(tmp_path / "data.npz", pixel_size_um=PIXEL_SIZE_UM)


def test_missing_sources(tmp_path):
    np.savez(tmp_path / "data.npz", img=dpc_images())
    with pytest.raises(ValueError, match=r"sources: not in data.npz \(key 's'\)"):
        load_dpc(tmp_path / "data.npz", wavelength_um=0.5, pixel_size_um=0.4, na=0.2)


def test_centred_sources_in_file_detected(tmp_path):
    s = np.fft.fftshift(half_disc_sources(), axes=(-2, -1))
    np.savez(
        tmp_path / "data.npz", img=dpc_images(), s=s, wavelength=0.525, pixel_size=0.454, na=NA
    )
    with pytest.raises(ValueError, match=r"^data.npz: s: the source maps look centred"):
        load_dpc(tmp_path / "data.npz")


def test_normalize_raw_intensities(tmp_path):
    rng = np.random.default_rng(1)
    raw = (1000 * (1 + dpc_images()) + rng.uniform(0, 5, (4, *SHAPE))).astype(np.uint16)
    raw[1] *= 2  # a brighter frame: normalization is per frame
    np.savez(tmp_path / "raw.npz", img=raw, s=half_disc_sources())
    params = dict(wavelength_um=WAVELENGTH_UM, pixel_size_um=PIXEL_SIZE_UM, na=NA)
    with pytest.raises(ValueError, match="raw intensities.*normalize"):
        load_dpc(tmp_path / "raw.npz", **params)
    data = load_dpc(tmp_path / "raw.npz", normalize=True, **params)
    np.testing.assert_allclose(data.images.mean(axis=(1, 2)), 0.0, atol=1e-6)  # float32 rounding
    expected = raw[0] / raw[0].mean() - 1
    np.testing.assert_allclose(data.images[0], expected, rtol=1e-5, atol=1e-6)


def test_normalize_rejects_zero_centred(tmp_path):
    np.savez(tmp_path / "d.npz", img=dpc_images(), s=half_disc_sources())
    with pytest.raises(ValueError, match="already zero-centred"):
        load_dpc(tmp_path / "d.npz", wavelength_um=0.5, pixel_size_um=0.4, na=0.2, normalize=True)


def test_tiff_stack_with_sources_from_npy(tmp_path):
    images = dpc_images()
    tifffile.imwrite(tmp_path / "stack.tif", images, photometric="minisblack")
    np.save(tmp_path / "s.npy", half_disc_sources())
    params = dict(wavelength_um=WAVELENGTH_UM, pixel_size_um=PIXEL_SIZE_UM, na=NA)
    data = load_dpc(tmp_path / "stack.tif", sources=tmp_path / "s.npy", **params)
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_array_equal(data.sources, half_disc_sources())
    with pytest.raises(ValueError, match="sources: TIFF stacks carry no source maps"):
        load_dpc(tmp_path / "stack.tif", **params)
    with pytest.raises(ValueError, match=r"na: not stored in TIFF and not given; pass --system.na"):
        load_dpc(
            tmp_path / "stack.tif", sources=tmp_path / "s.npy", wavelength_um=0.5, pixel_size_um=0.4
        )


def test_unsupported_extension_lists_supported(tmp_path):
    (tmp_path / "d.h5").write_bytes(b"")
    with pytest.raises(ValueError, match=r"'\.h5'.*\.npz.*\.tif/\.tiff"):
        load_dpc(tmp_path / "d.h5")
    with pytest.raises(FileNotFoundError):
        load_dpc(tmp_path / "missing.npz")


# --- messages name the input as the user gave it -------------------------------------------------


def npz_with(tmp_path, **overrides):
    """A valid data.npz with some of its keys replaced."""
    arrays = dict(
        img=dpc_images(), s=half_disc_sources(), wavelength=WAVELENGTH_UM, pixel_size=0.454, na=NA
    )
    arrays.update(overrides)
    np.savez(tmp_path / "data.npz", **arrays)
    return tmp_path / "data.npz"


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (
            {"img": dpc_images()[0]},
            ValueError,
            r"^data.npz: img: expected a 3D array \(frames, H, W\)",
        ),
        ({"img": dpc_images(frames=1)}, ValueError, r"^data.npz: img: expected at least 2 frames"),
        ({"img": dpc_images().astype(np.complex64)}, TypeError, r"^data.npz: img: expected a real"),
        (
            {"s": half_disc_sources()[:, :, :63]},
            ValueError,
            r"^data.npz: s: expected shape \(frames, H, W\) = \(4, 64, 64\) to match img, ",
        ),
        ({"s": -half_disc_sources()}, ValueError, r"^data.npz: s: expected non-negative"),
        ({"times": np.zeros(3)}, ValueError, r"^data.npz: times: .*to match img, got \(3,\)"),
        ({"wavelength": 525.0}, ValueError, r"^data.npz: wavelength: .*got 525.*nm"),
        ({"pixel_size": -1.0}, ValueError, r"^data.npz: pixel_size: expected a positive size"),
        ({"na": 2.0}, ValueError, r"^data.npz: na: expected a numerical aperture"),
        ({"na": np.ones(2)}, ValueError, r"^data.npz: na: expected a single number, got an arr"),
        ({"wavelength": np.str_("0.525")}, TypeError, r"^data.npz: wavelength: expected a number"),
    ],
)
def test_npz_errors_name_the_key(tmp_path, overrides, error, match):
    with pytest.raises(error, match=match):
        load_dpc(npz_with(tmp_path, **overrides))


def test_given_values_are_named_as_given(tmp_path):
    path = npz_with(tmp_path)
    # A keyword wins over the file and is named by its keyword, not the npz key.
    with pytest.raises(ValueError, match=r"^data.npz: pixel_size_um: expected a positive size"):
        load_dpc(path, pixel_size_um=-0.5)
    np.save(tmp_path / "s.npy", half_disc_sources()[:, :, :63])
    with pytest.raises(ValueError, match=r"^data.npz: sources \(s.npy\): expected shape .*img"):
        load_dpc(path, sources=tmp_path / "s.npy")
    with pytest.warns(UserWarning, match=r"^wavelength: 3 µm is outside the usual"):
        load_dpc(npz_with(tmp_path, wavelength=3.0))


def test_python_api_keeps_field_names_after_a_load(tmp_path):
    # The npz names apply only inside load_dpc.
    with pytest.raises(ValueError, match="img"):
        load_dpc(npz_with(tmp_path, img=dpc_images()[0]))
    with pytest.raises(ValueError, match=r"^images: expected a 3D array"):
        make_data(images=dpc_images()[0])


def test_missing_img_key(tmp_path):
    np.savez(tmp_path / "data.npz", image=dpc_images(), s=half_disc_sources())
    with pytest.raises(ValueError, match=r"^data.npz: img: missing.*found keys \['image', 's'\]"):
        load_dpc(tmp_path / "data.npz")


# --- pixel size from TIFF metadata ---------------------------------------------------------------


def tiff_and_sources(tmp_path, **kwargs):
    """stack.tif written with tifffile's ``kwargs``, and the parameters to load it."""
    tifffile.imwrite(tmp_path / "stack.tif", dpc_images(), photometric="minisblack", **kwargs)
    np.save(tmp_path / "s.npy", half_disc_sources())
    params = dict(sources=tmp_path / "s.npy", wavelength_um=WAVELENGTH_UM, na=NA)
    return tmp_path / "stack.tif", params


def ome_metadata(x_um, y_um):
    pixels = {"PhysicalSizeX": x_um, "PhysicalSizeY": y_um}
    units = {"PhysicalSizeXUnit": "\u00b5m", "PhysicalSizeYUnit": "\u00b5m"}
    return dict(ome=True, metadata={"axes": "ZYX", **pixels, **units})


def test_tiff_pixel_size_read_from_ome_metadata(tmp_path):
    path, params = tiff_and_sources(tmp_path, **ome_metadata(0.454, 0.454))
    data = load_dpc(path, **params)
    assert data.pixel_size_um == 0.454
    np.testing.assert_array_equal(data.images, dpc_images())
    # A given value wins, with a warning that the file disagrees.
    with pytest.warns(
        UserWarning, match=r"using the given 0.5 µm; stack.tif's metadata says 0.454"
    ):
        assert load_dpc(path, pixel_size_um=0.5, **params).pixel_size_um == 0.5


def test_tiff_pixel_size_from_save_tiff_and_resolution_tags(tmp_path):
    stack = dpc_images()
    np.save(tmp_path / "s.npy", half_disc_sources())
    params = dict(sources=tmp_path / "s.npy", wavelength_um=WAVELENGTH_UM, na=NA)
    save_tiff(tmp_path / "a.ome.tif", stack, axes="TYX", spacing_um={"Y": 0.3, "X": 0.3})
    assert load_dpc(tmp_path / "a.ome.tif", **params).pixel_size_um == 0.3
    tifffile.imwrite(
        tmp_path / "cm.tif",
        stack,
        photometric="minisblack",
        resolution=(1e4 / 0.2, 1e4 / 0.2),
        resolutionunit="CENTIMETER",
    )
    assert load_dpc(tmp_path / "cm.tif", **params).pixel_size_um == pytest.approx(0.2)


def test_tiff_without_pixel_size_names_the_option(tmp_path):
    path, params = tiff_and_sources(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"^pixel_size_um: stack.tif carries none in its metadata .* and not given; "
        r"pass --system.pixel-size-um",
    ):
        load_dpc(path, **params)


def test_tiff_with_non_square_pixels_is_refused(tmp_path):
    path, params = tiff_and_sources(tmp_path, **ome_metadata(0.5, 0.4))
    with pytest.raises(ValueError, match=r"y \(0.4 µm\) and x \(0.5 µm\).*--system.pixel-size-um"):
        load_dpc(path, **params)
    assert load_dpc(path, pixel_size_um=0.45, **params).pixel_size_um == 0.45


def test_tiff_pixel_size_from_metadata_is_named_so(tmp_path):
    path, params = tiff_and_sources(tmp_path, **ome_metadata(80.0, 80.0))
    with pytest.warns(
        UserWarning, match=r"^pixel_size_um \(from the TIFF metadata\): 80 µm is unusually large"
    ):
        load_dpc(path, **params)
