"""The motion-blur data layout: an ``.npz`` with

* ``frames`` (frames, H, W): the recorded frames, real, finite;
* ``times`` (frames,): the centre of each exposure, normalized time in [-1, 1];
* ``exposure``: the length of every exposure, or one per frame (frames,), normalized time
  (each window must lie within [-1, 1]).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from ...validation import check_normalized_times, real_array

_KEYS = ("frames", "times", "exposure")


@dataclasses.dataclass(frozen=True)
class MotionBlurData:
    """Validated motion-blur measurements."""

    frames: np.ndarray
    """(frames, H, W) float32."""
    centres: np.ndarray
    """(frames,) exposure centres, normalized time."""
    exposures: np.ndarray
    """(frames,) exposure lengths, normalized time."""

    def __post_init__(self):
        frames = real_array("frames", self.frames, 3, "(frames, H, W)").astype(np.float32)
        n = frames.shape[0]
        centres = check_normalized_times("times", self.centres)
        if centres.shape != (n,):
            raise ValueError(
                f"times: expected one centre per frame, shape ({n},), got {centres.shape}"
            )
        exposures = np.asarray(self.exposures, np.float64)
        if exposures.shape not in ((), (n,)):
            raise ValueError(
                f"exposure: expected one length or one per frame ({n},), got {exposures.shape}"
            )
        exposures = np.broadcast_to(exposures, (n,)).copy()
        if not np.all(np.isfinite(exposures) & (exposures > 0)):
            raise ValueError(f"exposure: expected positive normalized durations, got {exposures}")
        if np.any(centres - exposures / 2 < -1 - 1e-6) or np.any(
            centres + exposures / 2 > 1 + 1e-6
        ):
            raise ValueError(
                "exposure: every window [time - exposure / 2, time + exposure / 2] must lie "
                "within the normalized times [-1, 1]"
            )
        object.__setattr__(self, "frames", frames)
        object.__setattr__(self, "centres", centres.astype(np.float32))
        object.__setattr__(self, "exposures", exposures.astype(np.float32))


def save_motion_blur(path: str | os.PathLike[str], data: MotionBlurData) -> None:
    """Write ``data`` as the ``.npz`` layout :func:`load_motion_blur` reads."""
    np.savez(path, frames=data.frames, times=data.centres, exposure=data.exposures)


def load_motion_blur(path: str | os.PathLike[str]) -> MotionBlurData:
    """Read and validate an ``.npz`` in the motion-blur layout (module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data: file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            stored = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path.name}: not a readable .npz file ({err})") from None
    missing = [k for k in _KEYS if k not in stored]
    if missing:
        raise ValueError(f"{path.name}: missing keys {missing}; expected {list(_KEYS)}")
    try:
        return MotionBlurData(stored["frames"], stored["times"], stored["exposure"])
    except (ValueError, TypeError) as err:
        raise type(err)(f"{path.name}: {err}") from None
