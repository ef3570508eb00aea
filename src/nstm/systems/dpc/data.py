"""DPC measurements: the :class:`DPCData` container and its ``.npz`` / TIFF readers and writer.

Conventions (shared by the whole package):

* image stacks are ``(frames, H, W)`` with axes ``(y, x)``;
* DPC source maps live on the *unshifted* FFT grid (DC at ``[0, 0]``, as returned by
  :func:`numpy.fft.fftfreq`), one source per frame, in the LED convention of the original
  implementation unless the reader is told otherwise: a point at ``+u`` is an LED lighting the
  sample with ``exp(-i 2 pi u . r)`` (see :mod:`nstm.systems.dpc.optics`);
* times are normalized to ``[-1, 1]``;
* lengths are in micrometres (µm).

The ``.npz`` layout is the one used by the original NSTM implementation (``dpc_data.npz``): keys
``img`` and ``s``, plus the optional ``times``, ``wavelength``, ``pixel_size`` and ``na`` that
:func:`save_dpc` also writes.
"""

from __future__ import annotations

import math
import os
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

__all__ = ["DPCData", "load_dpc", "save_dpc"]

# Keys of the .npz layout; everything else in a file is ignored with a warning.
_NPZ_KEYS = ("img", "s", "times", "wavelength", "pixel_size", "na")
_TIFF_SUFFIXES = (".tif", ".tiff")
_SUPPORTED_SUFFIXES = (".npz", *_TIFF_SUFFIXES)
_SOURCE_SUFFIXES = (".npy", ".npz", *_TIFF_SUFFIXES)

# Raw intensities have a per-frame mean near the background level (> 0); zero-centred DPC frames
# (I / I_background - 1) have a mean near 0, so 0.5 separates the two with a wide margin.
_RAW_MEAN_THRESHOLD = 0.5
# Slack for times that were normalized in float32 (e.g. 1.0000001).
_TIME_TOL = 1e-5
# Centred sources put their mass ~4x closer to the array centre than to DC (measured on half-disc
# sources from 0.02 to 0.9 of Nyquist); unshifted ones the reverse. 0.8 leaves margin both ways.
_CENTRED_RATIO = 0.8

# Physical parameter -> (npz key, CLI option) used in "missing value" messages.
_PARAMS = {
    "wavelength_um": ("wavelength", "--system.wavelength-um"),
    "pixel_size_um": ("pixel_size", "--system.pixel-size-um"),
    "na": ("na", "--system.na"),
}
_FIELDS = ("images", "sources", "times", "wavelength_um", "pixel_size_um", "na")
# Relative difference below which two pixel sizes are the same (rational TIFF tags, float32).
_PIXEL_SIZE_RTOL = 1e-4

# How validation messages name each field: the field itself (Python API) unless a reader such as
# load_dpc says where the value came from (an npz key, a keyword, a TIFF's metadata). A context
# variable rather than a constructor argument keeps DPCData's signature the plain data.
_LABELS: ContextVar[Mapping[str, str] | None] = ContextVar("nstm_dpc_labels", default=None)


@contextmanager
def _labelled(labels: Mapping[str, str]) -> Iterator[None]:
    token = _LABELS.set(labels)
    try:
        yield
    finally:
        _LABELS.reset(token)


def _labels() -> dict[str, str]:
    return {name: name for name in _FIELDS} | dict(_LABELS.get() or {})


