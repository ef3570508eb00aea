"""The 3D SIM data layout: reading, validating and writing raw acquisitions.

An ``.npz`` holds:

==================  ============================  ============================================
key                 shape                         meaning
==================  ============================  ============================================
``raw``             (orientations, phases, Z,     camera values, background included; plane z
                    Y, X)                         focused at height z * z_step
``pixel_size``      scalar                        raw camera pixel at the sample, µm
``z_step``          scalar                        plane spacing, µm
``wavelength_em``   scalar                        emission wavelength, µm
``wavelength_ex``   scalar                        excitation wavelength, µm
``na``              scalar                        objective numerical aperture
``n_immersion``     scalar                        refractive index of the immersion medium
``times``           (orientations, phases) or     optional: normalized times in [-1, 1], one
                    (orientations, phases, Z)     per raw stack or one per raw plane; default:
                                                  stacks evenly spaced in acquisition order,
                                                  orientation-major then phase
``background``      scalar                        optional: camera background, counts
``k0``              (orientations, 2)             optional: first-order lateral frequency
                                                  (ky, kx), cycles/µm (else estimated)
``phases``          (orientations, phases)        optional: first-order phase, radians, at
                                                  raw voxel (0, 0, 0) (else estimated)
``modulation``      scalar, (orientations,) or    optional: modulation depth, 1 for three
                    (orientations, 2)             equal beams at full contrast (one, one per
                                                  orientation, or per orientation and order)
==================  ============================  ============================================

A TIFF stack holds ``raw`` alone, its pages in cudasirecon's order by default (phases fastest,
then z, then orientations: ``axis_order="OZP"``); the microscope's parameters then come from the
config, or the pixel size and z step from the file's metadata.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ...io.tiff import read_tiff_spacing_um
from ...validation import check_normalized_times, check_positive
from .bands import FULL_CONTRAST_AMPLITUDES, three_beam_amplitudes

# The microscope's scalar parameters: npz key -> (field, unit, option).
SCALARS = {
    "pixel_size": ("pixel_size_um", "µm", "--system.pixel-size-um"),
    "z_step": ("z_step_um", "µm", "--system.z-step-um"),
    "wavelength_em": ("wavelength_em_um", "µm", "--system.wavelength-em-um"),
    "wavelength_ex": ("wavelength_ex_um", "µm", "--system.wavelength-ex-um"),
    "na": ("na", "units of NA", "--system.na"),
    "n_immersion": ("n_immersion", "refractive index", "--system.n-immersion"),
}
OPTIONAL = ("times", "background", "k0", "phases", "modulation")
NPZ_KEYS = ("raw", *SCALARS, *OPTIONAL)
AXIS_ORDERS = ("OZP", "OPZ", "ZOP", "ZPO", "POZ", "PZO")
"""Orders of a TIFF's pages, slowest first: O orientations, P phases, Z planes."""


