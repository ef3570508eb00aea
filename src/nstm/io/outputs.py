"""Writers for reconstruction results: ImageJ TIFF stacks, comparison / motion figures, videos.

Figures are drawn on :class:`matplotlib.figure.Figure` objects directly (Agg canvas), never through
``pyplot``, so writing outputs is thread-safe and leaves no global state behind.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import tifffile
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["save_comparison_figure", "save_motion_figure", "save_tiff", "save_video"]

# ImageJ hyperstacks store axes in this order; RGB ('S') is left out because ImageJ only
# supports it for uint8 and everything written here is float32.
_IMAGEJ_ORDER = "TZCYX"
_ROBUST_PERCENTILES = (0.5, 99.5)
_DPI = 120
_DEFAULT_UNITS = {"absorption": "log-amplitude", "phase": "rad"}


def save_tiff(
    path: str | os.PathLike[str],
    array: np.ndarray,
    *,
    axes: str,
    pixel_size_um: float | None = None,
) -> None:
    """Write ``array`` as an ImageJ-compatible float32 TIFF that Fiji/napari open with its axes.

    Parameters
    ----------
    path : str or path-like
        Output file, ending in ``.tif`` or ``.tiff``.
    array : ndarray
        Real-valued data with one axis per letter of ``axes``; stored as float32.
    axes : str
        Axis names, one per dimension, from ``"TZCYX"`` (time, depth, channel, row, column),
        e.g. ``"YX"``, ``"TYX"`` or ``"TYXC"`` for a motion field (frames, H, W, 2). Must contain
        ``Y`` and ``X``. Axes are transposed into ImageJ's ``TZCYX`` order before writing, so
        ``"TYXC"`` is stored as ``"TCYX"``.
    pixel_size_um : float, optional
        Sample-plane pixel size in µm, stored as the X/Y resolution with unit ``um``.

    Raises
    ------
    ValueError
        If ``axes`` is invalid or ``array.ndim != len(axes)``, or ``pixel_size_um <= 0``.
    TypeError
        If ``array`` is not real-valued numeric.
    """
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        raise ValueError(f"path: expected a file ending in .tif or .tiff, got {path}")
    arr = np.asarray(array)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"array: expected a real-valued numeric array, got dtype {arr.dtype}")
    if not isinstance(axes, str):
        raise TypeError(f"axes: expected a string such as 'TYX', got {type(axes).__name__}")
    axes = axes.upper()
    letters = set(axes)
    if len(letters) != len(axes) or not letters <= set(_IMAGEJ_ORDER) or not {"Y", "X"} <= letters:
        raise ValueError(
            f"axes: expected distinct letters from {_IMAGEJ_ORDER!r} including 'Y' and 'X' "
            f"(e.g. 'TYX'), got {axes!r}"
        )
    if arr.ndim != len(axes):
        raise ValueError(
            f"array: expected {len(axes)} dimensions to match axes {axes!r}, got shape {arr.shape}"
        )
    ordered = "".join(a for a in _IMAGEJ_ORDER if a in axes)
    arr = np.ascontiguousarray(np.transpose(arr, [axes.index(a) for a in ordered]), np.float32)

    metadata: dict[str, object] = {"axes": ordered}
    resolution = None
    if pixel_size_um is not None:
        pixel_size_um = float(pixel_size_um)
        if not (np.isfinite(pixel_size_um) and pixel_size_um > 0):
            raise ValueError(f"pixel_size_um: expected a positive size in µm, got {pixel_size_um}")
        resolution = (1.0 / pixel_size_um, 1.0 / pixel_size_um)  # pixels per µm
        metadata["unit"] = "um"
    tifffile.imwrite(path, arr, imagej=True, resolution=resolution, metadata=metadata)


def save_comparison_figure(
    path: str | os.PathLike[str],
    panels: Mapping[str, Mapping[str, np.ndarray]],
    *,
    channels: Sequence[str] = ("absorption", "phase"),
    units: Mapping[str, str] | None = None,
    title: str | None = None,
) -> None:
    """Save a grid comparing methods: one row per channel, one column per method.

    Each channel (row) shares one grey colour scale across methods, set by the 0.5/99.5
    percentiles of all its panels, so differences in contrast are real.

    Parameters
    ----------
    path : str or path-like
        Output PNG file.
    panels : dict of str to dict of str to (H, W) ndarray
        ``{method: {channel: image}}``, e.g. ``{"NSTM (t=-1.00)": {"absorption": a, "phase": p},
        "Tikhonov (static)": {...}, "Ground truth": {...}}``. Columns follow the dict order.
    channels : sequence of str, default ("absorption", "phase")
        Channels to show, one row each; every method must provide all of them.
    units : dict of str to str, optional
        Colourbar unit per channel; default ``{"absorption": "log-amplitude", "phase": "rad"}``.
    title : str, optional
        Figure title.

    Raises
    ------
    ValueError
        If ``panels`` or ``channels`` is empty, a method lacks a channel, or an image is not 2D.
    """
    if not panels:
        raise ValueError("panels: expected at least one method, got an empty mapping")
    channels = list(channels)
    if not channels:
        raise ValueError("channels: expected at least one channel name, got none")
    units = {**_DEFAULT_UNITS, **(units or {})}
    methods = list(panels)
    images: dict[str, list[np.ndarray]] = {c: [] for c in channels}
    for method in methods:
        entry = panels[method]
        if not isinstance(entry, Mapping):
            raise TypeError(
                f"panels[{method!r}]: expected a dict of channel -> (H, W) image, "
                f"got {type(entry).__name__}"
            )
        for channel in channels:
            if channel not in entry:
                raise ValueError(
                    f"panels[{method!r}]: missing channel {channel!r}; has {list(entry)}, "
                    f"expected all of {channels}"
                )
            img = _real_2d(f"panels[{method!r}][{channel!r}]", entry[channel])
            images[channel].append(img)

    h, w = images[channels[0]][0].shape
    panel_w = 2.8
    panel_h = float(np.clip(panel_w * h / w, 0.8, 2.5 * panel_w))
    fig = Figure(
        figsize=(panel_w * len(methods) + 1.2, panel_h * len(channels) + (0.8 if title else 0.5)),
        layout="constrained",
    )
    axes = fig.subplots(len(channels), len(methods), squeeze=False)
    for row, channel in enumerate(channels):
        vmin, vmax = _robust_clim(images[channel])
        for col, (method, img) in enumerate(zip(methods, images[channel], strict=True)):
            ax = axes[row, col]
            im = ax.imshow(img, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(method, fontsize=10)
            if col == 0:
                ax.set_ylabel(channel, fontsize=10)
        cbar = fig.colorbar(im, ax=axes[row, :].tolist(), shrink=0.9, pad=0.01)
        cbar.set_label(f"{channel} [{units.get(channel, 'a.u.')}]", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=_DPI)


def save_motion_figure(
    path: str | os.PathLike[str],
    motion: np.ndarray,
    times: np.ndarray,
    *,
    background: np.ndarray | None = None,
    step: int | None = None,
) -> None:
    """Save one panel per frame showing the motion field ``(dy, dx)`` in pixels.

    The scene at time ``t`` and pixel ``r`` is the canonical scene at ``r + motion[t, r]``; each
    arrow starts at ``r`` and points to ``r + motion``, i.e. to where that point sits in the
    canonical scene. Arrow lengths are multiplied by one common factor across panels (stated in
    the figure title) so the longest arrows span ~90% of the spacing; nothing is subtracted from
    the field.

    Parameters
    ----------
    path : str or path-like
        Output PNG file.
    motion : (frames, H, W, 2) ndarray
        Displacement ``(dy, dx)`` in pixels per frame.
    times : (frames,) ndarray
        Normalized time of each frame in ``[-1, 1]``, used for the panel titles ``t = ...``.
    background : (H, W) ndarray, optional
        Image shown in grey under the arrows (arrows then coloured by magnitude). Default: the
        displacement magnitude ``|motion|`` in pixels is shown as the image.
    step : int, optional
        Arrow spacing in pixels; default about 16 arrows along the longer side.

    Raises
    ------
    ValueError
        If the shapes disagree, values are non-finite, or ``step < 1``.
    """
    motion = np.asarray(motion)
    if motion.dtype.kind not in "biuf":
        raise TypeError(f"motion: expected a real-valued array, got dtype {motion.dtype}")
    if motion.ndim != 4 or motion.shape[-1] != 2:
        raise ValueError(
            f"motion: expected shape (frames, H, W, 2) with (dy, dx) in pixels, got {motion.shape}"
        )
    motion = motion.astype(np.float32)
    frames, h, w, _ = motion.shape
    if not np.isfinite(motion).all():
        raise ValueError(
            f"motion: expected finite values, got {int((~np.isfinite(motion)).sum())} non-finite"
        )
    times = np.asarray(times, dtype=np.float64)
    if times.shape != (frames,):
        raise ValueError(
            f"times: expected shape (frames,) = ({frames},) to match motion, got {times.shape}"
        )
    if background is not None:
        background = _real_2d("background", background)
        if background.shape != (h, w):
            raise ValueError(
                f"background: expected shape (H, W) = {(h, w)} to match motion, "
                f"got {background.shape}"
            )
    if step is None:
        step = max(1, round(max(h, w) / 16))
    if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 1:
        raise ValueError(f"step: expected a positive integer number of pixels, got {step!r}")

    magnitude = np.hypot(motion[..., 0], motion[..., 1])  # (frames, H, W), pixels
    mag_max = float(np.percentile(magnitude, 99.5)) or 1.0
    # Common arrow gain so the longest arrows span ~90% of the arrow spacing.
    gain = 0.9 * step / mag_max
    ys = np.arange(step // 2, h, step)
    xs = np.arange(step // 2, w, step)
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")

    ncols = min(frames, 4)
    nrows = math.ceil(frames / ncols)
    panel_w = 3.0
    panel_h = float(np.clip(panel_w * h / w, 0.8, 2.5 * panel_w))
    fig = Figure(figsize=(panel_w * ncols + 1.2, panel_h * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    mappable = None
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= frames:
            ax.set_visible(False)
            continue
        dy = motion[k, grid_y, grid_x, 0]
        dx = motion[k, grid_y, grid_x, 1]
        if background is None:
            mappable = ax.imshow(magnitude[k], cmap="viridis", vmin=0, vmax=mag_max)
            color_kw: dict[str, object] = {"color": "white"}
            quiver_args: tuple[np.ndarray, ...] = (grid_x, grid_y, dx, dy)
        else:
            lo, hi = _robust_clim([background])
            ax.imshow(background, cmap="gray", vmin=lo, vmax=hi)
            color_kw = {"cmap": "viridis", "clim": (0, mag_max)}
            quiver_args = (grid_x, grid_y, dx, dy, magnitude[k, grid_y, grid_x])
        # angles="xy" with the image's downward y axis makes +dy point down the rows.
        q = ax.quiver(
            *quiver_args,
            angles="xy",
            scale_units="xy",
            scale=1.0 / gain,
            width=0.006,
            **color_kw,
        )
        if background is not None:
            mappable = q
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.set_title(f"t = {times[k]:.2f}", fontsize=10)
    cbar = fig.colorbar(mappable, ax=axes.ravel().tolist(), shrink=0.9, pad=0.01)
    cbar.set_label("|displacement| [px]")
    fig.suptitle(
        f"arrows from r to r + (dy, dx) (canonical position), lengths x{gain:.3g}", fontsize=9
    )
    fig.savefig(path, dpi=_DPI)


def save_video(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    *,
    fps: float = 10,
    clim: tuple[float, float] | None = None,
    labels: Sequence[str] | None = None,
) -> None:
    """Save a frame sequence as an animated GIF (or MP4 when imageio-ffmpeg is installed).

    Frames are mapped to uint8 with one intensity window for the whole sequence, so brightness
    does not flicker between frames.

    Parameters
    ----------
    path : str or path-like
        Output file ending in ``.gif`` or ``.mp4``.
    frames : (T, H, W) or (T, H, W, 3) ndarray
        Grey or RGB frames. uint8 input is written as is when ``clim`` is not given.
    fps : float, default 10
        Frames per second.
    clim : (float, float), optional
        Intensity window ``(low, high)`` mapped to black/white; default the 0.5/99.5
        percentiles over all frames.
    labels : sequence of str, optional
        One text label per frame (e.g. ``"t = 0.25"``) burned into the top-left corner.

    Raises
    ------
    ValueError
        If the path extension, frame shape, ``fps``, ``clim`` or ``labels`` are invalid.
    ImportError
        For ``.mp4`` when the ``imageio-ffmpeg`` package is not installed.

    Notes
    -----
    GIF writers merge identical consecutive frames into one longer frame, so a sequence
    without any change may read back with fewer frames.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"path: expected a file ending in .gif or .mp4, got {path}")
    arr = np.asarray(frames)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"frames: expected a real-valued array, got dtype {arr.dtype}")
    if not (arr.ndim == 3 or (arr.ndim == 4 and arr.shape[-1] == 3)) or arr.shape[0] < 1:
        raise ValueError(
            f"frames: expected shape (T, H, W) or (T, H, W, 3) with T >= 1, got {arr.shape}"
        )
    fps = float(fps)
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps: expected a positive frame rate in frames/s, got {fps}")
    if labels is not None:
        labels = [str(s) for s in labels]
        if len(labels) != arr.shape[0]:
            raise ValueError(
                f"labels: expected one label per frame ({arr.shape[0]}), got {len(labels)}"
            )

    if arr.dtype == np.uint8 and clim is None:
        video = arr.copy()
    else:
        if clim is None:
            lo, hi = _robust_clim([arr])
        else:
            if len(clim) != 2:
                raise ValueError(f"clim: expected (low, high), got {clim!r}")
            lo, hi = float(clim[0]), float(clim[1])
            if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
                raise ValueError(f"clim: expected finite low < high, got ({lo}, {hi})")
        scaled = (np.nan_to_num(arr.astype(np.float32), nan=lo) - lo) / (hi - lo)
        video = np.round(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)

    if labels is not None:
        _burn_labels(video, labels)

    if suffix == ".gif":
        import imageio.v3 as iio

        # duration is per frame in ms; loop=0 repeats forever.
        iio.imwrite(path, video, extension=".gif", duration=1000.0 / fps, loop=0)
        return

    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        raise ImportError(
            f"path: writing {path.name} (.mp4) needs the imageio-ffmpeg package "
            "(pip install imageio-ffmpeg); or save as .gif"
        ) from None
    import imageio.v2 as iio2

    if video.ndim == 3:
        video = np.repeat(video[..., None], 3, axis=-1)
    # H.264 (yuv420p) needs even sizes: pad by edge replication rather than resampling.
    pad_h, pad_w = video.shape[1] % 2, video.shape[2] % 2
    video = np.pad(video, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    with iio2.get_writer(path, format="FFMPEG", fps=fps, macro_block_size=2) as writer:
        for frame in video:
            writer.append_data(frame)


# --- helpers -------------------------------------------------------------------------------------


def _real_2d(name: str, value: np.ndarray) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real-valued (H, W) image, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected shape (H, W), got {arr.shape}")
    return arr.astype(np.float32)


def _robust_clim(arrays: Sequence[np.ndarray]) -> tuple[float, float]:
    """0.5/99.5 percentiles over all finite values of ``arrays``; never an empty range."""
    values = np.concatenate([np.asarray(a, dtype=np.float32).ravel() for a in arrays])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(values, _ROBUST_PERCENTILES))
    if hi <= lo:  # constant image: centre a window on it, wide enough to exist in float32
        half = 0.5 * max(1.0, abs(lo))
        lo, hi = lo - half, lo + half
    return lo, hi