@dataclass(frozen=True, eq=False)
class DPCData:
    """Validated multi-shot DPC measurements and the optical parameters that produced them.

    Frame ``k`` was recorded at normalized time ``times[k]`` under illumination ``sources[k]``.
    All fields are checked (and arrays converted to C-contiguous float32) on construction.

    Parameters
    ----------
    images : (frames, H, W) ndarray
        Zero-centred DPC frames, ``I / I_background - 1`` (dimensionless), float32. At least two
        frames.
    sources : (frames, H, W) ndarray
        Non-negative illumination source maps on the *unshifted* FFT grid (DC at ``[0, 0]``);
        source ``k`` lights frame ``k``. The grid spacing is ``1 / (N * pixel_size_um)`` µm⁻¹
        per axis, so a source inside the condenser NA satisfies ``|f| <= na / wavelength_um``.
        Stored as given: which way a point's plane wave travels is the reader's
        ``source_convention`` (:class:`nstm.systems.dpc.DPCConfig`; LED by default).
    times : (frames,) ndarray
        Acquisition time of each frame, normalized to ``[-1, 1]``.
    wavelength_um : float
        Illumination wavelength in µm (plausible range 0.2–2 µm).
    pixel_size_um : float
        Sample-plane pixel size in µm (camera pixel / magnification).
    na : float
        Objective numerical aperture, ``0 < na < 1.6``.

    Raises
    ------
    ValueError
        If a field has the wrong shape, non-finite values, is out of range, the images look like
        raw intensities, or the sources look centred (``fftshift``-ed).
    TypeError
        If an array is not real-valued numeric or a scalar is not a real number.
    """

    images: np.ndarray
    sources: np.ndarray
    times: np.ndarray
    wavelength_um: float
    pixel_size_um: float
    na: float

    def __post_init__(self) -> None:
        n = _labels()  # how messages name each field
        images = _real_float32(n["images"], self.images)
        if images.ndim != 3:
            hint = (
                "; a single 2D image cannot be reconstructed, DPC needs >= 2 frames"
                if images.ndim == 2
                else ""
            )
            raise ValueError(
                f"{n['images']}: expected a 3D array (frames, H, W), got shape {images.shape}{hint}"
            )
        frames, h, w = images.shape
        if frames < 2:
            raise ValueError(
                f"{n['images']}: expected at least 2 frames (frames, H, W), got shape "
                f"{images.shape}"
            )
        if h < 2 or w < 2:
            raise ValueError(
                f"{n['images']}: expected H >= 2 and W >= 2 pixels, got shape {images.shape}"
            )
        _check_finite(n["images"], images)
        _check_zero_centred(n["images"], images)

        sources = _real_float32(n["sources"], self.sources)
        if sources.shape != images.shape:
            hint = ""
            if sources.ndim == 3 and sources.shape[1:] == (h, w) and frames % sources.shape[0] == 0:
                hint = (
                    "; if the patterns repeat cyclically, pass "
                    f"numpy.tile(s, ({frames // sources.shape[0]}, 1, 1))"
                )
            raise ValueError(
                f"{n['sources']}: expected shape (frames, H, W) = {images.shape} to match "
                f"{n['images']}, got {sources.shape}{hint}"
            )
        _check_finite(n["sources"], sources)
        if (neg := sources < 0).any():
            raise ValueError(
                f"{n['sources']}: expected non-negative source intensities, got min "
                f"{sources.min():.3g} ({int(neg.sum())} negative pixels)"
            )
        empty = np.flatnonzero(~sources.any(axis=(1, 2)))
        if empty.size:
            raise ValueError(
                f"{n['sources']}: every frame needs a non-zero illumination pattern, but "
                f"source(s) {empty.tolist()} are all zero"
            )
        _check_source_layout(n["sources"], sources)

        times = _real_float32(n["times"], self.times)
        if times.shape != (frames,):
            raise ValueError(
                f"{n['times']}: expected shape (frames,) = ({frames},) to match {n['images']}, "
                f"got {times.shape}"
            )
        _check_finite(n["times"], times)
        t_min, t_max = float(times.min()), float(times.max())
        if t_min < -1 - _TIME_TOL or t_max > 1 + _TIME_TOL:
            raise ValueError(
                f"{n['times']}: expected normalized times in [-1, 1], got min {t_min:.6g}, "
                f"max {t_max:.6g}; normalize with 2 * (t - t.min()) / (t.max() - t.min()) - 1"
            )
        times = np.clip(times, -1.0, 1.0)  # absorb float rounding within _TIME_TOL

        wavelength = _real_scalar(n["wavelength_um"], self.wavelength_um)
        if not 0.1 <= wavelength <= 10:
            raise ValueError(
                f"{n['wavelength_um']}: expected a wavelength in µm (plausible 0.2-2 µm), got "
                f"{wavelength:g}; if it is in nm, divide by 1000 (e.g. 525 nm -> 0.525)"
            )
        if not 0.2 <= wavelength <= 2:
            warnings.warn(
                f"{n['wavelength_um']}: {wavelength:g} µm is outside the usual 0.2-2 µm range of "
                "optical microscopy; check the unit",
                UserWarning,
                stacklevel=3,
            )
        pixel_size = _real_scalar(n["pixel_size_um"], self.pixel_size_um)
        if pixel_size <= 0:
            raise ValueError(
                f"{n['pixel_size_um']}: expected a positive size in µm, got {pixel_size:g}"
            )
        if pixel_size > 50:
            warnings.warn(
                f"{n['pixel_size_um']}: {pixel_size:g} µm is unusually large for a sample-plane "
                "pixel; is it in nm, or the camera pixel not divided by the magnification?",
                UserWarning,
                stacklevel=3,
            )
        na = _real_scalar(n["na"], self.na)
        if not 0 < na < 1.6:
            raise ValueError(f"{n['na']}: expected a numerical aperture in (0, 1.6), got {na:g}")

        object.__setattr__(self, "images", images)
        object.__setattr__(self, "sources", sources)
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "wavelength_um", wavelength)
        object.__setattr__(self, "pixel_size_um", pixel_size)
        object.__setattr__(self, "na", na)

    @property
    def num_frames(self) -> int:
        """Number of frames (= number of source patterns)."""
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """Frame shape ``(H, W)`` in pixels."""
        return (int(self.images.shape[1]), int(self.images.shape[2]))

    def __repr__(self) -> str:
        return (
            f"DPCData(frames={self.num_frames}, shape={self.shape}, "
            f"wavelength_um={self.wavelength_um:g}, pixel_size_um={self.pixel_size_um:g}, "
            f"na={self.na:g})"
        )


