"""Runs survive kills, stops, NaNs and bad input (issue: never lose a run)."""
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import train
from tests.conftest import REPO, write_config
from tests.test_training import logged, run_dir
from trainer import Trainer
from utils.checkpoint import load_checkpoint
from utils.cli import run_cli


def train_cli(argv):
    return run_cli(lambda: train.main(argv))


def stop_at_step(monkeypatch, step):
    """Send ourselves SIGTERM during the given (1-based) training step of this process."""
    original, count = Trainer.train_step, {"n": 0}

    def step_then_signal(self, x):
        count["n"] += 1
        if count["n"] == step:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, x)

    monkeypatch.setattr(Trainer, "train_step", step_then_signal)


def files_and_times(directory):
    return {p: p.stat().st_mtime_ns for p in Path(directory).rglob("*") if p.is_file()}


@pytest.fixture
def exact_config(tiny_config):
    """8 batches per epoch, deterministic kernels."""
    tiny_config["trainer"].update(deterministic=True, tensorboard=False, epochs=2)
    return tiny_config


# -- stops and exact resume ----------------------------------------------------------------
def test_sigterm_saves_at_the_step_boundary_and_resume_continues_exactly(
        exact_config, tmp_path, monkeypatch, capsys):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    exact_config["trainer"]["save_dir"] = str(straight)
    assert train_cli(["-c", str(write_config(tmp_path, exact_config))]) == 0

    exact_config["trainer"]["save_dir"] = str(stopped)
    stop_at_step(monkeypatch, 11)  # epoch 2, batch 3 of 8
    assert train_cli(["-c", str(write_config(tmp_path, exact_config))]) == 0
    assert "Resume with:" in capsys.readouterr().out
    latest = run_dir(stopped) / "checkpoint-latest.pth"
    checkpoint = load_checkpoint(latest)
    assert (checkpoint["epoch"], checkpoint["batches_done"]) == (1, 3)
    monkeypatch.undo()

    assert train_cli(["--resume", str(latest)]) == 0
    assert logged(straight, "loss") == logged(stopped, "loss")
    assert logged(straight, "val_loss") == logged(stopped, "val_loss")
    a, b = (load_checkpoint(run_dir(d) / "checkpoint-latest.pth") for d in (straight, stopped))
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key


def test_periodic_checkpoints_inside_an_epoch_resume_exactly(exact_config, tmp_path):
    exact_config["trainer"].update(checkpoint_every_steps=3, epochs=1)
    exact_config["trainer"]["save_dir"] = str(tmp_path / "a")
    assert train_cli(["-c", str(write_config(tmp_path, exact_config))]) == 0
    final = load_checkpoint(run_dir(tmp_path / "a") / "checkpoint-latest.pth")

    # A run cut after batch 6 resumes from the periodic checkpoint taken there.
    exact_config["trainer"]["save_dir"] = str(tmp_path / "b")
    exact_config["data_loader"]["args"]["subset"] = 512
    path = write_config(tmp_path, exact_config)
    with pytest.MonkeyPatch.context() as patch:
        stop_at_step(patch, 7)  # stop request during step 7: saves after it, at batch 7
        assert train_cli(["-c", str(path)]) == 0
    latest = run_dir(tmp_path / "b") / "checkpoint-latest.pth"
    assert load_checkpoint(latest)["batches_done"] == 7
    assert train_cli(["--resume", str(latest)]) == 0
    resumed = load_checkpoint(latest)
    assert resumed["epoch"] == 1 and resumed["batches_done"] == 0
    for key, value in final["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key


def test_kill_minus_nine_at_random_moments_leaves_a_loadable_checkpoint(tiny_config, tmp_path):
    tiny_config["trainer"].update(epochs=40, checkpoint_every_steps=1, tensorboard=False,
                                  save_period=1)
    path = write_config(tmp_path, tiny_config)
    rng = random.Random(0)
    kills = 0
    for attempt in range(4):
        process = subprocess.Popen([sys.executable, "train.py", "-c", str(path)], cwd=REPO,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline and not list((tmp_path / "saved").glob(
                "models/*/*/checkpoint-latest.pth")):
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
    assert kills >= 3
    for directory in (tmp_path / "saved" / "models").glob("*/*"):
        for checkpoint in directory.glob("*.pth"):
            load_checkpoint(checkpoint)  # every checkpoint left behind is complete
    latest = sorted((tmp_path / "saved").glob("models/*/*/checkpoint-latest.pth"))[-1]
    epoch = load_checkpoint(latest)["epoch"]
    assert train_cli(["--resume", str(latest), "--epochs", str(epoch + 1)]) == 0
    assert load_checkpoint(latest)["epoch"] == epoch + 1
    assert not list(latest.parent.glob(".*.tmp")), "resuming clears a killed write's temp file"


# -- numerical safety -----------------------------------------------------------------------
def nan_loss_on_steps(monkeypatch, steps):
    original, count = Trainer.train_step, {"n": 0}

    def maybe_nan(self, x):
        count["n"] += 1
        if count["n"] in steps:
            x = x * float("nan")
        return original(self, x)

    monkeypatch.setattr(Trainer, "train_step", maybe_nan)


def test_nonfinite_steps_are_skipped_and_counted(tiny_config, tmp_path, monkeypatch):
    tiny_config["trainer"].update(epochs=1, tensorboard=False)
    nan_loss_on_steps(monkeypatch, {2, 5})
    assert train_cli(["-c", str(write_config(tmp_path, tiny_config))]) == 0
    checkpoint = load_checkpoint(run_dir(tmp_path / "saved") / "checkpoint-latest.pth")
    assert checkpoint["nonfinite_steps"] == 2
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values()
               if v.is_floating_point())
    assert logged(tmp_path / "saved", "nonfinite_steps") == [2.0]


def test_too_many_nonfinite_losses_stop_with_the_last_good_state_saved(
        tiny_config, tmp_path, monkeypatch, capsys):
    tiny_config["trainer"].update(epochs=1, tensorboard=False, max_nonfinite_steps=3)
    nan_loss_on_steps(monkeypatch, {3, 4, 6})
    assert train_cli(["-c", str(write_config(tmp_path, tiny_config))]) == 2
    err = capsys.readouterr().err
    assert "3 non-finite losses" in err and "lower optimizer.args.lr" in err
    checkpoint = load_checkpoint(run_dir(tmp_path / "saved") / "checkpoint-latest.pth")
    assert checkpoint["batches_done"] == 5  # resuming retries the batch that failed
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values()
               if v.is_floating_point())


