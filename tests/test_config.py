import dataclasses

import pytest
import yaml

from nstm.config import (
    FieldConfig,
    ModelConfig,
    TrainConfig,
    from_dict,
    load_yaml,
    save_yaml,
    with_overrides,
)
from nstm.presets import preset
from nstm.runs import load_run_config
from nstm.systems.dpc import DPCConfig


def test_run_config_round_trips_through_yaml(tmp_path):
    config = preset("paper", "dpc")
    config = dataclasses.replace(
        config, model=dataclasses.replace(config.model, motion=FieldConfig(time_cells=(1, 3)))
    )
    save_yaml(config, tmp_path / "c.yaml")
    assert load_run_config(tmp_path / "c.yaml", DPCConfig) == config


def test_partial_yaml_overrides_only_its_keys(tmp_path):
    (tmp_path / "c.yaml").write_text("train:\n  steps: 7\nsystem:\n  pad_px: 4\n")
    config = load_run_config(tmp_path / "c.yaml", DPCConfig)
    assert config.train.steps == 7 and config.system.pad_px == 4
    assert config.model == ModelConfig() and config.train.scene_lr == TrainConfig().scene_lr


def test_unknown_or_mistyped_keys_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown key 'stepz'"):
        from_dict(TrainConfig, {"stepz": 3})
    with pytest.raises(ValueError, match="steps"):
        from_dict(TrainConfig, {"steps": "many"})
    with pytest.raises(ValueError, match="encoding"):
        from_dict(FieldConfig, {"encoding": "wavelets"})
    (tmp_path / "c.yaml").write_text("trian: {}\n")
    with pytest.raises(ValueError, match="trian"):
        load_run_config(tmp_path / "c.yaml", DPCConfig)


def test_yaml_ints_become_floats_and_lists_tuples(tmp_path):
    save_yaml(FieldConfig(), tmp_path / "f.yaml")
    (tmp_path / "f.yaml").write_text("coarsest_cell_px: 8\ntime_cells: [1, 4]\n")
    field = load_yaml(FieldConfig, tmp_path / "f.yaml")
    assert field.coarsest_cell_px == 8.0 and isinstance(field.coarsest_cell_px, float)
    assert field.time_cells == (1, 4)


def test_exponent_floats_without_a_dot_are_floats(tmp_path):
    # YAML 1.1 (PyYAML's default) reads 1e-3 as a string; configs are written the YAML 1.2 way.
    (tmp_path / "c.yaml").write_text("train:\n  scene_lr: 1e-3\n  motion_lr: -2E+4\n")
    config = load_run_config(tmp_path / "c.yaml", DPCConfig)
    assert (config.train.scene_lr, config.train.motion_lr) == (1e-3, -2e4)
    assert with_overrides(TrainConfig(), ["scene_lr=5e-3"]).scene_lr == 5e-3
    with pytest.raises(ValueError, match="scene_lr: expected float, got '1e-3'"):
        with_overrides(TrainConfig(), ["scene_lr='1e-3'"])  # quoted: a string, refused
    assert yaml.safe_load("1e-3") == "1e-3"  # PyYAML's own loader is left as it was


def test_with_overrides_sets_nested_fields_and_rejects_bad_ones():
    config = preset("paper")
    out = with_overrides(
        config,
        ["train.chunk_points=4096", "model.scene.mlp_width=64", "model.motion.time_cells=[1, 3]"],
    )
    assert out.train.chunk_points == 4096
    assert out.model.scene.mlp_width == 64
    assert out.model.motion.time_cells == (1, 3)
    assert out.model.motion.mlp_width == config.model.motion.mlp_width  # untouched
    assert with_overrides(out, ["train.chunk_points=null"]).train.chunk_points is None
    with pytest.raises(ValueError, match="chunkpoints"):
        with_overrides(config, ["train.chunkpoints=1"])
    with pytest.raises(ValueError, match="mlp_width"):
        with_overrides(config, ["model.scene.mlp_width=wide"])
    with pytest.raises(ValueError, match="section.field=value"):
        with_overrides(config, ["train.steps"])