def load_dpc(
    path: str | os.PathLike[str],
    *,
    wavelength_um: float | None = None,
    pixel_size_um: float | None = None,
    na: float | None = None,
    times: np.ndarray | None = None,
    sources: np.ndarray | str | os.PathLike[str] | None = None,
    normalize: bool = False,
) -> DPCData:
    """Load DPC measurements from an ``.npz`` archive or a TIFF stack.

    Keyword arguments override values stored in the file (the command line / config wins).

    Parameters
    ----------
    path : str or path-like
        ``.npz`` with keys ``img`` (frames, H, W) and ``s`` (frames, H, W), and optionally
        ``times`` (frames,), ``wavelength`` (µm), ``pixel_size`` (µm) and ``na`` -- the original
        NSTM layout, also written by :func:`save_dpc`. Or a ``.tif``/``.tiff`` image stack
        (frames, H, W); then ``sources``, ``wavelength_um`` and ``na`` must be given here, and
        ``pixel_size_um`` unless the TIFF's metadata carries it (OME-XML, ImageJ or resolution
        tags; see :func:`nstm.io.read_tiff_spacing_um`).
    wavelength_um, pixel_size_um, na : float, optional
        Illumination wavelength (µm), sample-plane pixel size (µm) and objective NA. Required
        when not stored in the file; a given value wins over the file's.
    times : (frames,) array_like, optional
        Frame times normalized to ``[-1, 1]``. Default: the file's ``times``, else
        ``numpy.linspace(-1, 1, frames)`` (evenly spaced frames).
    sources : (frames, H, W) array_like or path, optional
        Source maps on the unshifted FFT grid, or a path to a ``.npy``, ``.npz`` (key ``s``, or
        its only array) or TIFF file holding them. Default: the file's ``s``.
    normalize : bool, default False
        Treat the images as raw intensities and map each frame to ``I / mean(I) - 1``. The frame
        mean stands in for the background intensity, which is accurate for sparse or weakly
        scattering samples; pre-normalize with a measured background otherwise.

    Returns
    -------
    DPCData
        Validated data; see :class:`DPCData` for the checks.

    Raises
    ------
    FileNotFoundError
        If ``path`` (or a ``sources`` path) does not exist.
    ValueError
        If the format is unsupported, a required value is missing, a TIFF's metadata gives
        different x and y pixel sizes and none is given, or validation fails (including raw
        intensities passed without ``normalize=True``). Messages start with the file name and
        name each value as the user gave it: the ``.npz`` key (``img``, ``s``, ``wavelength``,
        ...) for stored values, the keyword (``pixel_size_um``, ...) for given ones.

    Warns
    -----
    UserWarning
        If the ``.npz`` archive holds keys other than those above (they are ignored), or a
        given ``pixel_size_um`` differs from the one in a TIFF's metadata.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _SUPPORTED_SUFFIXES:
        raise ValueError(
            f"path: unsupported DPC data format {suffix or '(no extension)'!r} for {path}; "
            f"supported: .npz (keys img, s, [times, wavelength, pixel_size, na]) or "
            f".tif/.tiff (image stack (frames, H, W))"
        )
    _check_file(path, "path", "DPC data file")
    is_npz = suffix == ".npz"
    # How messages name each value: the npz key when read from the archive, the keyword when
    # given here; every message is prefixed with the file name below.
    labels = {"images": "img" if is_npz else "images"}

    if is_npz:
        stored = _read_npz(path)
    else:
        stored = {"img": _read_tiff_stack(path, "path")}
        tiff_pixel_size = _tiff_pixel_size(path, pixel_size_um)
        if tiff_pixel_size is not None:
            stored["pixel_size"] = tiff_pixel_size

    images = stored["img"]
    if normalize:
        try:
            images = _normalize_by_frame_mean(images, labels["images"])
        except (ValueError, TypeError) as err:
            raise type(err)(f"{path.name}: {err}") from None

    if sources is not None:
        if isinstance(sources, str | os.PathLike):
            src = _read_sources(sources)
            labels["sources"] = f"sources ({Path(sources).name})"
        else:
            src = sources
    elif "s" in stored:
        src, labels["sources"] = stored["s"], "s"
    elif is_npz:
        raise ValueError(
            f"sources: not in {path.name} (key 's') and not given; pass sources= "
            "(CLI: --system.sources path.npy) with shape (frames, H, W) on the unshifted FFT grid"
        )
    else:
        raise ValueError(
            f"sources: TIFF stacks carry no source maps; pass sources= (an array or a "
            f".npy/.npz/.tif path, CLI: --system.sources) with shape (frames, H, W) = "
            f"{np.shape(images)} on the unshifted FFT grid"
        )

    if times is None:
        times = stored.get("times")
    if times is None and np.ndim(images) >= 1:
        times = np.linspace(-1.0, 1.0, np.shape(images)[0])

    given = {"wavelength_um": wavelength_um, "pixel_size_um": pixel_size_um, "na": na}
    params: dict[str, float] = {}
    for name, value in given.items():
        key, option = _PARAMS[name]
        if value is None:
            value = stored.get(key)
            labels[name] = key if is_npz else f"{name} (from the TIFF metadata)"
        if value is None:
            if is_npz:
                where = f"not in {path.name} (key {key!r})"
            elif name == "pixel_size_um":
                where = (
                    f"{path.name} carries none in its metadata (OME PhysicalSizeX/Y, ImageJ unit "
                    "and resolution, or resolution tags in cm/inch)"
                )
            else:
                where = "not stored in TIFF"
            raise ValueError(
                f"{name}: {where} and not given; pass {option} or set it in the config"
            )
        params[name] = value

    try:
        with _labelled(labels):
            return DPCData(images=images, sources=src, times=times, **params)
    except (ValueError, TypeError) as err:  # name the file: the field alone may not say which
        raise type(err)(f"{path.name}: {err}") from None


def save_dpc(path: str | os.PathLike[str], data: DPCData, **extra_arrays: Any) -> None:
    """Write ``data`` in the ``.npz`` layout read by :func:`load_dpc`.

    Parameters
    ----------
    path : str or path-like
        Output file; must end in ``.npz``.
    data : DPCData
        Measurements to store as ``img``, ``s``, ``times``, ``wavelength`` (µm),
        ``pixel_size`` (µm) and ``na``.
    **extra_arrays : array_like
        Additional arrays to store alongside (e.g. ground-truth ``phase`` / ``absorption``).
        :func:`load_dpc` ignores them (with a warning); read them with :func:`numpy.load`.

    Raises
    ------
    ValueError
        If ``path`` does not end in ``.npz``, or an extra name collides with the layout's keys.
    TypeError
        If ``data`` is not a :class:`DPCData` or an extra array is not numeric.
    """
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise ValueError(f"path: expected a file ending in .npz, got {path}")
    if not isinstance(data, DPCData):
        raise TypeError(f"data: expected a DPCData, got {type(data).__name__}")
    clash = sorted(set(extra_arrays) & set(_NPZ_KEYS))
    if clash:
        raise ValueError(
            f"extra_arrays: names {clash} are reserved for the DPC layout {list(_NPZ_KEYS)}; "
            "rename them"
        )
    extras = {}
    for name, value in extra_arrays.items():
        arr = np.asarray(value)
        # allow_pickle=False on load, so object arrays would be unreadable.
        if arr.dtype == object:
            raise TypeError(f"{name}: expected a numeric array, got dtype object")
        extras[name] = arr
    np.savez(
        path,
        img=data.images,
        s=data.sources,
        times=data.times,
        wavelength=np.float64(data.wavelength_um),
        pixel_size=np.float64(data.pixel_size_um),
        na=np.float64(data.na),
        **extras,
    )


# --- readers -------------------------------------------------------------------------------------


def _check_file(path: Path, field: str, what: str) -> None:
    """Raise a clear error unless ``path`` is an existing regular file."""
    if path.is_dir():
        raise IsADirectoryError(f"{field}: {path} is a folder, expected a {what}")
    if not path.is_file():
        raise FileNotFoundError(f"{field}: {what} not found: {path}")


def _load_npz(path: Path, field: str) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive, with one clear error for anything that is not one."""
    with open(path, "rb") as f:
        head = f.read(6)
    if not head:
        problem = "the file is empty"
    elif head.startswith(b"\x93NUMPY"):
        problem = "it is a single .npy array (renamed?), not an .npz archive of named arrays"
    elif not head.startswith(b"PK"):
        problem = "it is not a zip archive of .npy arrays (the .npz format)"
    else:
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
            problem = f"the archive is truncated or corrupt ({err})"
    raise ValueError(f"{field}: {path} is not a readable .npz file: {problem}")


