"""Training end to end on real Fashion-MNIST: it learns, it resumes exactly, the CLI works."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import test as test_script
import train
from experiment import build_loader, build_model
from tests.conftest import REPO, metric_before_and_after_training, write_config
from trainer.checkpoint import load_checkpoint
from utils.config import ConfigParser
from utils.errors import run_cli


def run_dir(save_dir):
    (path,) = (Path(save_dir) / "models").glob("*/*")
    return path


def logged(log_dir_root, key):
    """The values logged for key, epoch by epoch, from the run's info.log."""
    (log,) = Path(log_dir_root).glob("log/*/*/info.log")
    return [float(v) for v in re.findall(rf"    {key} +: ([-0-9.]+)\n", log.read_text())]


@pytest.mark.parametrize("arch", ["GraphVAE", "GraphLSTMVAE"])
def test_training_a_few_hundred_steps_lowers_the_test_negative_elbo_clearly(
        tiny_config, tmp_path, arch):
    tiny_config["arch"]["type"] = arch
    tiny_config["data_loader"]["args"].update(subset=300 * 64)  # 300 steps of batch 64
    tiny_config["trainer"].update(epochs=1, tensorboard=False)
    before, after = metric_before_and_after_training(tiny_config, tmp_path, "loss", 2000)
    assert after < before - 150, (before, after)


def test_resume_reproduces_the_uninterrupted_run_exactly(tiny_config, tmp_path):
    tiny_config["trainer"].update(deterministic=True, tensorboard=False, epochs=3)
    tiny_config["arch"]["args"]["gate_schedule"].update(lr=0.01, freeze_epoch=2)
    straight, split = tmp_path / "straight", tmp_path / "split"
    tiny_config["trainer"]["save_dir"] = str(straight)
    assert run_cli(lambda: train.main(["-c", str(write_config(tmp_path, tiny_config))])) == 0
    tiny_config["trainer"].update(save_dir=str(split), epochs=2)
    assert run_cli(lambda: train.main(["-c", str(write_config(tmp_path, tiny_config))])) == 0
    checkpoint = run_dir(split) / "checkpoint-latest.safetensors"
    assert run_cli(lambda: train.main(["--resume", str(checkpoint), "--epochs", "3"])) == 0

    assert logged(straight, "loss")[2] == logged(split, "loss")[2]
    assert logged(straight, "val_loss")[2] == logged(split, "val_loss")[2]
    final = {name: load_checkpoint(run_dir(d) / "checkpoint-latest.safetensors") for name, d in
             (("straight", straight), ("split", split))}
    assert final["split"]["epoch"] == 3
    for key, value in final["straight"]["model"].items():
        assert torch.equal(value, final["split"]["model"][key]), key


def test_command_line_train_then_test_end_to_end(tiny_config, tmp_path):
    config_path = write_config(tmp_path, tiny_config)
    subprocess.run([sys.executable, "train.py", "-c", str(config_path), "--epochs", "1"],
                   cwd=REPO, check=True, capture_output=True, text=True)
    checkpoint = run_dir(tmp_path / "saved") / "model_best.safetensors"
    assert (checkpoint.parent / "config.json").is_file()
    assert list((tmp_path / "saved" / "log").glob("*/*/events.out.tfevents.*"))
    result = subprocess.run([sys.executable, "test.py", "--resume", str(checkpoint), "-k", "20",
                             "--limit", "200"], cwd=REPO, check=True, capture_output=True,
                            text=True)
    assert "log p(x) (nats), IS K=20" in result.stdout and "z2->z0" in result.stdout
    results = json.loads(checkpoint.with_name("model_best-test.json").read_text())
    assert results["n_examples"] == 200 and results["samples"] == 20
    assert results["log_likelihood"] >= results["elbo"] - 1.0
    assert len(results["kl_per_node"]) == 3 and len(results["graph"]["edges"]) == 3
    assert len(results["active_units"]) == 3 and len(results["per_example"]["elbo"]) == 200


def test_the_seed_changes_initialisation_order_and_binarization_but_not_the_evaluation_data(
        tiny_config):
    def loaders_and_model(seed):
        config = ConfigParser(json.loads(json.dumps({**tiny_config, "seed": seed})))
        torch.manual_seed(seed)
        train_loader = build_loader(config, "train")
        train_loader.set_epoch(1)
        return (next(iter(train_loader)), next(iter(build_loader(config, "valid"))),
                next(iter(build_loader(config, "test"))), build_model(config, 784))

    first, second = loaders_and_model(0), loaders_and_model(1)
    assert not torch.equal(first[0], second[0])  # the training batches differ
    assert torch.equal(first[1], second[1]) and torch.equal(first[2], second[2])
    assert not torch.equal(first[3].encoder[0].weight, second[3].encoder[0].weight)
    # The same images in the same order, binarized afresh: only the binarization differs.
    config = ConfigParser(json.loads(json.dumps(tiny_config)))
    loader = build_loader(config, "train")
    loader.set_epoch(1)
    order = torch.tensor(loader.epoch_order())[:64]
    fresh = loader.make_batch(order, loader.batch_generator(1))
    again = loader.make_batch(order, loader.batch_generator(0))
    assert not torch.equal(fresh, again)
    assert abs(fresh.mean() - loader.intensities[order].mean()) < 0.02


def test_resuming_with_another_architecture_is_a_clear_error(tiny_config, tmp_path, capsys):
    tiny_config["trainer"].update(epochs=1, tensorboard=False)
    assert run_cli(lambda: train.main(["-c", str(write_config(tmp_path, tiny_config))])) == 0
    checkpoint = run_dir(tmp_path / "saved") / "checkpoint-latest.safetensors"
    capsys.readouterr()
    status = run_cli(lambda: train.main(["--resume", str(checkpoint), "--set",
                                         "arch.args.node_dim=5", "arch.args.latent_dim=null"]))
    err = capsys.readouterr().err
    assert status == 2 and "do not fit the configured architecture" in err
    assert err.count("\n") == 1


def test_a_corrupt_checkpoint_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "checkpoint.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    status = run_cli(lambda: test_script.main(["--resume", str(bad)]))
    err = capsys.readouterr().err
    assert status == 2 and "is not a readable checkpoint" in err and err.count("\n") == 1


def test_a_checkpoint_crafted_to_run_code_is_not_executed(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    crafted = tmp_path / "crafted.pth"  # a pickle: what torch.save and earlier versions wrote
    torch.save({"arch": "GraphVAE", "epoch": 1, "state_dict": {}, "config": Exploit()}, crafted)
    status = run_cli(lambda: test_script.main(["--resume", str(crafted)]))
    err = capsys.readouterr().err
    assert status == 2 and "earlier graphvae" in err and err.count("\n") == 1
    from trainer import (
        convert_checkpoint,  # the one reader of the old format: tensors only
    )
    assert run_cli(lambda: convert_checkpoint.main([str(crafted)])) == 2
    assert "not a checkpoint of an earlier graphvae" in capsys.readouterr().err
    assert not marker.exists()
