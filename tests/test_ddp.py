"""DDP on the CPU with gloo: two processes train like one with the same global batch, keep
identical structure logits, reduce their metrics, and resume exactly."""
import os
import socket

import torch
import torch.multiprocessing as mp

import train
from tests.conftest import write_config
from tests.test_training import logged, run_dir
from trainer import Trainer
from utils.checkpoint import load_checkpoint
from utils.cli import run_cli


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_worker(rank, argv, out_dir, port):
    """One torchrun-like rank: train, then record this rank's structure logits."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    original = Trainer.train

    def train_and_record(self):
        original(self)
        torch.save(self.model.gates.logits.detach().clone(), f"{out_dir}/logits{rank}.pt")

    Trainer.train = train_and_record
    status = run_cli(lambda: train.main(argv))
    if status != 0:
        raise SystemExit(status)


def run_ddp(argv, out_dir):
    mp.spawn(ddp_worker, args=(argv, str(out_dir), free_port()), nprocs=2, join=True)


def ddp_config(tiny_config, save_dir, batch_size, epochs=2):
    tiny_config["data_loader"]["args"].update(batch_size=batch_size, binarize="fixed",
                                              subset=1024)
    tiny_config["trainer"].update(save_dir=str(save_dir), epochs=epochs, tensorboard=False,
                                  deterministic=True)
    tiny_config["arch"]["args"]["gate_schedule"]["lr"] = 0.05  # so the logits move visibly
    return tiny_config


def test_two_processes_match_one_with_the_same_global_batch(tiny_config, tmp_path):
    one = ddp_config(tiny_config, tmp_path / "one", batch_size=64)
    assert run_cli(lambda: train.main(["-c", str(write_config(tmp_path, one, "one.json"))])) == 0
    two = ddp_config(tiny_config, tmp_path / "two", batch_size=32)
    run_ddp(["-c", str(write_config(tmp_path, two, "two.json"))], tmp_path)

    logits = [torch.load(tmp_path / f"logits{r}.pt") for r in (0, 1)]
    assert torch.equal(logits[0], logits[1]), "structure logits differ across ranks"
    single = load_checkpoint(run_dir(tmp_path / "one") / "checkpoint-latest.pth")
    assert (logits[0] - single["state_dict"]["gates.logits"]).abs().max() > 0  # they moved
    # The same examples per step and averaged gradients; BatchNorm statistics and the noise
    # are per process, so the runs agree up to that: within 1 % on every logged loss.
    for key in ("loss", "val_loss"):
        a, b = logged(tmp_path / "one", key), logged(tmp_path / "two", key)
        assert len(a) == len(b) == 2
        assert all(abs(x - y) / abs(x) < 0.01 for x, y in zip(a, b)), (key, a, b)
    assert logged(tmp_path / "two", "val_loss")  # only rank 0 wrote the log
    assert len(list((tmp_path / "two" / "models").glob("*/*"))) == 1


def test_resume_under_ddp_continues_exactly(tiny_config, tmp_path):
    straight = ddp_config(tiny_config, tmp_path / "straight", batch_size=32)
    run_ddp(["-c", str(write_config(tmp_path, straight, "a.json"))], tmp_path)
    split = ddp_config(tiny_config, tmp_path / "split", batch_size=32, epochs=1)
    run_ddp(["-c", str(write_config(tmp_path, split, "b.json"))], tmp_path)
    latest = run_dir(tmp_path / "split") / "checkpoint-latest.pth"
    run_ddp(["--resume", str(latest), "--epochs", "2"], tmp_path)
    a = load_checkpoint(run_dir(tmp_path / "straight") / "checkpoint-latest.pth")
    b = load_checkpoint(latest)
    assert b["epoch"] == 2
    assert logged(tmp_path / "straight", "val_loss") == logged(tmp_path / "split", "val_loss")
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key


def test_device_list_starts_one_worker_per_device(tiny_config, tmp_path):
    """--device 0,1 launches torchrun's workers itself (here, without GPUs, on the CPU)."""
    import subprocess
    import sys
    from tests.conftest import REPO
    tiny_config["trainer"].update(epochs=1, tensorboard=False, save_dir=str(tmp_path / "saved"))
    result = subprocess.run([sys.executable, "train.py", "--device", "0,1", "-c",
                             str(write_config(tmp_path, tiny_config))], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    (log,) = (tmp_path / "saved" / "log").glob("*/*/info.log")
    assert "; 2 processes" in log.read_text()
