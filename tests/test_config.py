import pytest

from scintix.config import RunConfig, config_to_dict, list_recipes, load_config


def test_recipes_load_and_overrides_apply():
    assert "quickstart" in list_recipes()
    cfg = load_config("quickstart", ["train.epochs=3", "data.image_size=[32,16]", "data.split.seed=7"])
    assert cfg.train.epochs == 3 and cfg.data.image_size == (32, 16) and cfg.data.split.seed == 7
    assert isinstance(cfg, RunConfig)


def test_all_shipped_recipes_are_valid():
    for name in list_recipes():
        assert load_config(name).name


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
