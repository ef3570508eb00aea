"""TIFF input and output with physical units: OME-TIFF writer, pixel-size reader.

:func:`save_tiff` writes float32 OME-TIFF whose OME-XML carries the axes, the voxel size in µm,
channel names and the frame interval, which Fiji (Bio-Formats) and OME-aware napari readers show
in physical units. :func:`read_tiff_spacing_um` reads the pixel size back from OME, ImageJ or
plain-TIFF metadata, whichever the file carries.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

__all__ = ["read_tiff_spacing_um", "save_tiff"]

# OME (like ImageJ) stores planes in this order; samples ('S', RGB) are left out because
# everything written here is float32 and one value per pixel.
_AXES_ORDER = "TZCYX"
_SPATIAL = "ZYX"
_MICRO = "\u00b5"  # MICRO SIGN, the spelling of OME's "µm"

# Length units -> power of ten that converts them to µm (a power, so 454 nm / 10**3 is exact).
_LENGTH_EXPONENTS = {
    "pm": -6,
    "\u00c5": -4,  # ångström, as OME writes it
    "angstrom": -4,
    "nm": -3,
    "nanometer": -3,
    "nanometre": -3,
    "\u00b5m": 0,  # micro sign
    "\u03bcm": 0,  # Greek small letter mu
    "um": 0,
    "micron": 0,
    "microns": 0,
    "micrometer": 0,
    "micrometre": 0,
    "mm": 3,
    "millimeter": 3,
    "millimetre": 3,
    "cm": 4,
    "centimeter": 4,
    "centimetre": 4,
    "m": 6,
    "meter": 6,
    "metre": 6,
}
# OME UnitsTime symbols accepted for the frame interval ("us" is spelled "µs" in OME).
_TIME_UNITS = {"s": "s", "ms": "ms", "us": "µs", "µs": "µs", "ns": "ns", "min": "min", "h": "h"}
# TIFF ResolutionUnit values: 2 = INCH, 3 = CENTIMETER (1 = NONE says nothing physical).
_UM_PER_RESOLUTION_UNIT = {2: 25_400.0, 3: 10_000.0}
# Resolutions that writers put in by default (screen dpi), which describe no sample.
_DEFAULT_DPI = (72.0, 96.0)
# A rational pixels-per-unit tag read back as a float carries ~1e-10 of noise; 9 significant
# digits keep every real value and drop the noise (0.45399999997 -> 0.454).
_SIGNIFICANT_DIGITS = 9


def save_tiff(
    path: str | os.PathLike[str],
    array: np.ndarray,
    *,
    axes: str,
    spacing_um: Mapping[str, float] | None = None,
    channel_names: Sequence[str] | None = None,
    time_interval: float | None = None,
    time_unit: str | None = None,
) -> None:
    """Write ``array`` as a float32 OME-TIFF with its axes and physical sizes.

    Fiji (Bio-Formats) and OME-aware napari readers open the file with its axes and show
    lengths in µm. The X/Y pixel size is also written as plain TIFF resolution tags (pixels per
    centimetre) for readers that ignore OME-XML; :func:`read_tiff_spacing_um` reads either.

    Parameters
    ----------
    path : str or path-like
        Output file, ending in ``.ome.tif`` / ``.ome.tiff`` (recommended, so Fiji and napari
        recognise it as OME-TIFF) or plain ``.tif`` / ``.tiff``.
    array : ndarray
        Real-valued data with one axis per letter of ``axes``; stored as float32.
    axes : str
        Axis names, one per dimension, from ``"TZCYX"`` (time, depth, channel, row, column),
        e.g. ``"YX"``, ``"TYX"``, ``"TZYX"``, or ``"TYXC"`` for a motion field (frames, H, W, 2).
        Must contain ``Y`` and ``X``. Axes are transposed into the ``TZCYX`` order before
        writing, so ``"TYXC"`` is stored as ``"TCYX"``.
    spacing_um : dict of str to float, optional
        Physical size per spatial axis in µm, e.g. ``{"Y": 0.454, "X": 0.454}`` or
        ``{"Z": 0.125, "Y": 0.08, "X": 0.08}``; stored as OME ``PhysicalSizeZ/Y/X`` in µm. Keys
        must be spatial letters (``Z``, ``Y``, ``X``) present in ``axes``.
    channel_names : sequence of str, optional
        One OME channel name per entry of the ``C`` axis (e.g. ``("dy", "dx")``); requires
        ``C`` in ``axes``.
    time_interval : float, optional
        Time between consecutive frames (OME ``TimeIncrement``), in ``time_unit``; requires
        ``T`` in ``axes``.
    time_unit : str, optional
        Unit of ``time_interval``: ``"s"`` (default), ``"ms"``, ``"µs"`` (or ``"us"``),
        ``"ns"``, ``"min"`` or ``"h"``. Only valid with ``time_interval``.

    Raises
    ------
    ValueError
        If the path extension or ``axes`` is invalid, ``array.ndim != len(axes)``, or
        ``spacing_um``, ``channel_names``, ``time_interval`` or ``time_unit`` do not fit the
        axes (non-positive or non-finite sizes, letters not in ``axes``, wrong name count).
    TypeError
        If ``array`` is not real-valued numeric, or an argument has the wrong type.

    Examples
    --------
    >>> save_tiff("phase.ome.tif", phase, axes="TYX", spacing_um={"Y": 0.454, "X": 0.454})
    ... # doctest: +SKIP
    """
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        raise ValueError(f"path: expected a file ending in .ome.tif, .tif or .tiff, got {path}")
    arr = np.asarray(array)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"array: expected a real-valued numeric array, got dtype {arr.dtype}")
    if not isinstance(axes, str):
        raise TypeError(f"axes: expected a string such as 'TYX', got {type(axes).__name__}")
    axes = axes.upper()
    letters = set(axes)
    if len(letters) != len(axes) or not letters <= set(_AXES_ORDER) or not {"Y", "X"} <= letters:
        raise ValueError(
            f"axes: expected distinct letters from {_AXES_ORDER!r} including 'Y' and 'X' "
            f"(e.g. 'TYX'), got {axes!r}"
        )
    if arr.ndim != len(axes):
        raise ValueError(
            f"array: expected {len(axes)} dimensions to match axes {axes!r}, got shape {arr.shape}"
        )
    if arr.size == 0:
        raise ValueError(f"array: expected a non-empty array, got shape {arr.shape}")
    ordered = "".join(a for a in _AXES_ORDER if a in axes)
    arr = np.ascontiguousarray(np.transpose(arr, [axes.index(a) for a in ordered]), np.float32)
    sizes = dict(zip(ordered, arr.shape, strict=True))

    metadata: dict[str, Any] = {"axes": ordered}
    spacing = _check_spacing(spacing_um, ordered)
    for letter, size in spacing.items():
        metadata[f"PhysicalSize{letter}"] = size
        metadata[f"PhysicalSize{letter}Unit"] = f"{_MICRO}m"
    if channel_names is not None:
        metadata["Channel"] = {"Name": _check_channel_names(channel_names, sizes)}
    if time_interval is not None or time_unit is not None:
        interval, unit = _check_time(time_interval, time_unit, ordered)
        metadata["TimeIncrement"] = interval
        metadata["TimeIncrementUnit"] = unit

    resolution: dict[str, Any] = {}
    if "X" in spacing and "Y" in spacing:
        # Pixels per cm: the one physical unit plain TIFF readers understand besides inches.
        resolution = {
            "resolution": (1e4 / spacing["X"], 1e4 / spacing["Y"]),
            "resolutionunit": "CENTIMETER",
        }
    # minisblack: a C axis of length 3 or 4 is channels, never RGB(A) colour.
    tifffile.imwrite(path, arr, ome=True, photometric="minisblack", metadata=metadata, **resolution)


def read_tiff_spacing_um(path: str | os.PathLike[str]) -> dict[str, float]:
    """Physical pixel size per axis, in µm, from a TIFF file's metadata.

    Sources are tried in this order and the first that gives any size is used:

    1. OME-XML ``PhysicalSizeX/Y/Z`` with their units (pm, Å, nm, µm, mm, cm, m; OME's default
       unit µm when none is stated);
    2. ImageJ metadata: ``unit`` (``micron``, ``um``, ``µm``, ``nm``, ...; ``yunit`` / ``zunit``
       when ImageJ stores them apart), X/Y from the ``XResolution`` / ``YResolution`` tags as
       pixels per unit, Z from ``spacing``;
    3. plain TIFF ``XResolution`` / ``YResolution`` with ``ResolutionUnit`` CENTIMETER or INCH.

    Metadata that says nothing about the sample is ignored: ``ResolutionUnit`` NONE, ImageJ's
    ``pixel`` unit, and the 72 / 96 dpi that image writers put in by default.

    Parameters
    ----------
    path : str or path-like
        A TIFF file (``.tif``, ``.tiff``, ``.ome.tif``, ...).

    Returns
    -------
    dict of str to float
        Size in µm per axis letter present among ``"Z"``, ``"Y"``, ``"X"``, e.g.
        ``{"Y": 0.454, "X": 0.454}``; ``{}`` when the file carries no trustworthy size.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is not a readable TIFF file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: TIFF file not found: {path}")
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            tags = {
                name: page.tags[name].value
                for name in ("XResolution", "YResolution", "ResolutionUnit")
                if name in page.tags
            }
            ome = tif.ome_metadata if tif.is_ome else None
            imagej = tif.imagej_metadata if tif.is_imagej else None
    except (tifffile.TiffFileError, ValueError, OSError) as err:
        raise ValueError(f"path: {path} is not a readable TIFF file ({err})") from None

    if ome and (spacing := _spacing_from_ome(ome)):
        return spacing
    if imagej is not None:
        # An ImageJ file's resolution tags are in its 'unit' (ResolutionUnit is NONE), so they
        # are never read as plain TIFF tags below.
        return _spacing_from_imagej(imagej, tags)
    return _spacing_from_tags(tags)


