"""Runs survive kills, stops, NaNs, divergence, races, full disks and bit rot (never lose a
run); bad input of every kind is in test_bad_inputs.py."""
import errno
import json
import math
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch

import test as test_script
import train
from tests.conftest import REPO, write_config
from tests.test_training import logged, run_dir
from trainer import Trainer
from trainer.checkpoint import load_checkpoint, save_checkpoint
from utils import run_dirs
from utils.errors import CheckpointError, run_cli


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
    latest = run_dir(stopped) / "checkpoint-latest.safetensors"
    checkpoint = load_checkpoint(latest)
    assert (checkpoint["epoch"], checkpoint["batches_done"]) == (1, 3)
    monkeypatch.undo()

    assert train_cli(["--resume", str(latest)]) == 0
    assert logged(straight, "loss") == logged(stopped, "loss")
    assert logged(straight, "val_loss") == logged(stopped, "val_loss")
    a, b = (load_checkpoint(run_dir(d) / "checkpoint-latest.safetensors") for d in (straight, stopped))
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


def test_periodic_checkpoints_inside_an_epoch_resume_exactly(exact_config, tmp_path):
    exact_config["trainer"].update(checkpoint_every_steps=3, epochs=1)
    exact_config["trainer"]["save_dir"] = str(tmp_path / "a")
    assert train_cli(["-c", str(write_config(tmp_path, exact_config))]) == 0
    final = load_checkpoint(run_dir(tmp_path / "a") / "checkpoint-latest.safetensors")

    # A run cut after batch 6 resumes from the periodic checkpoint taken there.
    exact_config["trainer"]["save_dir"] = str(tmp_path / "b")
    exact_config["data_loader"]["args"]["subset"] = 512
    path = write_config(tmp_path, exact_config)
    with pytest.MonkeyPatch.context() as patch:
        stop_at_step(patch, 7)  # stop request during step 7: saves after it, at batch 7
        assert train_cli(["-c", str(path)]) == 0
    latest = run_dir(tmp_path / "b") / "checkpoint-latest.safetensors"
    assert load_checkpoint(latest)["batches_done"] == 7
    assert train_cli(["--resume", str(latest)]) == 0
    resumed = load_checkpoint(latest)
    assert resumed["epoch"] == 1 and resumed["batches_done"] == 0
    for key, value in final["model"].items():
        assert torch.equal(value, resumed["model"][key]), key


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
                "models/*/*/checkpoint-latest.safetensors")):
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
    assert kills >= 3
    for directory in (tmp_path / "saved" / "models").glob("*/*"):
        for checkpoint in directory.glob("*.safetensors"):
            load_checkpoint(checkpoint)  # every checkpoint left behind is complete
    latest = sorted((tmp_path / "saved").glob("models/*/*/checkpoint-latest.safetensors"))[-1]
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
    checkpoint = load_checkpoint(run_dir(tmp_path / "saved") / "checkpoint-latest.safetensors")
    assert checkpoint["nonfinite_steps"] == 2
    assert all(torch.isfinite(v).all() for v in checkpoint["model"].values()
               if v.is_floating_point())
    assert logged(tmp_path / "saved", "nonfinite_steps") == [2.0]


