"""Atomic checkpoints of (model, optimizer state, step, loss history).

One file holds everything: a JSON header line (step, history, format version) followed by the
pytree leaves serialized by Equinox. It is written to a temporary file in the same folder,
flushed to disk and renamed over the previous checkpoint, so a crash or Ctrl-C at any moment
leaves either the old or the new checkpoint, never a torn one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import equinox as eqx

# Why each earlier format cannot be resumed, for the refusal message. A model trained under
# another physics convention must not continue silently: its scene has the other sign.
_SUPERSEDED = {
    1: "the optimizer state has since become one flat vector per parameter group",
    2: (
        "it was written before nstm 0.2, which reads DPC source maps in the LED convention of "
        "the original NSTM (an LED at +u lights the sample with exp(-i 2 pi u.r)); nstm 0.1 "
        "read them as plane waves exp(+i 2 pi u.r), so a DPC model from it has the opposite "
        "phase sign"
    ),
}
FORMAT_VERSION = 3
CHECKPOINT_NAME = "checkpoint.eqx"


def save_checkpoint(
    path: str | Path,
    tree: Any,
    *,
    step: int,
    history: list[dict],
    train_seconds: float | None = None,
) -> None:
    """Atomically write ``tree`` (e.g. ``(model, opt_state)``) with its step, loss history and
    the training time spent on it so far (over every call, resumed ones included)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    header = {"format": FORMAT_VERSION, "step": int(step), "history": history}
    if train_seconds is not None:
        header["train_seconds"] = float(train_seconds)
    with open(tmp, "wb") as f:
        f.write(json.dumps(header).encode() + b"\n")
        eqx.tree_serialise_leaves(f, tree)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_header(f, path: Path) -> dict[str, Any]:
    """The JSON header of an open checkpoint, refused with a message unless this format."""
    try:
        header = json.loads(f.readline())
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: not an nstm checkpoint (no JSON header line)")
    found = header.get("format")
    if found != FORMAT_VERSION:
        why = _SUPERSEDED.get(found)
        raise ValueError(
            f"{path}: checkpoint format {found} cannot be resumed by this version of nstm "
            f"(it reads format {FORMAT_VERSION})" + (f": {why}" if why else "") + "; start "
            "the run again in a new folder, or resume it with the nstm version that wrote it"
        )
    return header


def read_checkpoint_header(path: str | Path) -> dict[str, Any]:
    """The header of a checkpoint (``format``, ``step``, ``history``, ``train_seconds``).

    Raises the error `load_checkpoint` would for a missing or other-format checkpoint; cheap,
    so a resume can refuse before it writes or compiles anything.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    with open(path, "rb") as f:
        return _read_header(f, path)


def load_checkpoint(path: str | Path, like: Any) -> tuple[Any, int, list[dict]]:
    """Read a checkpoint into a pytree shaped like ``like``; returns (tree, step, history)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    with open(path, "rb") as f:
        header = _read_header(f, path)
        try:
            tree = eqx.tree_deserialise_leaves(f, like)
        except Exception as err:  # shapes differ: the run's config changed
            raise ValueError(
                f"{path}: the checkpoint does not match the model built from this run's config "
                f"({err}); resume with the config saved in the run folder"
            ) from err
    return tree, int(header["step"]), list(header["history"])
