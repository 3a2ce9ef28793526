import re

import pytest

from scintix.config import RunConfig, config_to_dict, list_recipes, load_config


def test_recipes_load_and_overrides_apply():
    assert "quickstart" in list_recipes()
    cfg = load_config("quickstart", ["train.epochs=3", "data.image_size=[32,16]", "data.split.seed=7"])
    assert cfg.train.epochs == 3 and cfg.data.image_size == (32, 16) and cfg.data.split.seed == 7
    assert isinstance(cfg, RunConfig)


def test_all_shipped_recipes_are_valid():
    from scintix.config import _build
    from scintix.models.registry import MODELS, check_input_size, model_kind
    from scintix.runfolder import in_channels
    from scintix.tasks import get_task
    from scintix.training.stages import with_settings

    for name in list_recipes():
        cfg = load_config(name)
        assert cfg.name == name  # the run folder's default name is the recipe's
        assert _build(RunConfig, config_to_dict(cfg), "") == cfg  # config.yaml reloads to the same config
        assert cfg.model.name in MODELS and model_kind(cfg.model.name) == ("segmentation" if get_task(cfg.data.task).dense else "classification")
        check_input_size(cfg.model.name, tuple(cfg.data.patch_size or cfg.data.image_size), cfg.model.small_input, in_channels(cfg))
        for stage in cfg.stages:  # each stage's settings make a valid config too
            assert with_settings(cfg, stage.get("set", {})).model.name in MODELS


def test_values_are_type_and_range_checked_naming_the_field():
    for override, field in (("train.lr=fast", "train.lr"), ("train.lr=-1", "train.lr"), ("train.epochs=0", "train.epochs"), ("train.epochs=2.5", "train.epochs"),
                            ("data.image_size=[0,0]", "data.image_size"), ("data.image_size=[64]", "data.image_size"), ("data.split.ratios=[-1,1,1]", "data.split.ratios"),
                            ("train.precise_bn=maybe", "train.precise_bn"), ("eval.ci_level=1.5", "eval.ci_level"), ("train.lr=[unclosed", "train.lr=[unclosed")):
        with pytest.raises(ValueError, match=re.escape(field)):
            load_config("quickstart", [override])
    assert load_config("quickstart", ["train.channels_last=false", "data.classes=[0,1]"]).data.classes == ("0", "1")
    assert load_config("quickstart", ["train.lr=1e-4"]).train.lr == 1e-4  # YAML reads 1e-4 (no dot) as text


def test_unknown_keys_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['train.epoch'\].*'epochs'"):
        load_config(None, ["train.epoch=3"])
    with pytest.raises(ValueError, match="not of the form"):
        load_config(None, ["train.epochs"])
    with pytest.raises(FileNotFoundError, match="no recipe"):
        load_config("nope")


def test_round_trip_through_dict(tmp_path):
    import yaml

    from scintix.config import _build

    cfg = load_config("quickstart", ["data.views=[ant,post]"])
    again = _build(RunConfig, yaml.safe_load(yaml.safe_dump(config_to_dict(cfg))), "")
    assert again == cfg


def test_config_differences_name_each_changed_setting():
    from scintix.config import config_differences, load_config

    a = load_config("quickstart")
    assert config_differences(a, load_config("quickstart")) == []
    b = load_config("quickstart", ["train.lr=0.5", "data.image_size=[32,32]"])
    assert config_differences(a, b) == [f"data.image_size: {list(a.data.image_size)!r} -> [32, 32]", f"train.lr: {a.train.lr!r} -> 0.5"]
