"""Configs: defaults in one place, overrides from the command line, every shipped config valid.
(Bad configs and command lines, each stopping with one line: test_bad_inputs.py.)"""
import inspect
import json

import pytest

from data_loader.data_loaders import DATA_LOADERS, PROGRAM_SET
from model import MODELS
from tests.conftest import REPO
from utils.config import ConfigParser, TrainerSettings, run_settings
from utils.overrides import apply_overrides
from utils.errors import ConfigError
from utils.settings import check_args


def test_overrides_set_nested_keys_with_json_values(tiny_config):
    apply_overrides(tiny_config, ["trainer.epochs=3", "arch.args.n_nodes=4",
                                  "optimizer.args.lr=1e-3", "trainer.tensorboard=false"])
    config = ConfigParser(tiny_config)
    assert config["trainer"]["epochs"] == 3 and config["arch"]["args"]["n_nodes"] == 4
    assert config["optimizer"]["args"]["lr"] == 1e-3 and config["trainer"]["tensorboard"] is False


def test_override_of_the_wrong_type_names_the_key(tiny_config):
    with pytest.raises(ConfigError, match="'trainer.epochs' must be an integer"):
        ConfigParser(apply_overrides(tiny_config, ["trainer.epochs=many"]))
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides(tiny_config, ["trainer.epochs"])


def test_defaults_are_filled_in_and_configs_state_only_what_differs(tiny_config):
    config = ConfigParser({"name": "x", "arch": {"type": "GraphVAE"},
                           "data_loader": {"type": "ImageDataLoader"}})
    assert config["trainer"]["epochs"] == 100 and config["optimizer"]["args"] == {"lr": 3e-4}
    assert config["arch"]["args"] == {} and json.dumps(config.config)  # plain data
    top = {name: p.default for name, p in inspect.signature(run_settings).parameters.items()}
    for path in [REPO / "config.json", *sorted((REPO / "configs").glob("*.json"))]:
        raw = json.loads(path.read_text())
        for key, value in raw.get("trainer", {}).items():
            assert value != getattr(TrainerSettings, key), \
                f"{path.name}: trainer.{key} repeats its default"
        for key, value in raw.items():
            if not isinstance(value, dict):
                assert value != top[key], f"{path.name}: {key} repeats its default"
        parsed = ConfigParser(raw)  # and every shipped config is valid, its args too
        check_args(MODELS[parsed["arch"]["type"]], parsed["arch"]["args"], "", ("input_dim",))
        check_args(DATA_LOADERS[parsed["data_loader"]["type"]], parsed["data_loader"]["args"],
                   "", PROGRAM_SET)