@dataclasses.dataclass(frozen=True)
class SIMData:
    """A validated 3D SIM acquisition (names as in the module docstring, lengths in µm)."""

    raw: np.ndarray
    """(orientations, phases, Z, Y, X) float32 camera values."""
    pixel_size_um: float
    z_step_um: float
    wavelength_em_um: float
    wavelength_ex_um: float
    na: float
    n_immersion: float
    times: np.ndarray
    """(orientations, phases) or (orientations, phases, Z) normalized times."""
    background: float = 0.0
    k0: np.ndarray | None = None
    """(orientations, 2) (ky, kx) cycles/µm, or None (estimated)."""
    phases: np.ndarray | None = None
    """(orientations, phases) radians, or None (estimated)."""
    modulation: np.ndarray | None = None
    """(orientations, 2) amplitudes amp_1, amp_2 of orders 1 and 2 relative to order 0 (from a
    modulation depth: depth * (2/3, 1/3)), or None (estimated)."""

    def __post_init__(self):
        raw = np.asarray(self.raw)
        if raw.ndim != 5:
            raise ValueError(
                f"raw: expected a 5D array (orientations, phases, Z, Y, X), got shape {raw.shape}"
            )
        if np.iscomplexobj(raw) or not np.issubdtype(raw.dtype, np.number):
            raise TypeError(f"raw: expected real camera values, got dtype {raw.dtype}")
        orientations, phases, nz, ny, nx = raw.shape
        if phases < 3:
            raise ValueError(
                f"raw: expected at least 3 phases per orientation (5 for three-beam SIM), got "
                f"{phases} (axis 1 of {raw.shape}); check the axis order"
            )
        if min(nz, ny, nx) < 1 or min(ny, nx) < 8:
            raise ValueError(f"raw: expected planes of at least 8 x 8 pixels, got {raw.shape}")
        bad = raw.size - np.count_nonzero(np.isfinite(raw))
        if bad:
            raise ValueError(f"raw: expected finite camera values, got {bad} NaN or inf")
        for name in ("pixel_size_um", "z_step_um", "wavelength_em_um", "wavelength_ex_um"):
            object.__setattr__(self, name, check_positive(name, getattr(self, name), "µm"))
        na = check_positive("na", self.na, "units of NA")
        n = check_positive("n_immersion", self.n_immersion, "refractive index")
        if na >= n:
            raise ValueError(f"na: {na} must be below the immersion index n_immersion={n}")
        object.__setattr__(self, "na", na)
        object.__setattr__(self, "n_immersion", n)
        times = np.asarray(self.times, np.float32)
        if times.shape not in ((orientations, phases), (orientations, phases, nz)):
            raise ValueError(
                f"times: expected shape (orientations, phases) = {(orientations, phases)} (one "
                f"per stack) or {(orientations, phases, nz)} (one per plane), got {times.shape}"
            )
        check_normalized_times("times", times.ravel())
        object.__setattr__(self, "times", times)
        background = float(self.background)
        if not np.isfinite(background):
            raise ValueError(f"background: expected finite counts, got {self.background!r}")
        object.__setattr__(self, "background", background)
        if self.k0 is not None:
            k0 = np.asarray(self.k0, np.float64)
            if k0.shape != (orientations, 2) or not np.all(np.isfinite(k0)):
                raise ValueError(
                    f"k0: expected finite (orientations, 2) = {(orientations, 2)} frequencies "
                    f"(ky, kx) in cycles/µm, got shape {k0.shape}"
                )
            cutoff = 2 * na / self.wavelength_em_um
            too_far = np.hypot(k0[:, 0], k0[:, 1]) >= cutoff
            if np.any(too_far):
                raise ValueError(
                    f"k0: |k0| of orientations {np.flatnonzero(too_far).tolist()} lies beyond the "
                    f"detection passband 2 NA / wavelength_em = {cutoff:.3f} cycles/µm: the "
                    "pattern could not be seen (check the unit: cycles/µm, not pixels)"
                )
            object.__setattr__(self, "k0", k0)
        if self.phases is not None:
            values = np.asarray(self.phases, np.float64)
            if values.shape != (orientations, phases) or not np.all(np.isfinite(values)):
                raise ValueError(
                    f"phases: expected finite (orientations, phases) = {(orientations, phases)} "
                    f"radians, got shape {values.shape}"
                )
            object.__setattr__(self, "phases", values)
        if self.modulation is not None:
            # A depth (1: three equal beams at full contrast) to the orders' amplitudes.
            values = three_beam_amplitudes(self.modulation, orientations)
            object.__setattr__(self, "modulation", values)
        object.__setattr__(self, "raw", raw.astype(np.float32, copy=False))

    @property
    def orientations(self) -> int:
        return int(self.raw.shape[0])

    @property
    def num_phases(self) -> int:
        return int(self.raw.shape[1])

    @property
    def per_plane_times(self) -> bool:
        """Whether each raw plane has its own time."""
        return self.times.ndim == 3


def default_times(orientations: int, phases: int) -> np.ndarray:
    """Stacks evenly spaced over [-1, 1] in acquisition order, orientation-major then phase."""
    count = orientations * phases
    times = np.linspace(-1.0, 1.0, count) if count > 1 else np.zeros(1)
    return times.reshape(orientations, phases).astype(np.float32)


def save_sim(path: str | os.PathLike[str], data: SIMData) -> None:
    """Write ``data`` as the ``.npz`` layout :func:`load_sim` reads."""
    arrays: dict[str, Any] = {"raw": data.raw, "times": data.times}
    for key, (field, _, _) in SCALARS.items():
        arrays[key] = np.float64(getattr(data, field))
    arrays["background"] = np.float64(data.background)
    for key in ("k0", "phases"):
        if getattr(data, key) is not None:
            arrays[key] = getattr(data, key)
    if data.modulation is not None:  # written as the depth per orientation and order
        arrays["modulation"] = data.modulation / np.asarray(FULL_CONTRAST_AMPLITUDES)
    np.savez(path, **arrays)