def _burn_labels(video: np.ndarray, labels: Sequence[str]) -> None:
    """Draw white text on a dark band at the top-left of each uint8 frame, in place."""
    h, w = video.shape[1:3]
    font_px = max(8, min(24, h // 16))
    band_h = min(h, int(font_px * 1.6))
    cache: dict[str, np.ndarray] = {}
    for frame, label in zip(video, labels, strict=True):
        if label not in cache:
            cache[label] = _render_text(label, w, band_h, font_px)
        alpha = cache[label]  # (band_h, w) in [0, 1], text coverage
        region = frame[:band_h].astype(np.float32)
        # Darken the band so the label reads on bright images, then add the text in white.
        region = region * 0.4
        if region.ndim == 3:
            alpha = alpha[..., None]
        region = region * (1 - alpha) + 255 * alpha
        frame[:band_h] = np.round(region).astype(np.uint8)


def _render_text(text: str, width: int, height: int, font_px: int) -> np.ndarray:
    """Rasterize ``text`` with matplotlib's Agg renderer; returns coverage (height, width)."""
    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    fig.text(
        2 / width,
        0.5,
        text,
        color="white",
        fontsize=font_px * 72 / dpi,  # points -> pixels at this dpi
        va="center",
        ha="left",
        family="DejaVu Sans",
    )
    fig.patch.set_facecolor("black")
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return rgba[:height, :width, 0].astype(np.float32) / 255.0
