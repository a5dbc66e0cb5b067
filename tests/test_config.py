"""Bad configs and command lines stop with one clear line that names the problem."""
import json

import pytest

import train
from tests.conftest import REPO, write_config
from utils.config import ConfigParser, apply_overrides
from utils.errors import ConfigError


def run_train(argv, capsys):
    """train.py's exit status and its stderr."""
    from utils.cli import run_cli
    status = run_cli(lambda: train.main(argv))
    return status, capsys.readouterr().err


@pytest.mark.parametrize("mutate, expected", [
    (lambda c: c["arch"].update(type="GrapVAE"), "unknown arch.type 'GrapVAE'; did you mean 'GraphVAE'?"),
    (lambda c: c["arch"]["args"].update(n_node=4), "unknown key 'arch.args.n_node'; did you mean 'n_nodes'?"),
    (lambda c: c["arch"]["args"].update(n_nodes="five"), "'arch.args.n_nodes' must be an integer"),
    (lambda c: c["arch"]["args"].update(n_nodes=0), "n_nodes must be a positive integer"),
    (lambda c: c["arch"]["args"].update(structure="tree"), "structure must be one of"),
    (lambda c: c["trainer"].update(epoch=3), "unknown key 'trainer.epoch'; did you mean 'epochs'?"),
    (lambda c: c["trainer"].update(epochs=2.5), "'trainer.epochs' must be an integer"),
    (lambda c: c["arch"]["args"]["gate_schedule"].update(rate=0.9), "unknown gate_schedule key 'rate'"),
    (lambda c: c["trainer"].update(temperature={}), "'trainer.temperature' has moved to arch.args.gate_schedule"),
    (lambda c: c["data_loader"]["args"].update(seed=3), "'data_loader.args.seed' has moved to the top-level 'seed'"),
    (lambda c: c.update(loss="negative_elbo"), "'loss' has moved to nowhere"),
    (lambda c: c.update(optimizer={"type": "Adamm"}), "unknown optimizer.type 'Adamm'; did you mean 'Adam'?"),
    (lambda c: c.update(optimizer={"type": "Adam", "args": {"learning_rate": 1.0}}), "unknown key 'optimizer.args.learning_rate'"),
    (lambda c: c["data_loader"].update(type="MNISTLoader"), "unknown data_loader.type 'MNISTLoader'"),
    (lambda c: c["data_loader"]["args"].update(dataset="imagenet"), "unknown dataset 'imagenet'"),
    (lambda c: c["data_loader"]["args"].update(batch_size=0), "batch_size must be positive"),
    (lambda c: c.pop("arch"), "missing key 'arch'"),
    (lambda c: c.update(nmae="x"), "unknown key 'nmae'; did you mean 'name'?"),
    (lambda c: c["trainer"].update(monitor="lowest val_loss"), "trainer.monitor must be"),
])
def test_bad_config_gives_one_clear_line(tiny_config, tmp_path, capsys, mutate, expected):
    mutate(tiny_config)
    status, err = run_train(["-c", str(write_config(tmp_path, tiny_config))], capsys)
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert expected in err
    assert not (tmp_path / "saved").exists(), "a bad config must not create a run directory"


def test_invalid_json_names_the_line(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text('{"name": "x",\n "arch": }')
    status, err = run_train(["-c", str(path)], capsys)
    assert status == 2 and "is not valid JSON" in err and "line 2" in err


def test_missing_config_file(tmp_path, capsys):
    status, err = run_train(["-c", str(tmp_path / "nope.json")], capsys)
    assert status == 2 and "config file not found" in err


def test_missing_config_and_checkpoint(capsys):
    status, err = run_train([], capsys)
    assert status == 2 and "-c config.json" in err


def test_overrides_set_nested_keys_with_json_values(tiny_config):
    apply_overrides(tiny_config, ["trainer.epochs=3", "arch.args.n_nodes=4",
                                  "optimizer.args.lr=1e-3", "trainer.tensorboard=false"])
    config = ConfigParser(tiny_config)
    assert config["trainer"]["epochs"] == 3 and config["arch"]["args"]["n_nodes"] == 4
    assert config["optimizer"]["args"]["lr"] == 1e-3 and config["trainer"]["tensorboard"] is False


def test_override_of_the_wrong_type_names_the_key(tiny_config):
    with pytest.raises(ConfigError, match="'trainer.epochs' must be an integer"):
        apply_overrides(tiny_config, ["trainer.epochs=many"])
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides(tiny_config, ["trainer.epochs"])


def test_short_flags_and_set_reach_the_config(tiny_config, tmp_path, capsys):
    path = write_config(tmp_path, tiny_config)
    status, err = run_train(["-c", str(path), "--epochs", "1", "--set", "arch.args.n_nodes=0"],
                            capsys)
    assert status == 2 and "n_nodes must be a positive integer" in err


def test_defaults_are_filled_in_and_configs_state_only_what_differs(tiny_config):
    config = ConfigParser({"name": "x", "arch": {"type": "GraphVAE"},
                           "data_loader": {"type": "BinarizedImageDataLoader"}})
    assert config["trainer"]["epochs"] == 100 and config["optimizer"]["args"] == {"lr": 3e-4}
    assert config["arch"]["args"] == {} and json.dumps(config.config)  # plain data
    from utils.config import TOP_LEVEL, TRAINER
    for path in [REPO / "config.json", *sorted((REPO / "configs").glob("*.json"))]:
        raw = json.loads(path.read_text())
        for key, value in raw.get("trainer", {}).items():
            assert value != TRAINER[key][1], f"{path.name}: trainer.{key} repeats its default"
        for key, value in raw.items():
            if key in TOP_LEVEL and not isinstance(value, dict):
                assert value != TOP_LEVEL[key][1], f"{path.name}: {key} repeats its default"
        ConfigParser(raw)  # and every shipped config is valid
