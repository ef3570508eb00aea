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

# 2: the optimizer state holds one flat vector per parameter group (optax.flatten).
FORMAT_VERSION = 2
CHECKPOINT_NAME = "checkpoint.eqx"


def save_checkpoint(path: str | Path, tree: Any, *, step: int, history: list[dict]) -> None:
    """Atomically write ``tree`` (e.g. ``(model, opt_state)``) with its step and loss history."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    header = {"format": FORMAT_VERSION, "step": int(step), "history": history}
    with open(tmp, "wb") as f:
        f.write(json.dumps(header).encode() + b"\n")
        eqx.tree_serialise_leaves(f, tree)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, like: Any) -> tuple[Any, int, list[dict]]:
    """Read a checkpoint into a pytree shaped like ``like``; returns (tree, step, history)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    with open(path, "rb") as f:
        header = json.loads(f.readline())
        if header.get("format") != FORMAT_VERSION:
            raise ValueError(
                f"{path}: checkpoint format {header.get('format')} cannot be resumed by this "
                f"version of nstm (it reads format {FORMAT_VERSION}); start the run again, "
                "or resume it with the nstm version that wrote it"
            )
        try:
            tree = eqx.tree_deserialise_leaves(f, like)
        except Exception as err:  # shapes differ: the run's config changed
            raise ValueError(
                f"{path}: the checkpoint does not match the model built from this run's config "
                f"({err}); resume with the config saved in the run folder"
            ) from err
    return tree, int(header["step"]), list(header["history"])
