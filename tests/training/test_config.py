"""training.config: errors name the key."""

from __future__ import annotations

import pytest

from massface.training.config import ConfigError, config_from_dict, config_to_dict, load_config


def test_mining_config_errors_name_the_key(tmp_path, tiny_config):
    base = config_to_dict(tiny_config(tmp_path))
    with pytest.raises(ConfigError, match="mining.mode"):
        config_from_dict({**base, "mining": {"mode": "batchwise"}})
    with pytest.raises(ConfigError, match="mining.scale"):
        config_from_dict({**base, "mining": {"mode": "semi_online", "scale": 0}})
    off = {**base, "mining": {"mode": "offline"}}
    off["loss"] = {**base["loss"], "triplet": {**base["loss"]["triplet"], "enabled": False}}
    with pytest.raises(ConfigError, match="loss.triplet is disabled"):
        config_from_dict(off)
    small = {**base, "mining": {"mode": "offline"}, "data": {**base["data"], "p": 1, "k": 2}}
    with pytest.raises(ConfigError, match="whole triplet"):
        config_from_dict(small)



def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown key loss.triplet.minr"):
        config_from_dict({"loss": {"triplet": {"minr": "x"}}})
    with pytest.raises(ConfigError, match=r"loss.triplet.miner: 'minmax' is not one of"):
        config_from_dict({"loss": {"triplet": {"miner": "minmax"}}})
    with pytest.raises(ConfigError, match="data.p must be >= 1"):
        config_from_dict({"data": {"p": 0}})
    with pytest.raises(ConfigError, match="optim.lr: expected a number"):
        config_from_dict({"optim": {"lr": "fast"}})
    with pytest.raises(ConfigError, match="data.path is required"):
        config_from_dict({"data": {"format": "rec"}})
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("data:\n  p: 8\n")
    cfg = load_config(cfg_file, ["data.k=3", "loss.head.name=arcface", "schedule.milestones=[10, 20]"])
    assert (cfg.data.p, cfg.data.k, cfg.loss.head.name, cfg.schedule.milestones) == (8, 3, "arcface", [10, 20])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_init_source_choices_are_the_loaders_sources():
    import typing

    from massface.backbones.sources import SOURCES
    from massface.training.config import ModelConfig

    hint = typing.get_type_hints(ModelConfig)["init_source"]
    assert typing.get_args(hint) == ("auto", *SOURCES)
