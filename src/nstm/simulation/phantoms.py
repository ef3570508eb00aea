"""Phantoms: thin-sample absorption and phase maps (DPC), and fluorescence / intensity densities.

Two families share this module:

* :func:`make_phantom` (names in :data:`PHANTOMS`): a thin sample's absorption and phase, 2D.
* :func:`make_density` (names in :data:`DENSITIES`): a non-negative density with peak 1, 2D
  ``(H, W)`` or 3D ``(Z, H, W)``, for fluorescence (e.g. 3D structured illumination) and
  intensity imaging; :func:`make_beads` also returns the beads' positions, and
  :func:`make_color` makes an RGB scene ``(H, W, 3)`` (e.g. for a lensless colour camera).

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
>>> volume = make_density("cells", (8, 64, 64), rng=0)
>>> volume.shape, float(volume.min()), float(volume.max())
((8, 64, 64), 0.0, 1.0)
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

from ..validation import check_nonnegative, check_positive, check_shape

__all__ = [
    "DENSITIES",
    "MIN_SIZE_PX",
    "PHANTOMS",
    "make_beads",
    "make_color",
    "make_density",
    "make_phantom",
]

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
    shape = check_shape("shape", shape, minimum=MIN_SIZE_PX)
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


def _read_image(path: Path, frame: int = 0) -> np.ndarray:
    """Frame ``frame`` of an image file as float64, (H, W) or (H, W, channels)."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            image = tifffile.imread(path, key=frame)
        else:
            image = iio.imread(path, index=frame, plugin="pillow")
        image = np.asarray(image, dtype=np.float64)
    except Exception as err:  # the readers raise many types for unreadable files
        raise ValueError(f"name: cannot read {path} as an image ({err})") from None
    return image