def _read_npz(path: Path) -> dict[str, Any]:
    """Read the DPC keys of an ``.npz`` archive; scalars become floats."""
    archive = _load_npz(path, "path")
    keys = list(archive)
    if "img" not in keys:
        raise ValueError(
            f"{path.name}: img: missing, the key for the (frames, H, W) DPC images; found keys "
            f"{keys}"
        )
    unknown = [k for k in keys if k not in _NPZ_KEYS]
    if unknown:
        warnings.warn(
            f"{path.name}: ignoring keys {unknown} (DPC keys are {list(_NPZ_KEYS)})",
            UserWarning,
            stacklevel=3,
        )
    stored: dict[str, Any] = {k: archive[k] for k in keys if k in ("img", "s", "times")}
    for key, _ in _PARAMS.values():
        if key in keys:
            value = archive[key]
            unit = "" if key == "na" else " in µm"
            if value.size != 1:
                raise ValueError(
                    f"{path.name}: {key}: expected a single number{unit}, got an array of shape "
                    f"{value.shape}"
                )
            if value.dtype.kind not in "iuf":
                raise TypeError(
                    f"{path.name}: {key}: expected a number{unit}, got "
                    f"{'text' if value.dtype.kind in 'SU' else value.dtype.name} "
                    f"{value.reshape(()).item()!r}; store it as a float"
                )
            stored[key] = value.reshape(()).item()
    return stored


