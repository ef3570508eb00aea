"""Tests for nstm.io.tiff.read_tiff_spacing_um: pixel sizes from OME, ImageJ and TIFF tags."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from nstm.io import read_tiff_spacing_um, save_tiff

STACK = np.zeros((3, 8, 9), np.float32)


def write_ome(path, **pixels):
    tifffile.imwrite(
        path, STACK, ome=True, photometric="minisblack", metadata={"axes": "ZYX", **pixels}
    )


def test_ome_in_nanometres_converted_exactly(tmp_path):
    write_ome(
        tmp_path / "nm.ome.tif",
        PhysicalSizeX=454,
        PhysicalSizeXUnit="nm",
        PhysicalSizeY=454,
        PhysicalSizeYUnit="nm",
        PhysicalSizeZ=1250,
        PhysicalSizeZUnit="nm",
    )
    assert read_tiff_spacing_um(tmp_path / "nm.ome.tif") == {"Z": 1.25, "Y": 0.454, "X": 0.454}


@pytest.mark.parametrize(
    ("unit", "value", "expected"),
    [("\u00b5m", 0.454, 0.454), ("um", 0.454, 0.454), ("mm", 0.002, 2.0), ("m", 1e-6, 1.0)],
)
def test_ome_length_units(tmp_path, unit, value, expected):
    write_ome(
        tmp_path / "a.ome.tif",
        PhysicalSizeX=value,
        PhysicalSizeXUnit=unit,
        PhysicalSizeY=value,
        PhysicalSizeYUnit=unit,
    )
    spacing = read_tiff_spacing_um(tmp_path / "a.ome.tif")
    assert spacing == {"Y": pytest.approx(expected), "X": pytest.approx(expected)}


def test_ome_without_unit_is_micrometres_and_non_lengths_are_dropped(tmp_path):
    # OME's default PhysicalSize unit is µm; "pixel" describes no physical size.
    write_ome(tmp_path / "a.ome.tif", PhysicalSizeX=0.3, PhysicalSizeY=2, PhysicalSizeYUnit="pixel")
    assert read_tiff_spacing_um(tmp_path / "a.ome.tif") == {"X": 0.3}


def test_save_tiff_spacing_reads_back(tmp_path):
    spacing = {"Z": 0.125, "Y": 0.08, "X": 0.08}
    save_tiff(tmp_path / "v.ome.tif", np.ones((2, 4, 6, 6)), axes="TZYX", spacing_um=spacing)
    assert read_tiff_spacing_um(tmp_path / "v.ome.tif") == spacing


@pytest.mark.parametrize(("unit", "scale"), [("micron", 1.0), ("\\u00B5m", 1.0), ("nm", 1e-3)])
def test_imagej_unit_resolution_and_spacing(tmp_path, unit, scale):
    size = 0.454 if scale == 1.0 else 454.0
    tifffile.imwrite(
        tmp_path / "ij.tif",
        STACK,
        imagej=True,
        resolution=(1 / size, 1 / size),  # pixels per unit
        metadata={"axes": "ZYX", "unit": unit, "spacing": 2 * size},
    )
    spacing = read_tiff_spacing_um(tmp_path / "ij.tif")
    assert spacing == {"Z": pytest.approx(0.908), "Y": 0.454, "X": 0.454}


def test_imagej_pixel_unit_says_nothing(tmp_path):
    tifffile.imwrite(
        tmp_path / "ij.tif", STACK, imagej=True, resolution=(2.0, 2.0), metadata={"axes": "ZYX"}
    )
    assert read_tiff_spacing_um(tmp_path / "ij.tif") == {}


@pytest.mark.parametrize(
    ("resolution", "unit", "expected"),
    [
        ((1e4 / 0.454, 1e4 / 0.5), "CENTIMETER", {"Y": 0.5, "X": 0.454}),
        ((50_800, 50_800), "INCH", {"Y": 0.5, "X": 0.5}),
    ],
)
def test_plain_resolution_tags(tmp_path, resolution, unit, expected):
    tifffile.imwrite(
        tmp_path / "r.tif",
        STACK,
        photometric="minisblack",
        resolution=resolution,
        resolutionunit=unit,
    )
    assert read_tiff_spacing_um(tmp_path / "r.tif") == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # tifffile's default: resolution 1 with ResolutionUnit NONE
        {"resolution": (300.0, 300.0), "resolutionunit": "NONE"},
        {"resolution": (72.0, 72.0), "resolutionunit": "INCH"},  # writers' default dpi
    ],
)
def test_meaningless_resolution_gives_nothing(tmp_path, kwargs):
    tifffile.imwrite(tmp_path / "p.tif", STACK, photometric="minisblack", **kwargs)
    assert read_tiff_spacing_um(tmp_path / "p.tif") == {}


def test_unreadable_and_missing_files(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match=r"path: .*bad.tif is not a readable TIFF file"):
        read_tiff_spacing_um(tmp_path / "bad.tif")
    with pytest.raises(FileNotFoundError, match="TIFF file not found"):
        read_tiff_spacing_um(tmp_path / "missing.tif")