def test_extreme_inputs_give_finite_losses_across_seeds():
    from model import GraphVAE
    from model.objective import negative_elbo
    for seed in range(5):
        torch.manual_seed(seed)
        model = GraphVAE(input_dim=20, n_nodes=3, node_dim=2, encoder_hidden=[8], feature_dim=8,
                         bottom_up_hidden=8, top_down_hidden=8, decoder_hidden=[8])
        with torch.no_grad():  # push every head to its clamp bounds
            for p in model.parameters():
                p.mul_(1000.0)
        x = torch.bernoulli(torch.full((16, 20), 0.5))
        loss, _, _ = negative_elbo(model(x))
        assert torch.isfinite(loss), seed
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# -- bad input: one line, exit != 0, nothing overwritten ----------------------------------
def expect_one_line_error(argv, capsys, *fragments):
    capsys.readouterr()  # drop what earlier steps printed
    status = train_cli(argv)
    err = capsys.readouterr().err.split("\r")[-1]  # after any progress bar redraws
    assert status == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err


def test_latent_size_not_divisible_by_the_node_count(tiny_config, tmp_path, capsys):
    tiny_config["arch"]["args"].update(latent_dim=80, n_nodes=3)
    expect_one_line_error(["-c", str(write_config(tmp_path, tiny_config))], capsys,
                          "latent_dim 80 is not divisible by n_nodes 3")


def test_missing_data_files_without_internet(tiny_config, tmp_path, capsys, monkeypatch):
    import torchvision

    def no_network(self):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", no_network)
    tiny_config["data_loader"]["args"].update(dataset="mnist", data_dir=str(tmp_path / "nodata"))
    expect_one_line_error(["-c", str(write_config(tmp_path, tiny_config))], capsys,
                          "mnist files not found", "put the IDX files")
    assert not (tmp_path / "saved").exists()


def test_unwritable_save_dir(tiny_config, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    tiny_config["trainer"]["save_dir"] = str(blocker / "saved")
    expect_one_line_error(["-c", str(write_config(tmp_path, tiny_config))], capsys,
                          "cannot write to save_dir", "trainer.save_dir")


def test_disk_full_while_saving_keeps_the_previous_checkpoint(tiny_config, tmp_path, capsys,
                                                              monkeypatch):
    tiny_config["trainer"].update(epochs=2, tensorboard=False)
    path = write_config(tmp_path, tiny_config)
    assert train_cli(["-c", str(path), "--epochs", "1"]) == 0
    latest = run_dir(tmp_path / "saved") / "checkpoint-latest.pth"
    before = latest.read_bytes()

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full_disk)
    expect_one_line_error(["--resume", str(latest), "--epochs", "2"], capsys,
                          "could not write checkpoint",
                          "No space left on device", "previous checkpoint is intact")
    assert latest.read_bytes() == before
    assert not list(latest.parent.glob(".*.tmp"))


@pytest.mark.parametrize("content, fragment", [
    (b"", "is not a readable checkpoint"),
    (b"hello, I am a text file\n", "is not a readable checkpoint"),
])
def test_non_checkpoint_files(tmp_path, capsys, content, fragment):
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    expect_one_line_error(["--resume", str(path)], capsys, fragment)


def test_truncated_checkpoint_and_missing_checkpoint(tiny_config, tmp_path, capsys):
    tiny_config["trainer"].update(epochs=1, tensorboard=False)
    assert train_cli(["-c", str(write_config(tmp_path, tiny_config))]) == 0
    directory = run_dir(tmp_path / "saved")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes((directory / "checkpoint-latest.pth").read_bytes()[:5000])
    before = files_and_times(directory)
    expect_one_line_error(["--resume", str(truncated)], capsys, "is not a readable checkpoint")
    expect_one_line_error(["--resume", str(tmp_path / "nope.pth")], capsys,
                          "checkpoint not found")
    assert files_and_times(directory) == before


def test_a_new_run_never_reuses_an_existing_directory(tiny_config, tmp_path):
    tiny_config["trainer"].update(epochs=1, tensorboard=False)
    path = write_config(tmp_path, tiny_config)
    assert train_cli(["-c", str(path)]) == 0
    assert train_cli(["-c", str(path)]) == 0
    runs = list((tmp_path / "saved" / "models").glob("*/*"))
    assert len(runs) == 2
    assert all(json.loads((r / "config.json").read_text())["name"] for r in runs)


def test_a_named_run_that_exists_is_not_overwritten(tiny_config, tmp_path, capsys):
    tiny_config["trainer"].update(epochs=1, tensorboard=False)
    path = write_config(tmp_path, tiny_config)
    assert train_cli(["-c", str(path), "--run-id", "mine"]) == 0
    before = files_and_times(tmp_path / "saved")
    expect_one_line_error(["-c", str(path), "--run-id", "mine"], capsys, "exists already",
                          "--resume")
    assert files_and_times(tmp_path / "saved") == before
