"""Configs: defaults in one place, overrides from the command line, every shipped config valid.
(Bad configs and command lines, each stopping with one line: test_bad_inputs.py.)"""
import dataclasses
import inspect
import json

import pytest

import train
from data_loader.data_loaders import DATA_LOADERS, PROGRAM_SET
from experiment import build_model, build_trainer
from model import MODELS
from tests.conftest import REPO
from trainer.checkpoint import load_checkpoint
from trainer.tensorboard import flat_settings
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


def test_a_runs_saved_config_states_the_values_it_used(tiny_config):
    """config.json (the checkpoint's config too) states what the config left to be derived,
    as the model and trainer used it; the nulls left mean none or off, or a rule stated by the
    settings beside them (docs/architecture.md, Settings)."""
    tiny_config["n_gpu"] = None  # a GPU per process if one is visible
    tiny_config["trainer"]["epochs"] = 1
    config = ConfigParser(tiny_config)
    trainer = build_trainer(config)
    run_dir = train.fit(trainer, config)
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved == load_checkpoint(run_dir / "checkpoint-latest.safetensors")["config"]
    args, model = saved["arch"]["args"], trainer.model
    assert (args["n_nodes"], args["node_dim"], args["latent_dim"]) == \
        (model.n_nodes, model.node_dim, None)  # one size: an edit of n_nodes keeps d
    assert args["gate_schedule"] == dataclasses.asdict(model.gates.schedule)
    assert args["structure_prior"] == dataclasses.asdict(model.gates.prior)
    nulls = {key for key, value in flat_settings(saved).items() if value == "null"}
    assert nulls == {"arch.gate_schedule.tau_rate", "arch.gate_schedule.freeze_epoch",
                     "arch.gate_schedule.lr", "arch.structure_prior.edge_prior",
                     "data_loader.path", "data_loader.dag", "structure_optimizer",
                     "lr_scheduler", "trainer.checkpoint_every_steps", "trainer.tbptt_steps",
                     "trainer.compile_mode", "arch.latent_dim", "n_gpu"}
    rebuilt = ConfigParser(saved)  # the saved config builds the same model
    assert build_model(rebuilt, 784).node_dim == model.node_dim
    args["n_nodes"] = 3  # the saved config edited as a sweep would: d kept, M follows
    edited = build_model(ConfigParser(saved), 784)
    assert (edited.n_nodes, edited.node_dim) == (3, model.node_dim)


def test_latent_dim_decides_the_node_size_when_given():
    """A config giving the total size M (and a saved config of either kind) builds N nodes of
    M / N dims; a node_dim beside it is not read."""
    from model.graph_vae import split_latent_dims
    assert split_latent_dims(None, 5, None) == 16 and split_latent_dims(None, 5, 8) == 8
    assert split_latent_dims(40, 5, 16) == 8 and split_latent_dims(40, 4, None) == 10
    with pytest.raises(ValueError, match="not divisible by n_nodes 3"):
        split_latent_dims(40, 3, None)