# --- validation ----------------------------------------------------------------------------------


def _positive_finite(name: str, value: Any, unit: str) -> float:
    if isinstance(value, bool | str | bytes) or not isinstance(value, int | float | np.number):
        raise TypeError(
            f"{name}: expected a number in {unit}, got {type(value).__name__} {value!r}"
        )
    out = float(value)
    if not (math.isfinite(out) and out > 0):
        raise ValueError(f"{name}: expected a positive, finite size in {unit}, got {out}")
    return out


def _check_spacing(spacing_um: Mapping[str, float] | None, axes: str) -> dict[str, float]:
    if spacing_um is None:
        return {}
    if not isinstance(spacing_um, Mapping):
        raise TypeError(
            f"spacing_um: expected a dict of axis letter -> size in µm such as "
            f"{{'Y': 0.454, 'X': 0.454}}, got {type(spacing_um).__name__}"
        )
    spacing = {}
    for key, value in spacing_um.items():
        letter = key.upper() if isinstance(key, str) else key
        if letter not in tuple(_SPATIAL) or letter not in axes:
            present = [a for a in _SPATIAL if a in axes]
            raise ValueError(
                f"spacing_um: key {key!r} is not a spatial axis of axes {axes!r}; expected "
                f"letters among {present}"
            )
        spacing[letter] = _positive_finite(f"spacing_um[{key!r}]", value, "µm")
    return {a: spacing[a] for a in _SPATIAL if a in spacing}