def _from_image(path: Path, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Phase and absorption from an image file's grey level (see :func:`make_phantom`)."""
    grey = _grey_from_file(path, shape)
    return _USAF_ABSORPTION * grey, _USAF_PHASE_RAD * grey


_REGISTRY: dict[str, Callable[[tuple[int, int], np.random.Generator], tuple]] = {
    "cells": _cells,
    "blobs": _blobs,
    "resolution": _resolution,
    "c-elegans": _c_elegans,
    "usaf": _usaf,
}
assert tuple(_REGISTRY) == PHANTOMS


# ----------------------------------------------------------------------------------------------
# Fluorescence / intensity densities, 2D and 3D
# ----------------------------------------------------------------------------------------------
DENSITIES: tuple[str, ...] = ("beads", "cells", "filaments", "usaf")

_DENSITY_OPTIONS: dict[str, tuple[str, ...]] = {
    "beads": ("spacing_px", "sigma_px", "count", "subpixel"),
    "cells": ("count",),
    "filaments": ("count", "width_px"),
    "usaf": ("slab_fwhm_px",),
}
_FILE_OPTIONS = ("frame", "box", "slab_fwhm_px")

# Walk step (px) at which filaments are traced before being splatted onto the grid.
_FILAMENT_STEP_PX = 0.25
# Colour scenes: the hue field's correlation length as a fraction of the smaller side, and the
# least any channel keeps (so that colours stay moderately saturated, never pure black).
_COLOR_LENGTH = 0.25
_COLOR_FLOOR = 0.2


def make_density(
    name: str,
    shape: tuple[int, ...],
    *,
    rng: np.random.Generator | int | None = None,
    **options,
) -> np.ndarray:
    """Make a non-negative intensity or fluorophore density, 2D or 3D.

    Parameters
    ----------
    name : str
        One of :data:`DENSITIES`:

        ``"beads"``
            Sub-resolution beads on a jittered grid, at least ``spacing_px`` apart; see
            :func:`make_beads` for the options (``spacing_px``, ``sigma_px``, ``count``,
            ``subpixel``) and to get their positions. Random.
        ``"cells"``
            Fluorescent cells: ellipsoids (ellipses in 2D) with a bright membrane shell (Gaussian
            profile across the surface, standard deviation ``max(0.7, 0.006 * side)`` px), a
            granular textured cytoplasm at 25-60 % of the shell's brightness and a darker
            nucleus (a cytoplasmic stain mostly excludes it). Major semi-axis 8-18 % of the
            smaller lateral side, minor 55-90 % of the major; in 3D the axial semi-axis is at
            most a quarter of ``Z`` (flat, adherent cells) and at least 1 px, the cells centred
            within 5 % of ``Z`` of the middle plane. Option ``count`` (default 3-6, random). Random.
        ``"filaments"``
            Random smooth curves (worm-like chains with a persistence length of 30-100 % of the
            smaller lateral side, 40-120 % of it long, centred in the central 80 % of each
            lateral axis), like microtubules or mitochondria, with
            Gaussian cross-section of standard deviation ``width_px`` (default 1 px); in 3D they
            meander axially with a slope of at most 0.3, folded back into the volume. Options
            ``count`` (default 8-16, random) and ``width_px``. Random.
        ``"usaf"``
            The USAF-1951 target (bars bright): ``1 - grey / 255`` of ``USAF-1951.png``, resized
            (anti-aliased) to cover the lateral shape and centre-cropped. Deterministic.

        Or the path of an image file (PNG, TIFF, GIF, JPEG): its grey level (mean of the colour
        channels) scaled to [0, 1] between its minimum and maximum, resized to cover the lateral
        shape and centre-cropped. Options ``frame`` (index in a stack or animation, default 0)
        and ``box`` (``(row_start, row_stop, col_start, col_stop)``, half-open, source pixels: a
        crop taken before resizing). Deterministic.

        In 3D, ``"usaf"`` and images are extruded into a thin slab: the 2D image times a
        Gaussian axial profile centred on the middle of ``Z``, of full width at half maximum
        ``slab_fwhm_px`` (z steps; default ``max(1, Z / 4)``).
    shape : tuple of int
        ``(H, W)`` or ``(Z, H, W)`` in pixels; ``H`` and ``W`` at least :data:`MIN_SIZE_PX`,
        ``Z`` at least 1.
    rng : numpy.random.Generator or int, optional
        Random generator (or seed) for the random densities; the same seed gives the same
        density. ``None`` draws fresh entropy. Ignored by the deterministic ones.
    **options
        Name-specific options listed above; unknown ones raise ``ValueError``.

    Returns
    -------
    ndarray, shape ``shape``, float32
        Density (relative units) >= 0 with maximum 1.

    Raises
    ------
    ValueError
        If ``name`` is unknown (the message lists the valid names), ``shape`` is invalid, an
        option is unknown or out of range, or an image file cannot be read.
    """
    name_ok = isinstance(name, str) and (name in DENSITIES or _is_image_path(name))
    if not name_ok:
        raise ValueError(
            f"name: expected one of {DENSITIES} or the path of an image file "
            f"({', '.join(_IMAGE_SUFFIXES)}), got {name!r}"
        )
    shape = _check_density_shape(shape)
    _check_options(name, options, _DENSITY_OPTIONS.get(name, _FILE_OPTIONS))
    generator = np.random.default_rng(rng)
    if name == "beads":
        density, _ = make_beads(shape, rng=generator, **options)
    elif name == "cells":
        density = _cells_density(shape, generator, **options)
    elif name == "filaments":
        density = _filaments(shape, generator, **options)
    else:
        slab_fwhm_px = options.pop("slab_fwhm_px", None)
        if name == "usaf":
            (image,) = _cover_and_crop([_usaf_bars()], shape[-2:])
        else:
            image = _grey_from_file(Path(name), shape[-2:], **options)
        density = _extrude(np.clip(image, 0.0, None), shape, slab_fwhm_px)
    return _unit_peak(density)


def make_beads(
    shape: tuple[int, ...],
    *,
    rng: np.random.Generator | int | None = None,
    spacing_px: float = 8.0,
    sigma_px: float = 0.0,
    count: int | None = None,
    subpixel: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Beads for point-spread-function and resolution tests, with their positions.

    The canvas is cut into cubic cells of side ``2 * spacing_px`` (centred; an axis shorter than
    that is one cell), and a bead is drawn uniformly in the central ``spacing_px`` of each cell,
    so that any two beads are at least ``spacing_px`` apart (along an axis on which their cells
    differ), and their centres at least ``spacing_px / 2`` from the canvas edges (the outer pixel
    borders) along axes at least ``2 * spacing_px`` long; along a shorter axis (one cell) they
    lie in its central half.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` or ``(Z, H, W)`` in pixels (``H``, ``W`` >= :data:`MIN_SIZE_PX`).
    rng : numpy.random.Generator or int, optional
        Random generator (or seed). ``None`` draws fresh entropy.
    spacing_px : float, optional
        Smallest distance between beads (px), >= 1.
    sigma_px : float, optional
        Standard deviation (px) of each bead's Gaussian profile; 0 (default) makes each bead a
        single pixel (a point far below any optical resolution).
    count : int, optional
        Number of beads, in randomly chosen cells; default one per cell.
    subpixel : bool, optional
        Draw continuous positions (requires ``sigma_px > 0``); default: pixel centres.

    Returns
    -------
    density : ndarray, shape ``shape``, float32
        Sum of the beads (each of height 1 at its centre before the whole is scaled to maximum
        1), >= 0.
    positions : ndarray, shape (count, ndim), float64
        Bead centres ``(y, x)`` or ``(z, y, x)`` in pixels (pixel ``i`` is centred at ``i``),
        sorted by cell.

    Raises
    ------
    ValueError
        On an invalid shape, spacing, sigma or count, or ``subpixel`` without a sigma.
    """
    shape = _check_density_shape(shape)
    generator = np.random.default_rng(rng)
    spacing = check_positive("spacing_px", spacing_px, "px")
    if spacing < 1:
        raise ValueError(f"spacing_px: expected a distance >= 1 px, got {spacing_px!r}")
    sigma = check_nonnegative("sigma_px", sigma_px, "px")
    if subpixel and sigma == 0:
        raise ValueError("subpixel: continuous positions need sigma_px > 0 (a point is one pixel)")
    cell = 2.0 * spacing
    lows, highs = [], []  # per axis: the range of bead coordinates in each cell
    for n in shape:
        cells = int(n // cell)
        if cells >= 1:
            # The canvas spans [-0.5, n - 0.5] (pixel i is centred at i); centre the cells on it.
            start = (n - cells * cell) / 2 - 0.5 + cell * np.arange(cells)
            low, high = start + spacing / 2, start + 1.5 * spacing
        else:
            low, high = np.array([float(n // 4)]), np.array([float(n - 1 - n // 4)])
        if not subpixel:  # integer centres inside the range keep the spacing guarantee
            low, high = np.ceil(low), np.floor(high)
        lows.append(low)
        highs.append(high)
    index = np.stack(np.meshgrid(*[np.arange(len(a)) for a in lows], indexing="ij"), -1)
    index = index.reshape(-1, len(shape))
    if count is not None:
        integer = isinstance(count, (int, np.integer)) and not isinstance(count, bool)
        if not integer or not 1 <= count <= len(index):
            raise ValueError(
                f"count: expected an integer in 1..{len(index)} (the cells of side "
                f"{cell:g} px in shape {shape}), got {count!r}"
            )
        index = index[np.sort(generator.choice(len(index), int(count), replace=False))]
    low = np.stack([lows[a][index[:, a]] for a in range(len(shape))], -1)
    high = np.stack([highs[a][index[:, a]] for a in range(len(shape))], -1)
    if subpixel:
        positions = generator.uniform(low, high)
    else:
        positions = generator.integers(low.astype(np.int64), high.astype(np.int64) + 1)
    positions = positions.astype(np.float64)
    density = np.zeros(shape)
    if sigma == 0:
        density[tuple(positions.astype(np.int64).T)] = 1.0
    else:
        reach = int(np.ceil(4 * sigma))
        for center in positions:
            # Separable: the bead is an outer product of 1D Gaussians over a local window.
            window, profiles = [], []
            for c, n in zip(center, shape, strict=True):
                lo, hi = max(0, int(np.floor(c)) - reach), min(n, int(np.ceil(c)) + reach + 1)
                window.append(slice(lo, hi))
                profiles.append(np.exp(-((np.arange(lo, hi) - c) ** 2) / (2 * sigma**2)))
            bead = profiles[0]
            for profile in profiles[1:]:
                bead = np.multiply.outer(bead, profile)
            density[tuple(window)] += bead
    return _unit_peak(density), positions


def make_color(
    name: str,
    shape: tuple[int, int],
    *,
    rng: np.random.Generator | int | None = None,
    **options,
) -> np.ndarray:
    """Make a colour (RGB) intensity image, e.g. a scene for a lensless colour camera.

    Parameters
    ----------
    name : str
        The path of an image file (PNG, TIFF, GIF, JPEG): its red, green and blue channels (alpha
        dropped; a grey image gives three equal channels), divided by their common maximum so
        that the colour balance is kept, resized to cover ``shape`` and centre-cropped. Options
        ``frame`` and ``box`` as in :func:`make_density` (e.g. ``box=(30, 210, 254, 472)`` keeps
        the recovered video panel of ``Diffcam-tennis.gif``, its frame label included).
        Deterministic.

        Or one of :data:`DENSITIES` (with its options): the 2D density times a smooth random
        colour field, each channel ``0.2 + 0.8 * sigmoid(g)`` of an independent unit Gaussian
        random field ``g`` with correlation length a quarter of the smaller side, so that
        objects take different, slowly varying hues. Random (``"usaf"``: random colours only).
    shape : tuple of int
        ``(H, W)`` in pixels, each at least :data:`MIN_SIZE_PX`.
    rng : numpy.random.Generator or int, optional
        Random generator (or seed) for the densities and colours; ``None`` draws fresh entropy.
    **options
        Options of the density or of the image file, as in :func:`make_density`.

    Returns
    -------
    ndarray, shape (H, W, 3), float32
        RGB intensity (relative units) >= 0 with maximum 1 over all channels.

    Raises
    ------
    ValueError
        As :func:`make_density`, and for a shape that is not ``(H, W)``.
    """
    shape = check_shape("shape", shape, ndim=2, minimum=MIN_SIZE_PX)
    if isinstance(name, str) and name not in DENSITIES and _is_image_path(name):
        _check_options(name, options, ("frame", "box"))
        image = _crop_box(_read_image(Path(name), _check_frame(options.get("frame", 0))), options)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        if image.ndim != 3 or image.shape[-1] < 3 or min(image.shape[:2]) < 2:
            raise ValueError(f"name: {name} is not a 2D colour or grey image (shape {image.shape})")
        rgb = np.clip(image[..., :3], 0.0, None)
        channels = _cover_and_crop([rgb[..., c] for c in range(3)], shape)
        return _unit_peak(np.stack(channels, -1))
    generator = np.random.default_rng(rng)
    density = make_density(name, shape, rng=generator, **options).astype(np.float64)
    length = _COLOR_LENGTH * min(shape)
    hues = [_texture(shape, length / np.sqrt(2.0), generator) for _ in range(3)]
    colour = np.stack([_COLOR_FLOOR + (1 - _COLOR_FLOOR) / (1 + np.exp(-h)) for h in hues], -1)
    return _unit_peak(density[..., None] * colour)


def _check_density_shape(shape) -> tuple[int, ...]:
    dims = check_shape("shape", shape, ndim=(2, 3))
    if min(dims[-2:]) < MIN_SIZE_PX:
        raise ValueError(
            f"shape: expected (H, W) or (Z, H, W) with H and W >= {MIN_SIZE_PX} px and Z >= 1, "
            f"got {shape!r}"
        )
    return dims


def _check_options(name: str, options: dict, accepted: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"options: unknown option(s) {unknown} for {name!r}; accepted: {list(accepted)}"
        )


def _check_count(count, low: int, high: int, rng: np.random.Generator) -> int:
    """``count`` as an int >= 1, or a random draw in ``low..high`` when it is None."""
    if count is None:
        return int(rng.integers(low, high + 1))
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count: expected an integer >= 1, got {count!r}")
    return int(count)


def _check_frame(frame) -> int:
    if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or frame < 0:
        raise ValueError(f"frame: expected an integer frame index >= 0, got {frame!r}")
    return int(frame)


def _unit_peak(density: np.ndarray) -> np.ndarray:
    """Clip at 0 (resampling can ring a hair below) and scale the maximum to 1; float32."""
    density = np.clip(density, 0.0, None)
    return _normalize_max(density, 1.0).astype(np.float32)


def _crop_box(image: np.ndarray, options: dict) -> np.ndarray:
    box = options.get("box")
    if box is None:
        return image
    height, width = image.shape[:2]
    try:
        r0, r1, c0, c1 = (int(v) for v in box)
        exact = all(not isinstance(v, bool) and int(v) == v for v in box)
    except (TypeError, ValueError):
        exact = False
    if not exact or not (0 <= r0 < r1 <= height and 0 <= c0 < c1 <= width):
        raise ValueError(
            f"box: expected (row_start, row_stop, col_start, col_stop) integers inside the "
            f"{height} x {width} px image, got {box!r}"
        )
    return image[r0:r1, c0:c1]


def _grey_from_file(path: Path, shape: tuple[int, int], frame=0, box=None) -> np.ndarray:
    """Grey level of an image file in [0, 1] (min to max), covering and cropped to ``shape``."""
    image = _crop_box(_read_image(path, _check_frame(frame)), {"box": box})
    if image.ndim == 3:  # colour: drop alpha, average the channels
        image = image[..., :3].mean(axis=-1)
    if image.ndim != 2 or min(image.shape) < 2:
        raise ValueError(f"name: {path} is not a 2D image (shape {image.shape})")
    span = image.max() - image.min()
    grey = (image - image.min()) / span if span > 0 else np.zeros_like(image)
    (grey,) = _cover_and_crop([grey], shape)
    return grey


def _extrude(image: np.ndarray, shape: tuple[int, ...], slab_fwhm_px) -> np.ndarray:
    """A 2D image as is, or as a thin slab (Gaussian axial profile) of a (Z, H, W) volume."""
    if len(shape) == 2:
        if slab_fwhm_px is not None:
            raise ValueError("slab_fwhm_px: only for a 3D shape (Z, H, W)")
        return image
    depth = shape[0]
    fwhm = max(1.0, depth / 4) if slab_fwhm_px is None else slab_fwhm_px
    fwhm = check_positive("slab_fwhm_px", fwhm, "z steps")
    z = np.arange(depth) - (depth - 1) / 2
    profile = np.exp(-4 * np.log(2) * z**2 / fwhm**2)
    return profile[:, None, None] * image[None]


def _local_box(center, reach, shape) -> tuple[slice, ...]:
    """Slices of the canvas within ``reach`` (px, per axis) of ``center``."""
    return tuple(
        slice(max(0, int(np.floor(c - r))), min(n, int(np.ceil(c + r)) + 1))
        for c, r, n in zip(center, reach, shape, strict=True)
    )


def _cells_density(
    shape: tuple[int, ...], rng: np.random.Generator, count: int | None = None
) -> np.ndarray:
    ndim = len(shape)
    lateral = shape[-2:]
    size = min(lateral)
    count = _check_count(count, 3, 6, rng)
    # Granules: one fine texture (~size/64 px) shared by the cells, its bright half up to 1 std,
    # so that the cytoplasm stays at 25-60 % of the membrane.
    granules = np.clip(_texture(shape, max(1.0, size / 64), rng), 0.0, 1.0)
    shell_px = max(0.7, 0.006 * size)  # membrane half-thickness (Gaussian sigma), px
    density = np.zeros(shape)
    placed: list[tuple[float, float, float]] = []
    for _ in range(count):
        major = rng.uniform(0.08, 0.18) * size
        for _attempt in range(50):  # mostly apart, as in a culture (they may touch)
            center_yx = (rng.uniform(0.2, 0.8) * lateral[0], rng.uniform(0.2, 0.8) * lateral[1])
            if all(
                np.hypot(center_yx[0] - y, center_yx[1] - x) > 0.8 * (major + m)
                for y, x, m in placed
            ):
                break
        placed.append((*center_yx, major))
        axes = [major, major * rng.uniform(0.55, 0.9)]
        angle = rng.uniform(0.0, np.pi)
        center = list(center_yx)
        if ndim == 3:
            # Flat and near the middle plane, so that the cell closes well inside Z.
            axes.append(max(1.0, min(axes[1], shape[0] / 4) * rng.uniform(0.7, 1.0)))
            center.insert(0, (shape[0] - 1) / 2 + rng.uniform(-0.05, 0.05) * shape[0])
        n_offset = rng.uniform(-0.25, 0.25, size=2) * axes[1]
        n_scale = (rng.uniform(0.3, 0.45), rng.uniform(0.35, 0.5))
        box = _local_box(center, [1.3 * major + 3 * shell_px] * ndim, shape)
        coords = np.ogrid[box]
        distance = _ellipsoid_distance(coords, center, axes, angle)
        n_center = list(center)
        n_center[-2] += n_offset[0]
        n_center[-1] += n_offset[1]
        n_axes = [axes[0] * n_scale[0], axes[1] * n_scale[1]] + (
            [axes[2] * 0.6] if ndim == 3 else []
        )
        n_distance = _ellipsoid_distance(coords, n_center, n_axes, angle)
        shell = np.exp(-0.5 * (distance / shell_px) ** 2)
        body = 0.5 * (1.0 - np.tanh(distance / shell_px))
        nucleus = 0.5 * (1.0 - np.tanh(n_distance / shell_px))
        cytoplasm = body * (0.25 + 0.35 * granules[box]) * (1.0 - 0.8 * nucleus)
        density[box] += shell + cytoplasm
    return density


def _ellipsoid_distance(coords, center, axes, angle) -> np.ndarray:
    """Signed distance (px, negative inside) from the surface of an ellipsoid, to first order.

    The ellipsoid is turned by ``angle`` in the (y, x) plane; ``axes`` are its (major, minor[,
    axial]) semi-axes in px. With ``rho`` the normalised radius (1 on the surface), the distance
    is ``(rho - 1) / |grad rho|``, exact on the surface's normals near it.
    """
    dy, dx = coords[-2] - center[-2], coords[-1] - center[-1]
    parts = [dx * np.cos(angle) + dy * np.sin(angle), -dx * np.sin(angle) + dy * np.cos(angle)]
    if len(coords) == 3:
        parts.append(coords[0] - center[0])
    rho = np.sqrt(sum((p / a) ** 2 for p, a in zip(parts, axes, strict=True)))
    # |grad rho| = |(p_i / a_i^2)| / rho; bounded below by 1 / max(axes) on the surface, which
    # also stands in at the centre, where it is undefined.
    slope = np.sqrt(sum((p / a**2) ** 2 for p, a in zip(parts, axes, strict=True)))
    slope = np.maximum(slope / np.maximum(rho, 1e-12), 1.0 / max(axes))
    return (rho - 1.0) / slope


def _fold(values: np.ndarray, size: int) -> np.ndarray:
    """Reflect coordinates into [0, size - 1] (continuous: a curve folds back at the walls)."""
    if size == 1:
        return np.zeros_like(values)
    period = 2.0 * (size - 1)
    values = np.mod(values, period)
    return np.where(values > size - 1, period - values, values)


def _filaments(
    shape: tuple[int, ...],
    rng: np.random.Generator,
    count: int | None = None,
    width_px: float = 1.0,
) -> np.ndarray:
    ndim = len(shape)
    lateral = shape[-2:]
    size = min(lateral)
    count = _check_count(count, 8, 16, rng)
    width = check_positive("width_px", width_px, "px")
    step = _FILAMENT_STEP_PX
    points, weights = [], []
    for _ in range(count):
        length = rng.uniform(0.4, 1.2) * size
        persistence = rng.uniform(0.3, 1.0) * size
        steps = int(np.ceil(length / step))
        middle = [rng.uniform(0.1, 0.9) * (n - 1) for n in lateral]
        # Worm-like chain: the heading diffuses with variance step / persistence per step.
        heading = rng.uniform(0.0, 2 * np.pi) + np.cumsum(
            rng.normal(0.0, np.sqrt(step / persistence), steps)
        )
        if ndim == 3:
            # Bounded axial slope: the elevation is a squashed random walk, |slope| <= 0.3.
            walk = rng.uniform(-1, 1) + np.cumsum(
                rng.normal(0.0, np.sqrt(step / persistence), steps)
            )
            elevation = 0.3 * np.tanh(walk)
            z0 = rng.uniform(0.2, 0.8) * (shape[0] - 1)
            z = _fold(z0 + step * np.cumsum(np.sin(elevation)), shape[0])
            flat = np.cos(elevation)
        else:
            flat = 1.0
        y = step * np.cumsum(flat * np.sin(heading))
        x = step * np.cumsum(flat * np.cos(heading))
        # The curve's middle point is drawn inside the canvas, so that most of it shows.
        y += middle[0] - y[steps // 2]
        x += middle[1] - x[steps // 2]
        coords = [y, x] if ndim == 2 else [z, y, x]
        points.append(np.stack(coords, -1))
        weights.append(np.full(steps, rng.uniform(0.6, 1.0) * step))
    density = _splat(np.concatenate(points), np.concatenate(weights), shape)
    return ndimage.gaussian_filter(density, width, mode="constant")


def _splat(points: np.ndarray, weights: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Deposit weighted points on the grid with linear interpolation (points outside dropped)."""
    density = np.zeros(shape)
    base = np.floor(points).astype(np.int64)
    frac = points - base
    for corner in np.ndindex(*([2] * len(shape))):
        index = base + np.array(corner)
        weight = weights * np.prod(np.where(np.array(corner), frac, 1.0 - frac), axis=-1)
        inside = np.all((index >= 0) & (index < np.array(shape)), axis=-1)
        np.add.at(density, tuple(index[inside].T), weight[inside])
    return density