def test_too_many_nonfinite_losses_stop_and_set_the_checkpoint_back_to_the_last_finite_state(
        tiny_config, tmp_path, monkeypatch, capsys):
    tiny_config["trainer"].update(epochs=2, tensorboard=False, max_nonfinite_steps=3,
                                  checkpoint_every_steps=1)
    nan_loss_on_steps(monkeypatch, {11, 12, 14})  # epoch 2, batches 3, 4 and 6
    assert train_cli(["-c", str(write_config(tmp_path, tiny_config))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "3 non-finite losses" in err, err
    assert "set back to the last state known finite (the end of epoch 1)" in err, err
    # Periodic checkpoints were taken inside epoch 2; the stop sets latest back to epoch 1.
    latest = run_dir(tmp_path / "saved") / "checkpoint-latest.safetensors"
    checkpoint = load_checkpoint(latest)
    assert (checkpoint["epoch"], checkpoint["batches_done"]) == (1, 0)
    epoch1 = load_checkpoint(latest.with_name("checkpoint-epoch1.safetensors"))
    for key, value in epoch1["model"].items():
        assert torch.equal(value, checkpoint["model"][key]), key


def test_a_diverged_run_saves_a_state_that_evaluates_finitely(tiny_config, tmp_path, capsys):
    """--lr 1e6: the first step is finite and leaves huge weights, every later loss is NaN."""
    tiny_config["data_loader"]["args"].update(subset=256, validation_size=100)
    tiny_config["trainer"].update(epochs=2, tensorboard=False, max_nonfinite_steps=2)
    assert train_cli(["-c", str(write_config(tmp_path, tiny_config)), "--lr", "1e6"]) == 2
    assert "(the initial weights)" in capsys.readouterr().err
    latest = run_dir(tmp_path / "saved") / "checkpoint-latest.safetensors"
    assert run_cli(lambda: test_script.main(["--resume", str(latest), "-k", "0",
                                             "--limit", "100"])) == 0
    results = json.loads(latest.with_name("checkpoint-latest-test.json").read_text())
    assert math.isfinite(results["elbo"])


def test_the_stop_message_advice_works_and_a_new_rate_gets_a_fresh_budget(
        tiny_config, tmp_path, monkeypatch, capsys):
    tiny_config["data_loader"]["args"].update(subset=256, validation_size=100)  # 4 batches
    tiny_config["trainer"].update(epochs=2, tensorboard=False, max_nonfinite_steps=2)
    with pytest.MonkeyPatch.context() as patch:
        nan_loss_on_steps(patch, {2, 6})  # epoch 1 batch 2, epoch 2 batch 2: the second stops
        assert train_cli(["-c", str(write_config(tmp_path, tiny_config))]) == 2
    err = capsys.readouterr().err
    assert "(the end of epoch 1)" in err, err
    argv = err.split("resume from it with a lower learning rate: ")[1].split()
    assert argv[:2] == ["python", "train.py"] and argv[-2] == "--lr", argv
    # Followed as printed; the epoch-1 state carries 1 non-finite step, and one more NaN
    # would use up the old budget of 2: the new rate starts it afresh.
    nan_loss_on_steps(monkeypatch, {1})
    assert train_cli(argv[2:]) == 0
    final = load_checkpoint(run_dir(tmp_path / "saved") / "checkpoint-latest.safetensors")
    assert final["epoch"] == 2 and final["nonfinite_steps"] == 1
    assert final["optimizer"]["param_groups"][0]["lr"] == pytest.approx(float(argv[-1]))


def test_resuming_with_new_optimizer_settings_applies_them(tiny_config, tmp_path, capsys):
    tiny_config["data_loader"]["args"].update(subset=128, validation_size=100)
    tiny_config["arch"]["args"]["gate_schedule"]["lr"] = 0.05  # the logits' own group
    tiny_config["trainer"].update(epochs=1, tensorboard=False)
    assert train_cli(["-c", str(write_config(tmp_path, tiny_config))]) == 0
    latest = run_dir(tmp_path / "saved") / "checkpoint-latest.safetensors"
    capsys.readouterr()
    assert train_cli(["--resume", str(latest), "--epochs", "2", "--lr", "1e-5",
                      "--set", "optimizer.args.weight_decay=0.01"]) == 0
    out = capsys.readouterr().out
    assert "Resumed from" in out and "optimizer.args.lr is 1e-05" in out, out
    networks, logits = load_checkpoint(latest)["optimizer"]["param_groups"]
    assert (networks["lr"], networks["weight_decay"]) == (1e-5, 0.01)
    assert (logits["lr"], logits["weight_decay"]) == (0.05, 0.01)


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




# -- run directories: never shared, one writer at a time ----------------------------------
def claim_at_once(args):
    """One of several processes claiming the same run name at the same moment."""
    barrier, models, logs = args
    barrier.wait()
    return str(run_dirs.claim_new(Path(models), Path(logs))[0])


def test_runs_started_at_the_same_moment_get_their_own_directories(tmp_path):
    context = multiprocessing.get_context("fork")
    n = 8
    with context.Manager() as manager, context.Pool(n) as pool:
        barrier = manager.Barrier(n)
        args = (barrier, tmp_path / "models" / "run" / "0101_120000",
                tmp_path / "log" / "run" / "0101_120000")
        claimed = pool.map(claim_at_once, [args] * n)
    assert len(set(claimed)) == n
    assert len(list((tmp_path / "log" / "run").iterdir())) == n


def test_a_second_writer_of_a_run_gets_one_line(tiny_config, tmp_path, capsys):
    tiny_config["data_loader"]["args"].update(subset=128, validation_size=100)
    tiny_config["trainer"].update(epochs=1, tensorboard=False)
    assert train_cli(["-c", str(write_config(tmp_path, tiny_config))]) == 0
    directory = run_dir(tmp_path / "saved")
    before = files_and_times(directory)
    held = run_dirs.lock(directory)  # as a training process holds it
    try:
        capsys.readouterr()
        assert train_cli(["--resume", str(directory / "checkpoint-latest.safetensors"),
                          "--epochs", "2"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "in use by another training process" in err, err
        assert files_and_times(directory) == before
    finally:
        held.close()
    assert train_cli(["--resume", str(directory / "checkpoint-latest.safetensors"), "--epochs", "2"]) == 0


# -- checkpoint integrity ------------------------------------------------------------------
@pytest.fixture
def saved_checkpoint(tmp_path):
    from model import GraphVAE
    model = GraphVAE(input_dim=20, n_nodes=3, node_dim=2, encoder_hidden=[8], feature_dim=8,
                     bottom_up_hidden=8, top_down_hidden=8, decoder_hidden=[8])
    path = tmp_path / "checkpoint.safetensors"
    save_checkpoint({"arch": "GraphVAE", "epoch": 1, "model": model.state_dict(),
                     "config": {"name": "x"}, "input_dim": 20, "image_shape": None,
                     "batches_done": 0, "nonfinite_steps": 0, "not_improved_count": 0,
                     "monitor_best": None, "history": [], "optimizer": None,
                     "structure_optimizer": None, "lr_scheduler": None, "partial_sums": None,
                     "rng": [{"torch": torch.get_rng_state()}]}, path)
    return path


def test_a_flipped_byte_anywhere_in_a_checkpoint_is_detected(saved_checkpoint):
    intact = saved_checkpoint.read_bytes()
    assert "model/encoder.0.weight" in safetensors.torch.load_file(saved_checkpoint)  # any reader
    positions = sorted({0, 1, len(intact) - 1, len(intact) - 40, len(intact) - 48,
                        *range(0, len(intact), max(1, len(intact) // 97))})
    for position in positions:
        damaged = bytearray(intact)
        damaged[position] ^= 0x10
        saved_checkpoint.write_bytes(damaged)
        with pytest.raises(CheckpointError) as error:
            load_checkpoint(saved_checkpoint)
        message = str(error.value)
        assert "\n" not in message and str(saved_checkpoint) in message, (position, message)
    tensors = bytearray(intact)  # the tensors' bytes, the last part of the file
    tensors[-1010:-10] = os.urandom(1000)
    saved_checkpoint.write_bytes(tensors)
    with pytest.raises(CheckpointError, match="is damaged"):
        load_checkpoint(saved_checkpoint)


def test_a_write_that_does_not_read_back_never_replaces_a_checkpoint(saved_checkpoint,
                                                                     monkeypatch):
    intact = saved_checkpoint.read_bytes()
    real_fdopen = os.fdopen

    class FlipsAByte:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

        def write(self, data):
            damaged = bytearray(data)
            damaged[len(damaged) // 2] ^= 1
            return self.f.write(bytes(damaged))

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FlipsAByte(real_fdopen(fd, mode)))
    with pytest.raises(CheckpointError, match="does not read back"):
        save_checkpoint(load_checkpoint(saved_checkpoint), saved_checkpoint)
    assert saved_checkpoint.read_bytes() == intact
    assert not list(saved_checkpoint.parent.glob(".*.tmp"))


def test_disk_full_while_saving_keeps_the_previous_checkpoint(tiny_config, tmp_path, capsys,
                                                              monkeypatch):
    tiny_config["data_loader"]["args"].update(subset=128, validation_size=100)
    tiny_config["trainer"].update(epochs=2, tensorboard=False)
    path = write_config(tmp_path, tiny_config)
    assert train_cli(["-c", str(path), "--epochs", "1"]) == 0
    latest = run_dir(tmp_path / "saved") / "checkpoint-latest.safetensors"
    before = latest.read_bytes()

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    capsys.readouterr()
    assert train_cli(["--resume", str(latest), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    for fragment in ("could not write checkpoint", "No space left on device",
                     "previous checkpoint is intact"):
        assert fragment in err, err
    assert latest.read_bytes() == before
    assert not list(latest.parent.glob(".*.tmp"))


def test_resuming_with_a_new_rate_for_the_structure_logits_applies_it(tiny_config, tmp_path, capsys):
    tiny_config["data_loader"]["args"].update(subset=128, validation_size=100)
    tiny_config["arch"]["args"]["gate_schedule"]["lr"] = 0.05
    tiny_config["trainer"].update(epochs=1, tensorboard=False)
    assert train_cli(["-c", str(write_config(tmp_path, tiny_config))]) == 0
    latest = run_dir(tmp_path / "saved") / "checkpoint-latest.safetensors"
    schedule = json.dumps({**tiny_config["arch"]["args"]["gate_schedule"], "lr": 0.001})
    capsys.readouterr()
    assert train_cli(["--resume", str(latest), "--epochs", "2",
                      "--set", f"arch.args.gate_schedule={schedule}"]) == 0
    assert "arch.args.gate_schedule.lr is 0.001" in capsys.readouterr().out
    networks, logits = load_checkpoint(latest)["optimizer"]["param_groups"]
    assert logits["lr"] == 0.001 and networks["lr"] == 3e-4


# -- third round: each kind of fault, a focused test ----------------------------------------
def one_epoch_run(tiny_config, tmp_path, **trainer):
    """A finished one-epoch run of the tiny model (2 batches); its checkpoint-latest.safetensors."""
    tiny_config["data_loader"]["args"].update(subset=128, validation_size=100)
    tiny_config["trainer"].update(epochs=1, tensorboard=False, **trainer)
    assert train_cli(["-c", str(write_config(tmp_path, tiny_config))]) == 0
    return run_dir(tmp_path / "saved") / "checkpoint-latest.safetensors"


def test_a_checkpoint_is_checked_before_anything_is_loaded(tiny_config, tmp_path, capsys,
                                                           monkeypatch):
    latest = one_epoch_run(tiny_config, tmp_path)
    checkpoint = load_checkpoint(latest)
    checkpoint["optimizer"]["state"][3]["exp_avg_sq"] = torch.zeros(5, 5)
    crafted = latest.with_name("crafted.safetensors")
    save_checkpoint(checkpoint, crafted)
    loaded = []
    for cls in (torch.optim.Optimizer, torch.nn.Module):
        original = cls.load_state_dict
        monkeypatch.setattr(cls, "load_state_dict", lambda self, *a, _o=original, **k: (
            loaded.append(type(self).__name__), _o(self, *a, **k))[1])
    capsys.readouterr()
    assert train_cli(["--resume", str(crafted), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "optimizer state of parameter 3: 'exp_avg_sq'" in err and err.count("\n") == 1, err
    assert loaded == [], "something was loaded before the checkpoint was checked"


# SIGHUP: the terminal closed, the ssh link dropped; SIGUSR1: a Slurm job's time limit is near
@pytest.mark.parametrize("stop", [signal.SIGHUP, signal.SIGUSR1], ids=["SIGHUP", "SIGUSR1"])
def test_sighup_and_sigusr1_save_a_checkpoint_like_sigterm(exact_config, tmp_path, monkeypatch,
                                                           capsys, stop):
    original, count = Trainer.train_step, {"n": 0}

    def signal_at_step_3(self, x):
        count["n"] += 1
        if count["n"] == 3:
            os.kill(os.getpid(), stop)
        return original(self, x)

    monkeypatch.setattr(Trainer, "train_step", signal_at_step_3)
    assert train_cli(["-c", str(write_config(tmp_path, exact_config))]) == 0
    out = capsys.readouterr().out
    assert f"{stop.name} received" in out and "Resume with:" in out, out
    checkpoint = load_checkpoint(run_dir(tmp_path / "saved") / "checkpoint-latest.safetensors")
    assert (checkpoint["epoch"], checkpoint["batches_done"]) == (0, 3)


@pytest.mark.parametrize("received, passed_on", [(signal.SIGHUP, signal.SIGHUP),
                                                (signal.SIGUSR1, signal.SIGTERM)])
def test_train_passes_stops_on_to_torchrun(received, passed_on):
    """train.py --device 0,1 passes a SIGHUP to torchrun, and a Slurm job's SIGUSR1 as the
    SIGTERM torchrun passes on (a SIGUSR1 would end torchrun without its workers saving)."""
    sent = []

    class Launcher:
        def send_signal(self, signum):
            sent.append(signum)

        def wait(self):
            os.kill(os.getpid(), received)
            return 0

    previous = signal.signal(received, lambda *args: None)  # if not passed on: ignored
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(subprocess, "Popen", lambda *a, **k: Launcher())
            assert train.launch_workers(2, []) == 0
        assert sent == [passed_on]
    finally:
        signal.signal(received, previous)


def test_an_epoch_without_a_finite_step_is_no_result(tiny_config, tmp_path, monkeypatch,
                                                     capsys):
    """Every loss NaN, fewer steps than max_nonfinite_steps: a stop, not "Done"."""
    tiny_config["data_loader"]["args"].update(subset=128, validation_size=100)
    tiny_config["trainer"].update(epochs=2, tensorboard=False)
    nan_loss_on_steps(monkeypatch, set(range(1, 100)))
    assert train_cli(["-c", str(write_config(tmp_path, tiny_config))]) == 2
    captured = capsys.readouterr()
    assert "Done." not in captured.out
    assert captured.err.count("\n") == 1, captured.err
    assert "epoch 1 ended with no finite training loss" in captured.err, captured.err
    assert "(the initial weights)" in captured.err, captured.err
    latest = run_dir(tmp_path / "saved") / "checkpoint-latest.safetensors"
    assert load_checkpoint(latest)["epoch"] == 0


def test_a_nonfinite_validation_loss_is_no_result(tiny_config, tmp_path, monkeypatch, capsys):
    import trainer.epoch_log as training
    real = training.evaluate
    calls = {"n": 0}

    def nan_in_epoch_2(*args, **kwargs):
        results = real(*args, **kwargs)
        calls["n"] += 1
        return {**results, "loss": float("nan")} if calls["n"] == 2 else results

    monkeypatch.setattr(training, "evaluate", nan_in_epoch_2)
    tiny_config["data_loader"]["args"].update(subset=128, validation_size=100)
    tiny_config["trainer"].update(epochs=3, tensorboard=False)
    assert train_cli(["-c", str(write_config(tmp_path, tiny_config))]) == 2
    err = capsys.readouterr().err
    assert "epoch 2 ended with a non-finite val_loss (nan)" in err, err
    assert "(the end of epoch 1)" in err, err
    latest = run_dir(tmp_path / "saved") / "checkpoint-latest.safetensors"
    assert load_checkpoint(latest)["epoch"] == 1


def test_a_last_training_batch_of_one_is_left_out_and_evaluation_takes_one(tiny_config,
                                                                           tmp_path):
    tiny_config["data_loader"]["args"].update(subset=65, validation_size=100)  # 64 + 1
    tiny_config["trainer"].update(epochs=1, tensorboard=False)
    assert train_cli(["-c", str(write_config(tmp_path, tiny_config))]) == 0
    latest = run_dir(tmp_path / "saved") / "checkpoint-latest.safetensors"
    assert logged(tmp_path / "saved", "epoch") == [1.0]
    assert run_cli(lambda: test_script.main(["--resume", str(latest), "-k", "2", "--bs", "1",
                                             "--limit", "3", "--data-dir",
                                             tiny_config["data_loader"]["args"]["data_dir"]])) == 0


def test_a_resumed_run_writes_beside_its_checkpoint_and_reads_the_users_data(
        tiny_config, tmp_path, capsys):
    """A checkpoint from elsewhere whose config names other folders writes nothing there."""
    latest = one_epoch_run(tiny_config, tmp_path)
    checkpoint = load_checkpoint(latest)
    elsewhere = tmp_path / "elsewhere"
    checkpoint["config"]["trainer"]["save_dir"] = str(elsewhere / "saved")
    checkpoint["config"]["data_loader"]["args"]["data_dir"] = str(elsewhere / "data")
    copy = tmp_path / "copy" / "models" / "GraphVAE_tiny" / "run"
    copy.mkdir(parents=True)
    save_checkpoint(checkpoint, copy / "checkpoint-latest.safetensors")
    data_dir = tiny_config["data_loader"]["args"]["data_dir"]
    assert train_cli(["--resume", str(copy / "checkpoint-latest.safetensors"), "--epochs", "2",
                      "--data-dir", data_dir]) == 0
    assert run_cli(lambda: test_script.main(["--resume", str(copy / "checkpoint-latest.safetensors"),
                                             "-k", "0", "--limit", "10",
                                             "--data-dir", data_dir])) == 0
    assert not elsewhere.exists()
    assert (tmp_path / "copy" / "log" / "GraphVAE_tiny" / "run" / "info.log").is_file()
    saved = json.loads((copy / "config.json").read_text())
    assert saved["trainer"]["save_dir"] == str(tmp_path / "copy")
    assert saved["data_loader"]["args"]["data_dir"] == data_dir


def test_a_checkpoint_of_an_earlier_version_is_named_and_converts(tiny_config, tmp_path,
                                                                   capsys):
    """A .pth of an earlier graphvae (torch.save's archive, the state_dict key) is refused with
    the one command that converts it; converted, it evaluates like the original."""
    from trainer import convert_checkpoint
    latest = one_epoch_run(tiny_config, tmp_path)
    old = {**load_checkpoint(latest), "monitor_best": float("inf")}
    old["state_dict"] = old.pop("model")
    plain = latest.with_name("old.pth")
    torch.save(old, plain)
    data_dir = tiny_config["data_loader"]["args"]["data_dir"]
    argv = ["-k", "0", "--limit", "10", "--data-dir", data_dir]
    capsys.readouterr()
    assert run_cli(lambda: test_script.main(["--resume", str(plain), *argv])) == 2
    assert "python -m trainer.convert_checkpoint" in capsys.readouterr().err
    assert run_cli(lambda: convert_checkpoint.main([str(plain)])) == 0
    converted = plain.with_suffix(".safetensors")
    assert run_cli(lambda: test_script.main(["--resume", str(converted), *argv])) == 0
    assert torch.equal(load_checkpoint(converted)["model"]["gates.logits"],
                       old["state_dict"]["gates.logits"])


def test_evaluating_a_model_that_overflows_is_no_result(tiny_config, tmp_path, capsys):
    latest = one_epoch_run(tiny_config, tmp_path)
    checkpoint = load_checkpoint(latest)
    checkpoint["model"]["decoder.3.weight"].fill_(3e38)  # finite, but logits overflow
    save_checkpoint(checkpoint, latest)
    capsys.readouterr()
    assert run_cli(lambda: test_script.main([
        "--resume", str(latest), "-k", "0", "--limit", "10", "--data-dir",
        tiny_config["data_loader"]["args"]["data_dir"]])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gives a non-finite test elbo" in err, err
    assert not latest.with_name("checkpoint-latest-test.json").exists()


def test_a_log_file_that_cannot_be_written_is_one_warning(tiny_config, tmp_path, capsys,
                                                          monkeypatch):
    from logger.log_file import LogFile

    def full_disk(self, record):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(LogFile, "shouldRollover", full_disk)
    one_epoch_run(tiny_config, tmp_path)
    err = capsys.readouterr().err
    assert "Logging error" not in err and "Traceback" not in err, err
    warnings = [line for line in err.splitlines() if "cannot write the log file" in line]
    assert len(warnings) == 1 and "No space left on device" in warnings[0], err


def test_a_cache_build_killed_mid_way_leaves_no_temporary_file(tmp_path):
    from data_loader.cache import cached
    from utils.files import atomic_write
    target = tmp_path / "cache.bin"
    stale = tmp_path / ".cache.bin.x1y2z3.tmp"  # what a kill -9 during a build leaves
    stale.write_bytes(bytes(1000))
    with atomic_write(tmp_path / "cache.bin") as live:  # another process building it now
        live.write(b"x")
        assert cached(target, lambda p: p.read_bytes(), lambda f: f.write(b"data")) == b"data"
        assert not stale.exists()
        assert len(list(tmp_path.glob(".cache.bin.*.tmp"))) == 1  # the live writer's stays