def _check_channel_names(names: Sequence[str], sizes: Mapping[str, int]) -> list[str]:
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise TypeError(
            f"channel_names: expected a sequence of strings, one per channel, got "
            f"{type(names).__name__} {names!r}"
        )
    if "C" not in sizes:
        raise ValueError("channel_names: given, but axes has no 'C' (channel) axis")
    if len(names) != sizes["C"]:
        raise ValueError(
            f"channel_names: expected one name per channel (C = {sizes['C']}), got "
            f"{len(names)}: {list(names)}"
        )
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"channel_names: expected strings, got {list(names)!r}")
    return list(names)


def _check_time(interval: float | None, unit: str | None, axes: str) -> tuple[float, str]:
    if interval is None:
        raise ValueError(f"time_unit: given ({unit!r}) without time_interval")
    if "T" not in axes:
        raise ValueError(f"time_interval: given, but axes {axes!r} has no 'T' (time) axis")
    unit = "s" if unit is None else unit
    if unit not in _TIME_UNITS:
        raise ValueError(f"time_unit: expected one of {sorted(set(_TIME_UNITS))}, got {unit!r}")
    return _positive_finite("time_interval", interval, unit), _TIME_UNITS[unit]


# --- reading -------------------------------------------------------------------------------------


def _length_um(value: float, unit: str | None) -> float | None:
    """``value`` in ``unit`` converted to µm, or None when the unit is not a length."""
    # ImageJ may store µ as the escape text "\\u00B5".
    text = (unit or "").strip().replace("\\u00B5", _MICRO).replace("\\u00b5", _MICRO)
    exponent = _LENGTH_EXPONENTS.get(text)
    if exponent is None and len(text) > 2:  # words only: lower-casing "Mm" would make it mm
        exponent = _LENGTH_EXPONENTS.get(text.lower())
    if exponent is None or not (math.isfinite(value) and value > 0):
        return None
    return value * 10**exponent if exponent >= 0 else value / 10**-exponent