def _read_tiff_stack(path: Path, field: str) -> np.ndarray:
    """Read a TIFF stack, dropping singleton axes that ImageJ hyperstacks add (e.g. C=1)."""
    try:
        arr = tifffile.imread(path)
    except (tifffile.TiffFileError, ValueError, OSError) as err:
        raise ValueError(f"{field}: {path} is not a readable TIFF file ({err})") from None
    if arr.ndim > 3:
        arr = arr.squeeze()
    if arr.ndim != 3:
        raise ValueError(
            f"{field}: expected a TIFF stack of shape (frames, H, W) in {path.name}, "
            f"got shape {arr.shape}"
        )
    return arr


def _tiff_pixel_size(path: Path, given: float | None) -> float | None:
    """The square pixel size (µm) in a TIFF's metadata, if any; checked against ``given``."""
    from ...io.tiff import read_tiff_spacing_um  # here: nstm.io would import matplotlib

    spacing = read_tiff_spacing_um(path)
    y, x = spacing.get("Y"), spacing.get("X")
    if y is None or x is None:
        return None
    square = abs(x - y) <= _PIXEL_SIZE_RTOL * max(x, y)
    if given is not None:
        # The given value wins; say so when the file disagrees, since one of them is wrong.
        if (
            square
            and isinstance(given, int | float)
            and not math.isclose(float(given), x, rel_tol=_PIXEL_SIZE_RTOL)
        ):
            warnings.warn(
                f"pixel_size_um: using the given {given:g} µm; {path.name}'s metadata says "
                f"{x:g} µm",
                UserWarning,
                stacklevel=3,
            )
        return None
    if not square:
        raise ValueError(
            f"pixel_size_um: {path.name}'s metadata gives different pixel sizes in y ({y:g} µm) "
            f"and x ({x:g} µm); DPC needs square pixels: resample the stack, or pass "
            "--system.pixel-size-um to choose the size"
        )
    return x


