"""Thin-sample phantoms: absorption (log-amplitude) and phase maps.

A thin sample is described by its complex transmission ``exp(absorption + 1j * phase)``, with
the absorption (natural-log amplitude, dimensionless, <= 0 for a passive sample) and the phase
(rad) both given as ``(H, W)`` float32 maps on the simulation grid, axes ``(y, x)``.

Procedural phantoms (``"cells"``, ``"blobs"``, ``"resolution"``) are drawn from a seeded
:class:`numpy.random.Generator`; realistic phantoms (``"c-elegans"``, ``"usaf"``) are derived in
code from the images shipped in ``nstm/simulation/data`` (BSD-3-Clause, (c) 2024 Ruiming Cao; see
the ``LICENSE-nstm-assets.txt`` beside them) and do not use the generator.

Examples
--------
>>> import numpy as np
>>> absorption, phase = make_phantom("cells", (64, 96), rng=np.random.default_rng(0))
>>> absorption.shape, phase.dtype
((64, 96), dtype('float32'))
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile
from scipy import ndimage
from skimage.transform import resize

__all__ = ["MIN_SIZE_PX", "PHANTOMS", "make_phantom"]

PHANTOMS: tuple[str, ...] = ("cells", "blobs", "resolution", "c-elegans", "usaf")

#: Smallest accepted side length (px): below this the phantoms have no recognisable structure.
MIN_SIZE_PX = 16

_DATA_PACKAGE = "nstm.simulation"

# --- Geometry of frame 0 of DPC-c-elegans.gif (850 x 400 px), found by inspecting the figure. -----
# Boxes are (row_start, row_stop, col_start, col_stop), half-open, in figure pixels. Both NSTM
# panels are 146 x 366 px and share the same columns, so the two maps are co-registered.
_CE_AMPLITUDE_BOX = (40, 186, 51, 417)
_CE_PHASE_BOX = (214, 360, 51, 417)
# The "frame 1" label printed inside the amplitude panel (rows 54-68, cols 73-145) plus 4 px.
_CE_LABEL_BOX = (50, 73, 69, 150)
# Colour bars (right of the figure): rows of the black frame lines bounding the grey ramp, and the
# rows of the labelled tick marks with their values.
_CE_AMPLITUDE_BAR = {
    "edge_rows": (66, 159),
    "tick_rows": (72, 107, 143),
    "ticks": (0.0, -0.2, -0.4),
}
_CE_PHASE_BAR = {"edge_rows": (240, 333), "tick_rows": (261, 285, 309, 332), "ticks": (3, 2, 1, 0)}
# The GIF uses a fixed 3-3-2 bit RGB palette with error-diffusion dithering: this Gaussian blur
# (px) turns the dithered pattern back into continuous grey levels.
_CE_UNDITHER_SIGMA_PX = 1.0

# --- USAF target and image files. --------------------------------------------------------------
_USAF_PHASE_RAD = 1.5
_USAF_ABSORPTION = -0.1
_IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".gif", ".jpg", ".jpeg")

# --- Procedural resolution target. -------------------------------------------------------------
_BAR_WIDTHS_PX = (8.0, 6.0, 5.0, 4.0, 3.0, 2.5, 2.0, 1.5)
_RESOLUTION_PHASE_RAD = 1.5
_RESOLUTION_ABSORPTION = -0.1

# Light smoothing (px) applied to every phantom so that edges are band-limited like a real sample.
_SMOOTH_SIGMA_PX = 0.5


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------
def make_phantom(
    name: str,
    shape: tuple[int, int],
    *,
    rng: np.random.Generator | int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Make a thin-sample phantom.

    Parameters
    ----------
    name : str
        One of :data:`PHANTOMS`:

        ``"cells"``
            3-6 smooth-edged elliptical cells (dome-shaped thickness, a denser nucleus, granular
            internal texture), placed mostly apart. Phase 0..2 rad, absorption -0.2..0 (extremes
            set before the final smoothing, so reached to within a few %). Random.
        ``"blobs"``
            Sums of 10-20 random isotropic Gaussians (sigma 3-10 % of the smaller side); phase
            0..1.5 rad and, from an independent draw, absorption -0.1..0. Random.
        ``"resolution"``
            Groups of three bars (bar width = gap = w, length 5 w) for w in 8, 6, 5, 4, 3, 2.5,
            2, 1.5 px, each w once with vertical and once with horizontal bars, packed in rows
            and centred; groups that do not fit in ``shape`` are left out. Bars are rendered with
            exact area coverage (sub-pixel widths are meaningful). Phase 1.5 rad and absorption
            -0.1 on the bars, 0 elsewhere. Deterministic.
        ``"c-elegans"``
            The NSTM reconstruction of a live *C. elegans* (frame 0 of ``DPC-c-elegans.gif``, left
            column). Derivation: the NSTM amplitude and phase panels (figure boxes rows 40:186 and
            214:360, columns 51:417) are cropped inside their frames; the "frame 1" label is
            replaced by the median grey of a 6 px ring around it; the grey level (mean of R, G,
            B: the GIF has a dithered 3-3-2 bit palette) is blurred with sigma = 1 px to undo the
            dithering and mapped linearly to physical units with the colour bars, whose ends are
            found by extrapolating the labelled tick rows to the bars' frame lines (amplitude about
            -0.49..0.03, phase about -0.03..3.89 rad). The background (the panel median) is then
            shifted to 0 and the maps are clipped to absorption <= 0 and phase >= 0 (a passive,
            optically denser sample). Finally the panels are resized (anti-aliased) to cover
            ``shape`` and cropped to ``shape`` around the phase-weighted centroid of the worm, so a
            target with the panel's aspect ratio (about 2.5 : 1) keeps the whole worm and a square
            one keeps its central S-bend. Phase about 0..3.8 rad, absorption about -0.47..0.
            Deterministic.
        ``"usaf"``
            The USAF-1951 target (``USAF-1951.png``, 1550 x 1550): bars = 1 - grey / 255 (bars and
            digits are black), resized (anti-aliased) to cover ``shape`` and centre-cropped.
            Phase 1.5 rad and absorption -0.1 on the bars, 0 on the background. Deterministic.

        Or the path of an image file (PNG, TIFF, GIF, JPEG; the first frame of a stack): its
        grey level (mean of the colour channels), scaled to [0, 1] between its minimum and
        maximum, resized to cover ``shape`` and centre-cropped, gives phase 1.5 rad and
        absorption -0.1 per unit of grey. Deterministic.

    shape : tuple of int
        ``(H, W)`` output size in pixels, each at least :data:`MIN_SIZE_PX`.
    rng : numpy.random.Generator or int, optional
        Random generator (or seed) for the procedural phantoms; the same seed gives the same
        phantom. ``None`` draws fresh entropy. Ignored by the deterministic phantoms.

    Returns
    -------
    absorption : ndarray, shape (H, W), float32
        Log-amplitude (dimensionless), <= 0.
    phase : ndarray, shape (H, W), float32
        Phase in radians, >= 0.

    Raises
    ------
    ValueError
        If ``name`` is unknown or ``shape`` is not two integers >= :data:`MIN_SIZE_PX`.

    Notes
    -----
    Every phantom is smoothed with a Gaussian of sigma = 0.5 px (on top of any anti-aliasing) so
    that it is band-limited like a real sample.
    """
    if not isinstance(name, str) or (name not in _REGISTRY and not _is_image_path(name)):
        raise ValueError(
            f"name must be one of {PHANTOMS} or the path of an image file "
            f"({', '.join(_IMAGE_SUFFIXES)}); got {name!r}"
        )
    shape = _validate_shape(shape)
    generator = np.random.default_rng(rng)
    if name in _REGISTRY:
        absorption, phase = _REGISTRY[name](shape, generator)
    else:
        absorption, phase = _from_image(Path(name), shape)
    absorption = ndimage.gaussian_filter(absorption, _SMOOTH_SIGMA_PX, mode="nearest")
    phase = ndimage.gaussian_filter(phase, _SMOOTH_SIGMA_PX, mode="nearest")
    # Smoothing and resampling can ring by a hair past the physical bounds; restore them.
    absorption = np.minimum(absorption, 0.0).astype(np.float32)
    phase = np.maximum(phase, 0.0).astype(np.float32)
    return absorption, phase


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
def _validate_shape(shape: tuple[int, int]) -> tuple[int, int]:
    try:
        dims = tuple(int(s) for s in shape)
        exact = all(int(s) == s for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be a tuple (H, W) of integers; got {shape!r}") from None
    if len(dims) != 2 or not exact or min(dims) < MIN_SIZE_PX:
        raise ValueError(
            f"shape must be a tuple (H, W) of two integers >= {MIN_SIZE_PX} px; got {shape!r}"
        )
    return dims


def _normalize_max(image: np.ndarray, peak: float) -> np.ndarray:
    """Scale a non-negative map so that its maximum equals ``peak`` (all-zero stays zero)."""
    top = image.max()
    return image * (peak / top) if top > 0 else image


def _smooth_step(rho: np.ndarray, edge: float) -> np.ndarray:
    """1 inside ``rho < 1`` and 0 outside, with a tanh transition of half-width ``edge``."""
    return 0.5 * (1.0 - np.tanh((rho - 1.0) / edge))


def _ellipse_radius(
    yy: np.ndarray, xx: np.ndarray, center: tuple[float, float], axes: tuple[float, float], angle
) -> np.ndarray:
    """Normalised elliptical radius (1 on the ellipse) for semi-axes ``axes`` (px)."""
    dy, dx = yy - center[0], xx - center[1]
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    return np.hypot(u / axes[0], v / axes[1])


def _texture(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="reflect")
    return field / field.std()


def _cover_and_crop(
    images: list[np.ndarray], shape: tuple[int, int], center: tuple[float, float] | None = None
) -> list[np.ndarray]:
    """Resize ``images`` (same shape) to cover ``shape`` and crop a ``shape`` window.

    The window is centred on ``center`` (source pixel coordinates; default: image centre) and
    clipped to the image, so the aspect ratio is kept without padding.
    """
    src_h, src_w = images[0].shape
    if center is None:
        center = ((src_h - 1) / 2, (src_w - 1) / 2)
    factor = int(1.0 / max(shape[0] / src_h, shape[1] / src_w))
    if factor >= 2:
        # Strong downscaling: block-average first (itself an anti-aliasing filter), which is far
        # cheaper than resize's Gaussian anti-aliasing at a large sigma.
        keep = (src_h // factor * factor, src_w // factor * factor)
        trim = ((src_h - keep[0]) // 2, (src_w - keep[1]) // 2)
        images = [
            image[trim[0] : trim[0] + keep[0], trim[1] : trim[1] + keep[1]]
            .reshape(keep[0] // factor, factor, keep[1] // factor, factor)
            .mean(axis=(1, 3))
            for image in images
        ]
        center = tuple((c - t + 0.5) / factor - 0.5 for c, t in zip(center, trim, strict=True))
        src_h, src_w = images[0].shape
    scale = max(shape[0] / src_h, shape[1] / src_w)
    size = (max(shape[0], round(src_h * scale)), max(shape[1], round(src_w * scale)))
    starts = []
    for axis in range(2):
        # Map the centre to the resized grid, then clip the window to the image.
        c = (center[axis] + 0.5) * size[axis] / images[0].shape[axis]
        start = int(round(c - shape[axis] / 2))
        starts.append(min(max(start, 0), size[axis] - shape[axis]))
    out = []
    for image in images:
        scaled = resize(image, size, order=1, mode="edge", anti_aliasing=True)
        out.append(scaled[starts[0] : starts[0] + shape[0], starts[1] : starts[1] + shape[1]])
    return out


def _read_asset(filename: str, **kwargs) -> np.ndarray:
    data = (resources.files(_DATA_PACKAGE) / "data" / filename).read_bytes()
    return iio.imread(data, extension="." + filename.rsplit(".", 1)[-1], **kwargs)


def _colour_bar_limits(bar: dict) -> tuple[float, float]:
    """Values (low, high) at the bottom and top ends of a colour bar, from its tick marks."""
    slope, intercept = np.polyfit(bar["tick_rows"], bar["ticks"], 1)
    top, bottom = bar["edge_rows"]
    return float(slope * bottom + intercept), float(slope * top + intercept)


def _grey_to_value(grey: np.ndarray, bar: dict) -> np.ndarray:
    """Map 8-bit grey (matplotlib ``gray``: black = low end, white = high end) to physical units."""
    low, high = _colour_bar_limits(bar)
    return low + (grey / 255.0) * (high - low)


def _panel(figure: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    r0, r1, c0, c1 = box
    return figure[r0:r1, c0:c1].copy()


@functools.cache
def _c_elegans_maps() -> tuple[np.ndarray, np.ndarray]:
    """Absorption and phase (146 x 366 px) of the NSTM panels of frame 0; read-only arrays."""
    figure = _read_asset("DPC-c-elegans.gif", index=0)[..., :3].astype(np.float64).mean(axis=-1)

    # Replace the label by the median grey of a 6 px ring around it (local background).
    r0, r1, c0, c1 = _CE_LABEL_BOX
    ring = figure[r0 - 6 : r1 + 6, c0 - 6 : c1 + 6].copy()
    ring[6:-6, 6:-6] = np.nan
    figure = figure.copy()
    figure[r0:r1, c0:c1] = np.nanmedian(ring)
    amplitude_grey = _panel(figure, _CE_AMPLITUDE_BOX)
    phase_grey = _panel(figure, _CE_PHASE_BOX)

    maps = []
    for grey, bar in ((amplitude_grey, _CE_AMPLITUDE_BAR), (phase_grey, _CE_PHASE_BAR)):
        grey = ndimage.gaussian_filter(grey, _CE_UNDITHER_SIGMA_PX, mode="nearest")
        value = _grey_to_value(grey, bar)
        # The worm covers a minority of the panel, so the median is the background level.
        maps.append(value - np.median(value))
    absorption = np.minimum(maps[0], 0.0)
    phase = np.maximum(maps[1], 0.0)
    for array in (absorption, phase):
        array.flags.writeable = False
    return absorption, phase


def _c_elegans(shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    absorption, phase = _c_elegans_maps()
    yy, xx = np.indices(phase.shape)
    centroid = (float((yy * phase).sum() / phase.sum()), float((xx * phase).sum() / phase.sum()))
    absorption, phase = _cover_and_crop([absorption, phase], shape, centroid)
    return absorption, phase


@functools.cache
def _usaf_bars() -> np.ndarray:
    """USAF-1951 bar mask in [0, 1] (1 on the black bars), 1550 x 1550; read-only."""
    image = _read_asset("USAF-1951.png")
    grey = image[..., :3].astype(np.float64).mean(axis=-1) if image.ndim == 3 else image
    bars = 1.0 - grey / 255.0
    bars.flags.writeable = False
    return bars


def _usaf(shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    (bars,) = _cover_and_crop([_usaf_bars()], shape)
    bars = np.clip(bars, 0.0, 1.0)
    return _USAF_ABSORPTION * bars, _USAF_PHASE_RAD * bars


def _cells(shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    size = min(shape)
    yy, xx = np.indices(shape, dtype=np.float64)
    # Granules: a fine texture (~size/64 px) modulating both thickness and absorption.
    grain = max(1.0, size / 64)
    thickness = np.zeros(shape)
    density = np.zeros(shape)
    placed: list[tuple[float, float, float]] = []  # (cy, cx, major) of the cells so far
    for _ in range(int(rng.integers(3, 7))):
        major = rng.uniform(0.08, 0.18) * size
        # Rejection-sample the centre so cells mostly sit apart (they may touch, as in culture).
        for _attempt in range(50):
            center = (rng.uniform(0.2, 0.8) * shape[0], rng.uniform(0.2, 0.8) * shape[1])
            if all(
                np.hypot(center[0] - y, center[1] - x) > 0.8 * (major + m) for y, x, m in placed
            ):
                break
        placed.append((*center, major))
        axes = (major, major * rng.uniform(0.55, 0.9))
        angle = rng.uniform(0.0, np.pi)
        rho = _ellipse_radius(yy, xx, center, axes, angle)
        # Membrane edge about 1.5 % of the image (>= 1 px) wide, expressed in rho units.
        edge = max(1.0, 0.015 * size) / axes[1]
        body = _smooth_step(rho, edge)
        dome = body * (1.0 - 0.5 * np.minimum(rho, 1.0) ** 2)

        offset = rng.uniform(-0.25, 0.25, size=2) * axes[1]
        n_center = (center[0] + offset[0], center[1] + offset[1])
        n_axes = (axes[0] * rng.uniform(0.3, 0.45), axes[1] * rng.uniform(0.35, 0.5))
        n_rho = _ellipse_radius(yy, xx, n_center, n_axes, angle + rng.uniform(-0.5, 0.5))
        nucleus = _smooth_step(n_rho, max(1.0, 0.01 * size) / n_axes[1])

        texture = _texture(shape, grain, rng)
        thickness += dome * (1.0 + 0.2 * texture) + 0.4 * nucleus
        granules = np.clip(_texture(shape, grain, rng), 0.0, None)
        density += body * (0.25 + 0.5 * granules) + 0.6 * nucleus
    phase = _normalize_max(np.maximum(thickness, 0.0), 2.0)
    absorption = -_normalize_max(np.maximum(density, 0.0), 0.2)
    return absorption, phase


def _gaussian_sum(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    size = min(shape)
    yy, xx = np.indices(shape, dtype=np.float64)
    total = np.zeros(shape)
    for _ in range(int(rng.integers(10, 21))):
        cy, cx = rng.uniform(0.1, 0.9) * shape[0], rng.uniform(0.1, 0.9) * shape[1]
        sigma = rng.uniform(0.03, 0.1) * size
        total += rng.uniform(0.3, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    return total


def _blobs(shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    phase = _normalize_max(_gaussian_sum(shape, rng), 1.5)
    absorption = -_normalize_max(_gaussian_sum(shape, rng), 0.1)
    return absorption, phase


def _coverage(n: int, start: float, stop: float) -> np.ndarray:
    """Fraction of each pixel ``i`` (spanning [i - 0.5, i + 0.5]) inside [start, stop]."""
    centers = np.arange(n, dtype=np.float64)
    return np.clip(np.minimum(centers + 0.5, stop) - np.maximum(centers - 0.5, start), 0.0, 1.0)


def _resolution(shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    margin = 2
    # Shelf packing, largest bars first; each group is a square of side 5 w.
    placed = []  # (y0, x0, w, vertical)
    y, x, shelf = margin, margin, 0
    for w in _BAR_WIDTHS_PX:
        side = int(np.ceil(5 * w))
        gap = int(np.ceil(w)) + 3
        for vertical in (True, False):
            if x + side > shape[1] - margin:  # next shelf
                y, x, shelf = y + shelf, margin, 0
            if x + side > shape[1] - margin or y + side > shape[0] - margin:
                continue  # too large for what is left; smaller groups may still fit
            placed.append((y, x, w, vertical))
            x += side + gap
            shelf = max(shelf, side + gap)
    bars = np.zeros(shape)
    if placed:
        extent_y = max(p[0] + np.ceil(5 * p[2]) for p in placed) + margin
        extent_x = max(p[1] + np.ceil(5 * p[2]) for p in placed) + margin
        shift = ((shape[0] - extent_y) // 2, (shape[1] - extent_x) // 2)
        for y0, x0, w, vertical in placed:
            y0, x0 = y0 + shift[0], x0 + shift[1]
            along = _coverage(
                shape[0] if vertical else shape[1],
                *((y0, y0 + 5 * w) if vertical else (x0, x0 + 5 * w)),
            )
            for k in range(3):
                if vertical:
                    across = _coverage(shape[1], x0 + 2 * k * w, x0 + (2 * k + 1) * w)
                    bars += np.outer(along, across)
                else:
                    across = _coverage(shape[0], y0 + 2 * k * w, y0 + (2 * k + 1) * w)
                    bars += np.outer(across, along)
    bars = np.clip(bars, 0.0, 1.0)
    return _RESOLUTION_ABSORPTION * bars, _RESOLUTION_PHASE_RAD * bars


def _is_image_path(name: str) -> bool:
    return Path(name).suffix.lower() in _IMAGE_SUFFIXES and Path(name).is_file()


def _from_image(path: Path, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Phase and absorption from an image file's grey level (see :func:`make_phantom`)."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            image = tifffile.imread(path, key=0)
        else:
            image = iio.imread(path, index=0, plugin="pillow")
        image = np.asarray(image, dtype=np.float64)
    except Exception as err:  # the readers raise many types for unreadable files
        raise ValueError(f"name: cannot read {path} as an image ({err})") from None
    if image.ndim == 3:  # colour: drop alpha, average the channels
        image = image[..., :3].mean(axis=-1)
    if image.ndim != 2 or min(image.shape) < 2:
        raise ValueError(f"name: {path} is not a 2D image (shape {image.shape})")
    span = image.max() - image.min()
    grey = (image - image.min()) / span if span > 0 else np.zeros_like(image)
    (grey,) = _cover_and_crop([grey], shape)
    return _USAF_ABSORPTION * grey, _USAF_PHASE_RAD * grey


_REGISTRY: dict[str, Callable[[tuple[int, int], np.random.Generator], tuple]] = {
    "cells": _cells,
    "blobs": _blobs,
    "resolution": _resolution,
    "c-elegans": _c_elegans,
    "usaf": _usaf,
}
assert tuple(_REGISTRY) == PHANTOMS