def _spacing_from_ome(xml: str) -> dict[str, float]:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return {}  # corrupt OME-XML: fall back to the other sources rather than fail
    # The first image is the one tifffile.imread returns; any namespace (OME schema versions).
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return {}
    spacing = {}
    for letter in _SPATIAL:
        raw = pixels.get(f"PhysicalSize{letter}")
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            continue
        # The OME schema's default unit for PhysicalSize is µm.
        size = _length_um(value, pixels.get(f"PhysicalSize{letter}Unit", f"{_MICRO}m"))
        if size is not None:
            spacing[letter] = size
    return spacing


def _spacing_from_imagej(meta: Mapping[str, Any], tags: Mapping[str, Any]) -> dict[str, float]:
    unit = meta.get("unit")
    units = {"X": unit, "Y": meta.get("yunit", unit), "Z": meta.get("zunit", unit)}
    spacing = {}
    for letter, tag in (("X", "XResolution"), ("Y", "YResolution")):
        per_unit = _rational(tags.get(tag))
        if per_unit and isinstance(units[letter], str):
            size = _length_um(1.0 / per_unit, units[letter])
            if size is not None:
                spacing[letter] = _clean(size)
    if "spacing" in meta and isinstance(units["Z"], str):
        try:
            size = _length_um(float(meta["spacing"]), units["Z"])
        except (TypeError, ValueError):
            size = None
        if size is not None:
            spacing["Z"] = size
    return {a: spacing[a] for a in _SPATIAL if a in spacing}


def _spacing_from_tags(tags: Mapping[str, Any]) -> dict[str, float]:
    # TIFF's default ResolutionUnit, when the tag is absent, is INCH.
    um_per_unit = _UM_PER_RESOLUTION_UNIT.get(int(tags.get("ResolutionUnit", 2)))
    if um_per_unit is None:
        return {}
    spacing = {}
    for letter, tag in (("Y", "YResolution"), ("X", "XResolution")):
        per_unit = _rational(tags.get(tag))
        if not per_unit or (um_per_unit == 25_400.0 and per_unit in _DEFAULT_DPI):
            continue
        spacing[letter] = _clean(um_per_unit / per_unit)
    return spacing


def _rational(value: Any) -> float | None:
    """A TIFF RATIONAL tag value ``(numerator, denominator)`` as a positive float, else None."""
    try:
        number = float(Fraction(int(value[0]), int(value[1])))
    except (TypeError, ValueError, IndexError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _clean(value: float) -> float:
    return float(f"{value:.{_SIGNIFICANT_DIGITS}g}")