def _read_sources(source_path: str | os.PathLike[str]) -> np.ndarray:
    """Read source maps (frames, H, W) from a ``.npy``, ``.npz`` or TIFF file."""
    path = Path(source_path)
    suffix = path.suffix.lower()
    if suffix not in _SOURCE_SUFFIXES:
        raise ValueError(
            f"sources: unsupported file format {suffix or '(no extension)'!r} for {path}; "
            f"supported: {', '.join(_SOURCE_SUFFIXES)}"
        )
    _check_file(path, "sources", "source-map file")
    if suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (EOFError, OSError, ValueError) as err:
            raise ValueError(f"sources: {path} is not a readable .npy file ({err})") from None
    if suffix in _TIFF_SUFFIXES:
        return _read_tiff_stack(path, "sources")
    archive = _load_npz(path, "sources")
    keys = list(archive)
    if "s" in keys:
        return archive["s"]
    if len(keys) == 1:
        return archive[keys[0]]
    raise ValueError(
        f"sources: {path.name} has no key 's' and more than one array ({keys}); "
        "store the (frames, H, W) source maps under 's'"
    )


def _normalize_by_frame_mean(images: Any, name: str) -> np.ndarray:
    """Map raw intensities (frames, H, W) to ``I / mean(I) - 1`` per frame."""
    arr = _real_float32(name, images).astype(np.float64)  # float64: exact mean on big frames
    if arr.ndim != 3:
        raise ValueError(f"{name}: expected a 3D array (frames, H, W), got shape {arr.shape}")
    _check_finite(name, arr)
    if arr.min() < 0:
        raise ValueError(
            f"{name}: normalize=True expects raw non-negative intensities, got min "
            f"{arr.min():.3g}; the data look already zero-centred -- drop normalize "
            "(--system.normalize)"
        )
    means = arr.mean(axis=(1, 2))
    if (dark := np.flatnonzero(means <= 0)).size:
        raise ValueError(f"{name}: cannot normalize frames {dark.tolist()}, their mean is 0")
    return (arr / means[:, None, None] - 1.0).astype(np.float32)


