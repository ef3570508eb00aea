"""Typed, nested configuration that round-trips to YAML.

Configs are frozen dataclasses nested the way the modules are: :class:`FieldConfig` for each
network, :class:`ModelConfig` for the space-time model, :class:`TrainConfig` for the engine and
:class:`RenderConfig` for outputs. Each imaging system owns its own config dataclass (for DPC,
:class:`nstm.systems.dpc.DPCConfig`); :class:`RunConfig` ties one run together.

Precedence, lowest first: a preset (``nstm.presets``), a YAML file, command-line flags.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import yaml

T = TypeVar("T")
S = TypeVar("S")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats: ``1e-3`` is a float, not a string.

    PyYAML follows YAML 1.1, whose floats need a dot (``1.0e-3``), so the way everyone writes a
    learning rate would be read as a string and refused. Quoted values stay strings.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str = "YAML") -> Any:
    """Parse YAML text safely, reading ``1e-3`` (YAML 1.2's float syntax) as a float.

    Malformed text raises a ValueError naming ``source`` and the line and column.
    """
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader: builds plain Python values only
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"{source}: not valid YAML{where}: {problem}") from None


Activation = Literal["relu", "gelu", "elu", "silu", "tanh"]
"""Hidden activations of the MLPs (nstm.model.mlp implements each)."""


@dataclasses.dataclass(frozen=True)
class FieldConfig:
    """A coordinate network: an encoding followed by a small MLP."""

    encoding: Literal["hashgrid", "fourier"] = "hashgrid"
    """Input encoding: a multiresolution hash grid, or (parameter-free) Fourier features."""
    num_levels: int = 8
    """Number of resolution levels (hash grid) or frequency bands (Fourier features)."""
    features_per_level: int = 2
    """Trainable features per level (hash grid only)."""
    log2_table_size: int = 19
    """log2 of the entries per hashed level; levels with fewer vertices are stored densely."""
    coarsest_cell_px: float = 32.0
    """Edge of a coarsest-level cell, in pixels (spatial axes)."""
    finest_cell_px: float | None = None
    """Edge of a finest-level cell in pixels; None derives it from the system's bandwidth
    (scene) or uses 16 px (motion)."""
    time_cells: tuple[int, int] | None = None
    """Motion only: (coarsest, finest) number of cells along t in [-1, 1]; None picks
    (1, min(frames - 1, 8))."""
    bbox_margin_px: float = 16.0
    """Scene only: margin around the rendered grid covered by the encoding, in pixels, so that
    displaced coordinates stay inside; coordinates beyond it are clamped."""
    bbox_margin_fraction: float = 0.0
    """Scene only: further margin on each side as a fraction of the grid size per axis (the
    original implementation's box is twice the image: 0.5)."""
    mlp_width: int = 64
    """Hidden width of the MLP."""
    mlp_depth: int = 2
    """Number of hidden layers of the MLP."""
    activation: Activation = "gelu"
    """Hidden activation of the MLP."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The neural space-time model: a motion network and a scene network."""

    scene: FieldConfig = FieldConfig()
    """Scene network O(r): no time input."""
    motion: FieldConfig = FieldConfig(
        num_levels=4,
        coarsest_cell_px=128.0,
        finest_cell_px=16.0,
        log2_table_size=16,
        mlp_width=32,
    )
    """Motion network M(r, t): displacement in pixels."""
    displacement_scale_px: float | None = 8.0
    """The motion MLP's raw output is multiplied by this many pixels; None uses the grid
    extent per axis (the original implementation's convention)."""
    motion_stride_px: int = 4
    """The motion network is evaluated on a lattice of nodes this many pixels apart and
    interpolated multilinearly in between (1: at every pixel). Motion is smooth (its finest
    cell is 16 px by default), so this barely changes it and saves most of its cost."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The optimization: Adam per parameter group, coarse-to-fine annealing."""

    steps: int = 400
    """Number of optimizer steps (chosen on the tuning samples of benchmarks/heldout.py; see
    benchmarks/README.md)."""
    schedule_steps: int | None = None
    """Steps over which the encoding levels open and the learning rates decay; None: steps.
    Training on past it keeps every level open and the final learning rates (nstm reconstruct
    --resume --steps N sets it to the run's first plan, to train more than planned)."""
    anneal_fraction: float = 0.8
    """Fraction of the schedule over which the encoding levels open (alpha = step /
    (anneal_fraction * schedule steps))."""
    frames_per_step: int | None = None
    """Measurements fitted per step; None uses all of them."""
    chunk_points: int | None = None
    """Evaluate a step's queries (frames x pixels) in chunks of this many, recomputing
    activations in the backward pass: bounds memory by the chunk; None evaluates all at once.
    A step split across devices gives each device chunks of this many over their number, so
    that the chunks in memory at once still total this many."""
    scene_lr: float = 4e-2
    """Initial learning rate of the scene network."""
    motion_lr: float = 8e-3
    """Initial learning rate of the motion network."""
    system_lr: float = 0.0
    """Initial learning rate of the imaging system's trainable parameters (e.g. modulation
    depths, a pupil aberration; see the system's trainable fields); 0 keeps them frozen."""
    final_lr_fraction: float = 0.1
    """Both learning rates decay exponentially to this fraction of their initial value over
    the schedule, and stay there."""
    adam_b1: float = 0.9
    adam_b2: float = 0.99
    adam_eps: float = 1e-15
    seed: int = 0
    """Seed of the initialization and of the measurement sampling."""
    checkpoint_every: int = 100
    """Steps between checkpoints (one is also written at the end, on Ctrl-C and on a NaN)."""
    log_every: int = 10
    """Steps between entries of the loss log."""


@dataclasses.dataclass(frozen=True)
class RenderConfig:
    """Outputs written after training."""

    interpolated_frames: int = 32
    """Number of evenly spaced times in [-1, 1] rendered for the video."""
    chunk_points: int = 1 << 16
    """Query points per chunk when rendering, which bounds memory."""
    video_format: Literal["gif", "mp4"] = "gif"
    """Container of the interpolated video."""


@dataclasses.dataclass(frozen=True)
class RunConfig(Generic[S]):
    """Everything that defines a reconstruction."""

    system: S
    """Parameters of the imaging system (its spec's config class, e.g.
    nstm.systems.dpc.DPCConfig)."""
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    render: RenderConfig = RenderConfig()


def to_dict(config: Any) -> dict[str, Any]:
    """Convert a (nested) config dataclass to plain YAML-friendly Python types."""

    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple | list):
            return [convert(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return convert(config)


def from_dict(cls: type[T], data: dict[str, Any], *, base: T | None = None, where: str = "") -> T:
    """Build ``cls`` from a nested mapping, on top of ``base`` (or the class defaults).

    Unknown keys raise a ValueError naming the key and the valid ones, so a typo in a YAML
    file never passes silently.
    """
    if not isinstance(data, dict):
        raise ValueError(f"config{where}: expected a mapping, got {type(data).__name__}")
    base = base if base is not None else cls()
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    updates: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            raise ValueError(f"config{where}: unknown key {key!r}; valid keys are {sorted(names)}")
        current = getattr(base, key)
        hint = hints[key]
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            updates[key] = from_dict(type(current), value, base=current, where=f"{where}.{key}")
        else:
            updates[key] = _coerce(value, hint, f"{where}.{key}")
    return dataclasses.replace(base, **updates)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Coerce a YAML scalar/list to the annotated type (tuples, floats written as ints)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if value is None:
        return None
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        errors = []
        for arg in non_none:
            try:
                return _coerce(value, arg, where)
            except (TypeError, ValueError) as err:
                errors.append(str(err))
        raise ValueError(f"config{where}: {value!r} does not match {hint}: {errors}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"config{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where) for v in value)
        if len(args) != len(value):
            raise ValueError(f"config{where}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args, strict=True))
    if origin is Literal:
        if value not in args:
            raise ValueError(f"config{where}: expected one of {list(args)}, got {value!r}")
        return value
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is bool and isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    if hint is Path and isinstance(value, str):
        return Path(value)
    raise ValueError(f"config{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


def with_overrides(config: T, items: Sequence[str]) -> T:
    """``config`` with dotted ``"section.field=value"`` assignments applied.

    Values are parsed as YAML scalars or flow collections (``4096``, ``null``, ``[1, 8]``,
    ``gelu``), then checked like a YAML config file: an unknown field or a value of the wrong
    type raises a ValueError naming it.

    Examples
    --------
    >>> with_overrides(TrainConfig(), ["steps=300", "chunk_points=4096"]).chunk_points
    4096
    """
    tree: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r}: expected 'section.field=value'")
        *path, leaf = key.strip().split(".")
        node = tree
        for name in path:
            node = node.setdefault(name, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {name!r} is set twice")
        node[leaf] = parse_yaml(text, f"override {item!r}")
    return from_dict(type(config), tree, base=config)


def save_yaml(config: Any, path: str | Path) -> None:
    """Write a config dataclass to a YAML file."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def load_yaml(cls: type[T], path: str | Path, *, base: T | None = None) -> T:
    """Read a YAML file (possibly partial) on top of ``base`` or the class defaults."""
    data = parse_yaml(Path(path).read_text(), str(path)) or {}
    return from_dict(cls, data, base=base, where=f" ({path})")
