"""Writers for reconstruction results: OME-TIFF stacks, comparison / motion figures, videos.

Figures are drawn on :class:`matplotlib.figure.Figure` objects directly (Agg canvas), never through
``pyplot``, so writing outputs is thread-safe and leaves no global state behind. Every writer takes
2D images (H, W) and 3D volumes (Z, H, W); volumes are shown as orthogonal views or projections.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Re-exported: TIFF writing lives in nstm.io.tiff next to its reader.
from .tiff import save_tiff as save_tiff

__all__ = ["save_comparison_figure", "save_motion_figure", "save_tiff", "save_video"]

VolumeView = Literal["auto", "mip", "middle"]

_ROBUST_PERCENTILES = (0.5, 99.5)
_DPI = 120
_VOLUME_VIEWS = ("auto", "mip", "middle")


def save_comparison_figure(
    path: str | os.PathLike[str],
    panels: Mapping[str, Mapping[str, np.ndarray]],
    *,
    channels: Sequence[str] = ("absorption", "phase"),
    units: Mapping[str, str] | None = None,
    title: str | None = None,
    volume_view: VolumeView = "auto",
    spacing_um: Mapping[str, float] | None = None,
) -> None:
    """Save a grid comparing methods: one row per channel, one column per method.

    Each channel (row) shares one grey colour scale across methods, set by the 0.5/99.5
    percentiles of all its panels, so differences in contrast are real.

    Volumes (Z, H, W) are drawn as orthogonal views: the XY view with the XZ view below it and
    the YZ view to its right, sharing the image axes (the usual orthoview). What each view shows
    is ``volume_view``, chosen per channel and written in the row label.

    Parameters
    ----------
    path : str or path-like
        Output PNG file.
    panels : dict of str to dict of str to ndarray
        ``{method: {channel: image}}`` with images (H, W) or volumes (Z, H, W) -- all of one
        kind -- e.g. ``{"NSTM (t=-1.00)": {"absorption": a, "phase": p},
        "Tikhonov (static)": {...}, "Ground truth": {...}}``. Columns follow the dict order.
    channels : sequence of str, default ("absorption", "phase")
        Channels to show, one row each; every method must provide all of them.
    units : dict of str to str, optional
        Colourbar unit per channel, e.g. ``{"phase": "rad"}``; channels without one get no unit.
    title : str, optional
        Figure title.
    volume_view : {"auto", "mip", "middle"}, default "auto"
        For volumes: ``"mip"`` shows maximum-intensity projections along z (XY), y (XZ) and
        x (YZ); ``"middle"`` shows the planes through the volume centre. ``"auto"`` uses MIPs
        for a channel whose values are all >= 0 (intensities) and middle planes for a signed
        channel (e.g. phase), whose negative features a maximum projection would hide.
    spacing_um : dict of str to float, optional
        Voxel size ``{"Z": dz, "Y": dy, "X": dx}`` (any unit, only ratios matter) so that
        orthoviews of anisotropic voxels keep their physical proportions; default cubic voxels.

    Raises
    ------
    ValueError
        If ``panels`` or ``channels`` is empty, a method lacks a channel, images are neither
        all 2D nor all 3D, or ``volume_view`` / ``spacing_um`` is invalid.
    TypeError
        If an entry of ``panels`` is not a mapping or an image is not real-valued.
    """
    if not panels:
        raise ValueError("panels: expected at least one method, got an empty mapping")
    channels = list(channels)
    if not channels:
        raise ValueError("channels: expected at least one channel name, got none")
    _check_view(volume_view)
    units = dict(units or {})
    methods = list(panels)
    images: dict[str, list[np.ndarray]] = {c: [] for c in channels}
    for method in methods:
        entry = panels[method]
        if not isinstance(entry, Mapping):
            raise TypeError(
                f"panels[{method!r}]: expected a dict of channel -> (H, W) or (Z, H, W) image, "
                f"got {type(entry).__name__}"
            )
        for channel in channels:
            if channel not in entry:
                raise ValueError(
                    f"panels[{method!r}]: missing channel {channel!r}; has {list(entry)}, "
                    f"expected all of {channels}"
                )
            images[channel].append(_real_nd(f"panels[{method!r}][{channel!r}]", entry[channel]))
    ndim = images[channels[0]][0].ndim
    for channel in channels:
        for method, img in zip(methods, images[channel], strict=True):
            if img.ndim != ndim:
                raise ValueError(
                    f"panels[{method!r}][{channel!r}]: expected {ndim}D like the first panel "
                    f"(all images (H, W) or all volumes (Z, H, W)), got shape {img.shape}"
                )
    scale = _voxel_scale(spacing_um, ndim)

    # Each cell: the image, or for volumes the orthoview (XY | YZ over XZ | empty), with sides
    # in physical proportion.
    z, h, w = (1, *images[channels[0]][0].shape) if ndim == 2 else images[channels[0]][0].shape
    side_x, side_y, side_z = w * scale[2], h * scale[1], z * scale[0]
    cell_w, cell_h = (side_x, side_y) if ndim == 2 else (side_x + side_z, side_y + side_z)
    panel_w = 2.8
    panel_h = float(np.clip(panel_w * cell_h / cell_w, 0.8, 2.5 * panel_w))
    fig = Figure(
        figsize=(panel_w * len(methods) + 1.2, panel_h * len(channels) + (0.8 if title else 0.5)),
        layout="constrained",
    )
    if ndim == 2:
        grid = fig.add_gridspec(len(channels), len(methods))
    else:  # one flat grid (2 x 2 per cell) so each row's colourbar spans the whole row
        grid = fig.add_gridspec(
            2 * len(channels),
            2 * len(methods),
            width_ratios=[side_x, side_z] * len(methods),
            height_ratios=[side_y, side_z] * len(channels),
        )
    for row, channel in enumerate(channels):
        view = _resolve_view(volume_view, images[channel]) if ndim == 3 else None
        shown = [_orthoviews(img, view) if view else (img,) for img in images[channel]]
        vmin, vmax = _robust_clim([v for views in shown for v in views])
        row_axes = []
        for col, (method, views) in enumerate(zip(methods, shown, strict=True)):
            if ndim == 2:
                ax = fig.add_subplot(grid[row, col])
                im = ax.imshow(
                    views[0], cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest",
                    aspect=scale[1] / scale[2],
                )  # fmt: skip
                cell_axes = [ax]
            else:
                cell_axes = _draw_orthoview(fig, grid, 2 * row, 2 * col, views, vmin, vmax, scale)
                ax = cell_axes[0]
                im = ax.images[0]
            for a in cell_axes:
                a.set_xticks([])
                a.set_yticks([])
            if row == 0:
                ax.set_title(method, fontsize=10)
            if col == 0:
                ax.set_ylabel(channel if view is None else f"{channel} ({view})", fontsize=10)
            row_axes.extend(cell_axes)
        cbar = fig.colorbar(im, ax=row_axes, shrink=0.9, pad=0.01)
        unit = units.get(channel)
        cbar.set_label(f"{channel} [{unit}]" if unit else channel, fontsize=9)
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
    spacing_um: Mapping[str, float] | None = None,
) -> None:
    """Save one panel per frame showing the in-plane motion field ``(dy, dx)``.

    The scene at time ``t`` and pixel ``r`` is the canonical scene at ``r + motion[t, r]``; each
    arrow starts at ``r`` and points to ``r + motion``, i.e. to where that point sits in the
    canonical scene. Arrow lengths are multiplied by one common factor across panels (stated in
    the figure title) so the longest arrows span ~90% of the spacing; nothing is subtracted from
    the field.

    For 3D motion ``(frames, Z, H, W, 3)`` the middle z plane is shown: its ``(dy, dx)`` arrows
    as for 2D in the upper panels, and its axial displacement ``dz`` as a diverging colour map
    in a second row of panels below.

    Parameters
    ----------
    path : str or path-like
        Output PNG file.
    motion : (frames, H, W, 2) or (frames, Z, H, W, 3) ndarray
        Displacement per frame in pixels: ``(dy, dx)`` for 2D, ``(dz, dy, dx)`` for 3D.
    times : (frames,) ndarray
        Normalized time of each frame in ``[-1, 1]``, used for the panel titles ``t = ...``.
    background : (H, W) or (Z, H, W) ndarray, optional
        Image shown in grey under the arrows (arrows then coloured by magnitude); of a volume,
        the middle plane is shown. Default: the in-plane displacement magnitude is the image.
    step : int, optional
        Arrow spacing in pixels; default about 16 arrows along the longer side.
    spacing_um : dict of str to float, optional
        Pixel size per axis in µm (``{"Y": .., "X": ..}``, plus ``"Z"`` for 3D); the colour
        scales are then in µm instead of pixels. Arrows are always drawn on the pixel grid.

    Raises
    ------
    ValueError
        If the shapes disagree, values are non-finite, ``step < 1``, or ``spacing_um`` lacks
        an axis or holds a non-positive size.
    TypeError
        If ``motion`` or ``background`` is not real-valued.
    """
    motion = np.asarray(motion)
    if motion.dtype.kind not in "biuf":
        raise TypeError(f"motion: expected a real-valued array, got dtype {motion.dtype}")
    is_3d = motion.ndim == 5 and motion.shape[-1] == 3
    if not (is_3d or (motion.ndim == 4 and motion.shape[-1] == 2)):
        raise ValueError(
            "motion: expected shape (frames, H, W, 2) with (dy, dx) or (frames, Z, H, W, 3) "
            f"with (dz, dy, dx), in pixels; got {motion.shape}"
        )
    motion = motion.astype(np.float32)
    if not np.isfinite(motion).all():
        raise ValueError(
            f"motion: expected finite values, got {int((~np.isfinite(motion)).sum())} non-finite"
        )
    frames = motion.shape[0]
    if is_3d:
        z_mid = motion.shape[1] // 2
        dz_px = motion[:, z_mid, ..., 0]
        plane = motion[:, z_mid, ..., 1:]  # (frames, H, W, 2): (dy, dx) of the middle plane
    else:
        plane = motion
    h, w = plane.shape[1:3]
    times = np.asarray(times, dtype=np.float64)
    if times.shape != (frames,):
        raise ValueError(
            f"times: expected shape (frames,) = ({frames},) to match motion, got {times.shape}"
        )
    if background is not None:
        background = _real_nd("background", background)
        if background.ndim == 3 and is_3d:
            background = background[background.shape[0] // 2]
        if background.shape != (h, w):
            raise ValueError(
                f"background: expected shape (H, W) = {(h, w)} to match motion"
                f"{' (or (Z, H, W) for 3D motion)' if is_3d else ''}, got {background.shape}"
            )
    if step is None:
        step = max(1, round(max(h, w) / 16))
    if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 1:
        raise ValueError(f"step: expected a positive integer number of pixels, got {step!r}")
    sz, sy, sx, unit = _motion_scale(spacing_um, is_3d)

    magnitude_px = np.hypot(plane[..., 0], plane[..., 1])  # (frames, H, W), pixels: arrow sizes
    magnitude = np.hypot(plane[..., 0] * sy, plane[..., 1] * sx)  # in `unit`: colours
    mag_max = float(np.percentile(magnitude, 99.5)) or 1.0
    # Common arrow gain so the longest arrows span ~90% of the arrow spacing.
    gain = 0.9 * step / (float(np.percentile(magnitude_px, 99.5)) or 1.0)
    ys = np.arange(step // 2, h, step)
    xs = np.arange(step // 2, w, step)
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")

    ncols = min(frames, 4)
    nrows = math.ceil(frames / ncols)
    blocks = 2 if is_3d else 1  # 3D: a second block of rows for dz
    panel_w = 3.0
    panel_h = float(np.clip(panel_w * h / w, 0.8, 2.5 * panel_w))
    fig = Figure(
        figsize=(panel_w * ncols + 1.4, panel_h * nrows * blocks + 0.6), layout="constrained"
    )
    axes = fig.subplots(nrows * blocks, ncols, squeeze=False)
    plane_axes, dz_axes = axes[:nrows], axes[nrows:]
    mappable = None
    for k, ax in enumerate(plane_axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= frames:
            ax.set_visible(False)
            continue
        dy = plane[k, grid_y, grid_x, 0]
        dx = plane[k, grid_y, grid_x, 1]
        if background is None:
            mappable = ax.imshow(magnitude[k], cmap="viridis", vmin=0, vmax=mag_max)
            color_kw: dict[str, Any] = {"color": "white"}
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
    cbar = fig.colorbar(mappable, ax=plane_axes.ravel().tolist(), shrink=0.9, pad=0.01)
    cbar.set_label(f"|(dy, dx)| [{unit}]")
    what = f"arrows from r to r + (dy, dx) (canonical position), lengths x{gain:.3g}"
    if is_3d:
        dz = dz_px * sz
        dz_lim = float(np.percentile(np.abs(dz), 99.5)) or 1.0
        for k, ax in enumerate(dz_axes.flat):
            ax.set_xticks([])
            ax.set_yticks([])
            if k >= frames:
                ax.set_visible(False)
                continue
            dz_im = ax.imshow(dz[k], cmap="RdBu_r", vmin=-dz_lim, vmax=dz_lim)
            ax.set_title(f"dz, t = {times[k]:.2f}", fontsize=10)
        cbar = fig.colorbar(dz_im, ax=dz_axes.ravel().tolist(), shrink=0.9, pad=0.01)
        cbar.set_label(f"dz [{unit}]")
        what = f"middle plane z = {z_mid} of {motion.shape[1]}: {what}; below: dz"
    fig.suptitle(what, fontsize=9)
    fig.savefig(path, dpi=_DPI)


def save_video(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    *,
    fps: float = 10,
    clim: tuple[float, float] | None = None,
    labels: Sequence[str] | None = None,
    volume_view: VolumeView = "auto",
) -> None:
    """Save a frame sequence as an animated GIF (or MP4 when imageio-ffmpeg is installed).

    Frames are mapped to uint8 with one intensity window for the whole sequence, so brightness
    does not flicker between frames. A sequence of volumes is shown as one image per frame: the
    maximum projection along z or the middle z plane (``volume_view``).

    Parameters
    ----------
    path : str or path-like
        Output file ending in ``.gif`` or ``.mp4``.
    frames : (T, H, W), (T, H, W, 3) or (T, Z, H, W) ndarray
        Grey frames, RGB frames, or grey volumes. A 4D array whose last axis has length 3 is
        read as RGB. uint8 input is written as is when ``clim`` is not given.
    fps : float, default 10
        Frames per second.
    clim : (float, float), optional
        Intensity window ``(low, high)`` mapped to black/white; default the 0.5/99.5
        percentiles over all frames.
    labels : sequence of str, optional
        One text label per frame (e.g. ``"t = 0.25"``) burned into the top-left corner.
    volume_view : {"auto", "mip", "middle"}, default "auto"
        For volumes (T, Z, H, W): ``"mip"`` shows the maximum projection along z,
        ``"middle"`` the plane ``Z // 2``; ``"auto"`` takes the projection when all values are
        >= 0 and the middle plane for signed data (e.g. phase), whose negative features a
        maximum projection would hide.

    Raises
    ------
    ValueError
        If the path extension, frame shape, ``fps``, ``clim``, ``labels`` or ``volume_view``
        are invalid.
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
    if arr.ndim not in (3, 4) or arr.shape[0] < 1:
        raise ValueError(
            f"frames: expected shape (T, H, W), (T, H, W, 3) or (T, Z, H, W) with T >= 1, "
            f"got {arr.shape}"
        )
    _check_view(volume_view)
    if arr.ndim == 4 and arr.shape[-1] != 3:  # volumes: one image per frame
        arr = _project_z(arr, _resolve_view(volume_view, [arr]), axis=1)
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
        # is_batch: otherwise a (T, H, W) stack with W = 3 or 4 would be read as one RGB(A) image.
        iio.imwrite(path, video, extension=".gif", is_batch=True, duration=1000.0 / fps, loop=0)
        return

    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        raise ImportError(
            f"path: writing {path.name} (.mp4) needs the imageio-ffmpeg package (pip install "
            "'nstm-imaging[video]', or pip install imageio-ffmpeg); or save as .gif"
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


def _real_nd(name: str, value: np.ndarray) -> np.ndarray:
    """A real (H, W) image or (Z, H, W) volume as float32."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real-valued image, got dtype {arr.dtype}")
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ValueError(f"{name}: expected shape (H, W) or (Z, H, W), got {arr.shape}")
    return arr.astype(np.float32)


def _check_view(view: str) -> None:
    if view not in _VOLUME_VIEWS:
        raise ValueError(f"volume_view: expected one of {_VOLUME_VIEWS}, got {view!r}")


def _resolve_view(view: str, arrays: Sequence[np.ndarray]) -> str:
    """``"auto"`` -> ``"mip"`` when every finite value is >= 0, else ``"middle"``."""
    if view != "auto":
        return view
    signed = any(np.nanmin(a) < 0 for a in arrays if np.isfinite(a).any())
    return "middle" if signed else "mip"


def _project_z(volume: np.ndarray, view: str, axis: int = 0) -> np.ndarray:
    """Maximum projection (NaN ignored unless all-NaN) or middle plane along ``axis``."""
    if view == "mip":
        return np.fmax.reduce(volume, axis=axis)
    return np.take(volume, volume.shape[axis] // 2, axis=axis)


def _orthoviews(volume: np.ndarray, view: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """XY (H, W), XZ (Z, W) and YZ (H, Z) views of a (Z, H, W) volume."""
    if view == "mip":
        xy, xz, yz = (np.fmax.reduce(volume, axis=a) for a in (0, 1, 2))
    else:
        z, h, w = volume.shape
        xy, xz, yz = volume[z // 2], volume[:, h // 2], volume[:, :, w // 2]
    return xy, xz, yz.T


def _draw_orthoview(
    fig: Figure,
    grid: Any,
    row: int,
    col: int,
    views: tuple[np.ndarray, np.ndarray, np.ndarray],
    vmin: float,
    vmax: float,
    scale: tuple[float, float, float],
) -> list[Any]:
    """Draw XY, YZ (right of it) and XZ (below it) into the 2 x 2 block of ``grid`` whose top
    left is ``(row, col)``; returns the axes (XY, YZ, XZ)."""
    xy, xz, yz = views
    sz, sy, sx = scale
    kw = {"cmap": "gray", "vmin": vmin, "vmax": vmax, "interpolation": "nearest"}
    ax_xy = fig.add_subplot(grid[row, col])
    ax_xy.imshow(xy, aspect=sy / sx, **kw)
    ax_yz = fig.add_subplot(grid[row, col + 1], sharey=ax_xy)
    ax_yz.imshow(yz, aspect=sy / sz, **kw)
    ax_xz = fig.add_subplot(grid[row + 1, col], sharex=ax_xy)
    ax_xz.imshow(xz, aspect=sz / sx, **kw)
    for ax, label in ((ax_xy, "XY"), (ax_yz, "YZ"), (ax_xz, "XZ")):
        ax.text(
            0.02, 0.98, label, transform=ax.transAxes, va="top", ha="left", fontsize=6,
            color="yellow",
        )  # fmt: skip
    return [ax_xy, ax_yz, ax_xz]


def _voxel_scale(spacing: Mapping[str, float] | None, ndim: int) -> tuple[float, float, float]:
    """Relative (z, y, x) voxel size for aspect ratios; (1, 1, 1) when not given."""
    if spacing is None:
        return (1.0, 1.0, 1.0)
    needed = "ZYX"[-ndim:]
    return tuple(  # type: ignore[return-value]
        _spacing_value(spacing, a) if a in needed else 1.0 for a in "ZYX"
    )


def _motion_scale(
    spacing: Mapping[str, float] | None, is_3d: bool
) -> tuple[float, float, float, str]:
    """(z, y, x) µm per pixel and the unit of the colour scales: px unless spacing is given."""
    if spacing is None:
        return 1.0, 1.0, 1.0, "px"
    sz = _spacing_value(spacing, "Z") if is_3d else 1.0
    return sz, _spacing_value(spacing, "Y"), _spacing_value(spacing, "X"), "\u00b5m"


def _spacing_value(spacing: Mapping[str, float], axis: str) -> float:
    if not isinstance(spacing, Mapping):
        raise TypeError(
            "spacing_um: expected a dict of axis letter -> size in µm, got "
            f"{type(spacing).__name__}"
        )
    found = {str(k).upper(): v for k, v in spacing.items()}
    if axis not in found:
        raise ValueError(f"spacing_um: missing axis {axis!r}; got keys {list(spacing)}")
    value = found[axis]
    if isinstance(value, bool | str | bytes):
        raise TypeError(f"spacing_um[{axis!r}]: expected a number in µm, got {value!r}")
    size = float(value)
    if not (math.isfinite(size) and size > 0):
        raise ValueError(f"spacing_um[{axis!r}]: expected a positive, finite size, got {size}")
    return size


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