# --- validation helpers --------------------------------------------------------------------------


def _real_float32(name: str, value: Any) -> np.ndarray:
    """Convert to a C-contiguous float32 array, rejecting non-numeric or complex input."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real-valued numeric array, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _real_scalar(name: str, value: Any) -> float:
    """Convert a real, finite scalar to ``float``; text such as ``"0.5"`` is refused."""
    text_or_bool = (str, bytes, bool, np.str_, np.bytes_, np.bool_)
    if isinstance(value, text_or_bool) or not np.isscalar(value) and np.ndim(value) != 0:
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name}: expected a real number, got {type(value).__name__} {value!r}"
        ) from None
    if not np.isfinite(out):
        raise ValueError(f"{name}: expected a finite number, got {out}")
    return out


def _check_finite(name: str, arr: np.ndarray) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        n_nan = int(np.isnan(arr).sum())
        raise ValueError(
            f"{name}: expected finite values, got {int(bad.sum())} non-finite of {arr.size} "
            f"({n_nan} NaN, {int(bad.sum()) - n_nan} inf)"
        )


def _check_zero_centred(name: str, images: np.ndarray) -> None:
    """Reject raw intensities, which would be fitted as a huge absorption offset."""
    means = images.mean(axis=(1, 2), dtype=np.float64)
    if images.min() > 0 and (means > _RAW_MEAN_THRESHOLD).all():
        raise ValueError(
            f"{name}: look like raw intensities (all values > 0, frame means "
            f"{means.min():.3g}..{means.max():.3g}); expected zero-centred DPC frames "
            "I / I_background - 1: pass normalize=True (CLI: --system.normalize) to load_dpc, or "
            "divide by the background yourself"
        )


def _check_source_layout(name: str, sources: np.ndarray) -> None:
    """Reject sources given centred (``fftshift``-ed) instead of on the unshifted FFT grid.

    Compares the mean wrapped frequency distance of the source mass from DC ``[0, 0]`` with that
    from the array centre ``[H//2, W//2]``. Any source within the NA disc is closer to DC in the
    unshifted layout; a centred one is closer to the middle. A source filling the whole grid
    is ambiguous and passes.
    """
    h, w = sources.shape[-2:]
    # Wrapped distance to DC in cycles/pixel (isotropic for square pixels, any H, W parity).
    d_dc = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    # fftshift moves DC to [h//2, w//2], so this is the wrapped distance to the centre pixel.
    d_centre = np.fft.fftshift(d_dc)
    mass = sources.sum(axis=0, dtype=np.float64)
    mean_dc = float((mass * d_dc).sum())
    mean_centre = float((mass * d_centre).sum())
    if mean_centre < _CENTRED_RATIO * mean_dc:
        raise ValueError(
            f"{name}: the source maps look centred (DC in the middle of the array); nstm "
            "expects the unshifted FFT layout with DC at [0, 0]: pass "
            "numpy.fft.ifftshift(s, axes=(-2, -1))"
        )