def load_sim(
    path: str | os.PathLike[str],
    *,
    axis_order: str = "OZP",
    orientations: int | None = None,
    phases: int | None = None,
    **given: Any,
) -> SIMData:
    """Read a 3D SIM acquisition (``.npz`` or TIFF stack) and validate it.

    Parameters
    ----------
    path : path
        The ``.npz`` layout of the module docstring, or a TIFF stack of raw planes.
    axis_order : str
        TIFF only: the order of its pages, slowest first (one of :data:`AXIS_ORDERS`); the
        default ``"OZP"`` is cudasirecon's (phases fastest, then z, then orientations).
    orientations, phases : int, optional
        TIFF only: how many of each the pages hold (required unless the file's axes say).
    **given
        Values of :class:`SIMData` fields (``pixel_size_um``, ``na``, ``times``, ``k0``...)
        that override the file's; ``None`` values are ignored.

    Raises
    ------
    ValueError, TypeError, FileNotFoundError
        Naming the file and the field (the npz key as written in the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data: file not found: {path}")
    given = {k: v for k, v in given.items() if v is not None}
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            stored = _read_npz(path)
        elif suffix in (".tif", ".tiff"):
            stored = _read_tiff(path, axis_order, orientations, phases)
        else:
            raise ValueError(f"expected a .npz or .tif/.tiff file, got {path.suffix!r}")
        fields: dict[str, Any] = {"raw": stored["raw"]}
        for key, (field, unit, option) in SCALARS.items():
            if field in given:
                fields[field] = given.pop(field)
            elif key in stored:
                fields[field] = _scalar(key, stored[key], unit)
            else:
                raise ValueError(f"{key}: missing; give it in the file or with {option}")
        raw = np.asarray(fields["raw"])
        fields["times"] = given.pop("times", stored.get("times"))
        if fields["times"] is None:
            fields["times"] = default_times(raw.shape[0], raw.shape[1])
        for key in ("background", "k0", "phases", "modulation"):
            value = given.pop(key, stored.get(key))
            if value is not None:
                fields[key] = value
        if given:
            raise TypeError(f"unknown fields {sorted(given)}; SIMData has no such field")
        return SIMData(**fields)
    except (ValueError, TypeError) as err:
        raise type(err)(f"{path.name}: {err}") from None


def _scalar(key: str, value: Any, unit: str) -> float:
    array = np.asarray(value)
    if array.shape != () or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{key}: expected a number in {unit}, got {value!r}")
    return float(array)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise ValueError("a single .npy array, not an .npz archive")
            keys = list(archive.files)
            if "raw" not in keys:
                raise ValueError(f"raw: missing; found keys {keys} (expected {list(NPZ_KEYS)})")
            unknown = sorted(set(keys) - set(NPZ_KEYS))
            if unknown:  # e.g. a simulation's ground truth beside the data
                warnings.warn(
                    f"{path.name}: ignoring keys {unknown} (the 3D SIM layout's keys are "
                    f"{list(NPZ_KEYS)})",
                    UserWarning,
                    stacklevel=4,
                )
            return {k: archive[k] for k in keys if k in NPZ_KEYS}
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise ValueError(f"not a readable .npz archive ({err})") from None


def _read_tiff(path: Path, axis_order: str, orientations: int | None, phases: int | None):
    if axis_order not in AXIS_ORDERS:
        raise ValueError(f"axis_order: expected one of {list(AXIS_ORDERS)}, got {axis_order!r}")
    try:
        pages = tifffile.imread(path)
    except (tifffile.TiffFileError, ValueError, OSError) as err:
        raise ValueError(f"not a readable TIFF ({err})") from None
    if pages.ndim < 3:
        raise ValueError(f"raw: expected a stack of planes, got shape {pages.shape}")
    pages = pages.reshape(-1, *pages.shape[-2:])
    if orientations is None or phases is None:
        raise ValueError(
            "orientations and phases: a TIFF stack needs both (--system.orientations, "
            "--system.phases) to split its pages"
        )
    count = pages.shape[0]
    if count % (orientations * phases):
        raise ValueError(
            f"raw: {count} pages are not a whole number of {orientations} orientations x "
            f"{phases} phases x Z planes"
        )
    sizes = {"O": orientations, "P": phases, "Z": count // (orientations * phases)}
    stack = pages.reshape(*(sizes[a] for a in axis_order), *pages.shape[-2:])
    order = [axis_order.index(a) for a in "OPZ"]
    stored: dict[str, Any] = {"raw": np.transpose(stack, (*order, 3, 4))}
    spacing = read_tiff_spacing_um(path)
    if "X" in spacing and spacing.get("Y", spacing["X"]) == spacing["X"]:
        stored["pixel_size"] = spacing["X"]
    if "Z" in spacing:
        stored["z_step"] = spacing["Z"]
    return stored
