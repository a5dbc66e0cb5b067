"""Bad input of every kind gets one clear line, and creates, changes and runs nothing.

One table: each row is what a user runs (a script and its arguments, set up in a fresh folder
that holds a copy of a trained run) and a fragment of the line it must print. Every row
checks the same promises: exit status 2; exactly one line on stderr, "error: ..."; no file
or directory created or changed, in the folder or in the run; and no file written by a
payload (a pickle that creates a file when it is unpickled).
"""
import hashlib
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

import reproduce
import sample
import test as test_script
import train
from bench import ddp_scaling, edge_gradients, eval_speed, throughput
from data_loader import convert_strokes
from tests.conftest import DATA_DIR, REPO
from trainer.checkpoint import load_checkpoint, save_checkpoint
from utils import run_dirs
from utils.errors import run_cli

SCRIPTS = {"train": train.main, "test": test_script.main, "sample": sample.main,
           "convert": convert_strokes.main, "reproduce": reproduce.main,
           "throughput": throughput.main, "eval_speed": eval_speed.main,
           "edge_gradients": edge_gradients.main, "ddp_scaling": ddp_scaling.main}


class Payload:
    """Unpickling it creates the file `marker`: the proof that loading a file ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


class OtherCodec:
    """Unpickling it calls _codecs.encode, the one function array pickles may name, with a
    codec other than the latin1 they use."""

    def __reduce__(self):
        import codecs
        return codecs.encode, ("text", "rot13")


def tiny_config(save_dir):
    config = json.loads((REPO / "configs" / "tiny.json").read_text())
    config["data_loader"]["args"].update(data_dir=str(DATA_DIR), subset=128, validation_size=100)
    config["trainer"].update(save_dir=str(save_dir), epochs=1, tensorboard=False)
    return config


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished one-epoch run of the tiny model (its models/ directory)."""
    root = tmp_path_factory.mktemp("trained")
    path = root / "config.json"
    path.write_text(json.dumps(tiny_config(root / "saved")))
    assert run_cli(lambda: train.main(["-c", str(path), "--run-id", "run"])) == 0
    return root / "saved" / "models" / "GraphVAE_tiny" / "run"


class Setup:
    """A fresh folder with a tiny config and a copy of a trained run; rows build on it."""

    def __init__(self, tmp, trained_run, monkeypatch):
        self.tmp, self.monkeypatch = tmp, monkeypatch
        self.config = tiny_config(tmp / "saved")
        self.run = tmp / "run"
        shutil.copytree(trained_run, self.run)
        (self.run / run_dirs.LOCK_FILE).unlink(missing_ok=True)
        self.marker = tmp / "payload-ran"
        self.held = None

    @property
    def checkpoint(self):
        return self.run / "checkpoint-latest.safetensors"

    def write(self, name, content):
        path = self.tmp / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
        return path

    def config_file(self, mutate=None, config=None):
        config = config or self.config
        if mutate:
            mutate(config)
        return self.write("config.json", json.dumps(config))

    def crafted(self, mutate):
        """A copy of the checkpoint changed by mutate, with a valid digest: well-formed on
        disk, so that what is checked is its content."""
        checkpoint = load_checkpoint(self.checkpoint)
        mutate(checkpoint)
        path = self.run / "crafted.safetensors"
        save_checkpoint(checkpoint, path)
        return path

    def flipped(self):
        """The checkpoint with 2,000 bytes in its middle changed (bit rot)."""
        data = bytearray(self.checkpoint.read_bytes())
        middle = len(data) // 2
        data[middle:middle + 2000] = bytes(b ^ 0xFF for b in data[middle:middle + 2000])
        path = self.run / "rotten.safetensors"
        path.write_bytes(bytes(data))
        return path

    def npy(self, array):
        path = self.tmp / "strokes.npy"
        np.save(path, array, allow_pickle=array.dtype == object)
        return path

    def payload_npy(self):
        return self.npy(np.array([Payload(self.marker), None], dtype=object))

    def existing_run(self):
        (self.tmp / "saved" / "models" / "GraphVAE_tiny" / "existing").mkdir(parents=True)
        return ["-c", str(self.config_file()), "--run-id", "existing"]

    def linked(self, name):
        """A symbolic link at tmp/name to a file elsewhere (what a write must never follow)."""
        (self.tmp / name).symlink_to(self.write("victim", "precious\n"))
        return self.tmp / name

    def fifo(self):
        path = self.tmp / "pipe.json"
        os.mkfifo(path)
        return path

    def earlier_results(self, **results):
        """test.py on a checkpoint already evaluated (its results file holds these)."""
        (self.run / "checkpoint-latest-test.json").write_text(json.dumps(results))
        return ["--resume", str(self.checkpoint)]

    def blocked_results(self):
        """test.py on a checkpoint whose results file cannot be written (a folder there)."""
        (self.run / "checkpoint-latest-test.json").mkdir()
        return ["--resume", str(self.checkpoint), "-k", "0", "--limit", "10"]

    def strokes_config(self, source):
        config = json.loads((REPO / "configs" / "recurrent_graph_vae_strokes.json").read_text())
        config["data_loader"].setdefault("args", {}).update(data_dir=str(DATA_DIR),
                                                            source=str(source))
        config.setdefault("trainer", {}).update(save_dir=str(self.tmp / "saved"))
        return config

    def strokes_npz(self, steps, lengths):
        path = self.tmp / "strokes.npz"
        np.savez(path, steps=np.asarray(steps), lengths=np.asarray(lengths))
        return path

    def idx_dir(self, train_images, test_images=None):
        """An MNIST folder whose training images file holds train_images. (MNIST: a broken
        Fashion-MNIST file is rebuilt from Debian's package, tests/test_data_caches.py.)"""
        raw = self.tmp / "idx" / "MNIST" / "raw"
        raw.mkdir(parents=True)
        good = b"\x00\x00\x08\x03" + struct.pack(">3I", 2, 28, 28) + bytes(2 * 784)
        labels = b"\x00\x00\x08\x01" + struct.pack(">I", 2) + bytes(2)
        for name, data in (("train-images-idx3-ubyte", train_images),
                           ("t10k-images-idx3-ubyte", test_images or good),
                           ("train-labels-idx1-ubyte", labels),
                           ("t10k-labels-idx1-ubyte", labels)):
            (raw / name).write_bytes(data)
        return str(self.tmp / "idx")

    def sparse(self, name, size, start=b""):
        """A file of size bytes that takes no disk space: start, then zeros."""
        path = self.tmp / name
        with open(path, "wb") as f:
            f.write(start)
            f.truncate(size)
        return path

    def unread(self, path):
        """path, which must not be read whole: its size and structure are checked first."""
        def refuse(self):
            raise AssertionError(f"{self} was read whole")
        self.monkeypatch.setattr(Path, "read_bytes", refuse)
        return path

    def digestless(self):
        """The checkpoint as torch.save writes it: no SHA-256 trailer."""
        path = self.run / "plain.safetensors"
        torch.save(load_checkpoint(self.checkpoint), path)
        return path

    def huge_header_npz(self):
        """A strokes .npz whose 'steps' header declares (1e11, 3) float32 and holds 30."""
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (10 ** 11, 3)})
        lengths = io.BytesIO()
        np.save(lengths, np.array([10]))
        path = self.tmp / "strokes.npz"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("steps.npy", header.getvalue() + bytes(120))
            archive.writestr("lengths.npy", lengths.getvalue())
        return path

    def big_idx(self):
        """train.py on an MNIST folder whose training images file declares 11 million
        images, and holds them (a sparse file of 8.6 GB)."""
        argv = idx_images(idx(2, 28, 28))(self)
        images = self.tmp / "idx" / "MNIST" / "raw" / "train-images-idx3-ubyte"
        images.unlink()
        self.sparse(images.relative_to(self.tmp), 16 + 11_000_000 * 784,
                    idx(11_000_000, 28, 28, 0))
        return argv

    def results_file(self, text):
        """A --results folder whose graph_vae seed 0 record holds text."""
        runs = self.tmp / "results" / "runs"
        runs.mkdir(parents=True)
        (runs / "graph_vae_seed0.json").write_text(text)
        return []

    def hold_lock(self):
        self.held = run_dirs.lock(self.run)  # as a training process of this run holds it
        return self.checkpoint


@pytest.fixture
def setup(tmp_path, trained_run, monkeypatch):
    setup = Setup(tmp_path, trained_run, monkeypatch)
    yield setup
    if setup.held:
        setup.held.close()


def train_config(mutate=None, *flags):
    return lambda s: ["-c", str(s.config_file(mutate)), *flags]


def arch(**args):
    return lambda c: c["arch"]["args"].update(args)


def trainer(**args):
    return lambda c: c["trainer"].update(args)


def loader(**args):
    return lambda c: c["data_loader"]["args"].update(args)


def top(**items):
    return lambda c: c.update(items)


def no_network(setup):
    import torchvision

    def fail(self):
        raise OSError("no network")

    setup.monkeypatch.setattr(torchvision.datasets.MNIST, "download", fail)
    return ["-c", str(setup.config_file(loader(dataset="mnist",
                                               data_dir=str(setup.tmp / "nodata"))))]


def resumed(mutate, *flags):
    return lambda s: ["--resume", str(s.crafted(mutate)), *flags]


def strokes(make_source):
    return lambda s: ["-c", str(s.config_file(config=s.strokes_config(make_source(s))))]


def idx_images(content):
    """train.py on an MNIST folder whose training images file holds content."""
    return lambda s: train_config(loader(dataset="mnist"))(s) + ["--data-dir", s.idx_dir(content)]


def strokes_loader(**args):
    """train.py on the strokes config with these data_loader.args."""
    def make(s):
        config = s.strokes_config("lasa")
        config["data_loader"]["args"].update(args)
        return ["-c", str(s.config_file(config=config))]
    return make


def strokes_payload_in_checkpoint(s):
    """A checkpoint (pure data) whose config points the strokes loader at a payload."""
    config = s.strokes_config(s.payload_npy())
    return ["--resume", str(s.crafted(lambda c: c.update(config=config)))]


def gates(**args):
    return arch(gate_schedule=args)


def resume_more(mutate, *flags):
    """train.py resuming a crafted copy of the checkpoint for a second epoch."""
    return resumed(mutate, "--epochs", "2", *flags)


def adam_state(key, value):
    """Set the optimizer state `key` of the first parameter (a (64, 784) weight)."""
    def mutate(c):
        c["optimizer"]["state"][0][key] = value(c["optimizer"]["state"][0][key])
    return mutate


def mid_epoch(c):
    """The checkpoint as if saved after batch 1 of epoch 2, with whole partial sums."""
    c.update(batches_done=1, partial_sums={
        "loss": torch.tensor(9000.0), "recon": torch.tensor(8000.0), "kl": torch.tensor(1000.0),
        "kl_per_node": torch.full((3,), 300.0), "n": torch.tensor(64.0)})


def with_scheduler(state_change):
    """The checkpoint of a run with a StepLR scheduler, its state changed."""
    def mutate(c):
        c["config"]["lr_scheduler"] = {"type": "StepLR", "args": {"step_size": 1}}
        optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
        state = torch.optim.lr_scheduler.StepLR(optimizer, 1).state_dict()
        state_change(state)
        c["lr_scheduler"] = state
    return mutate


def nested(levels):
    items = []
    for _ in range(levels):
        items = [items]
    return items


def deeply_nested_checkpoint(s):
    """A checkpoint whose history nests 3,000 lists deep (torch.save needs a higher
    recursion limit to write it; reading it back needs none)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)
    try:
        return ["--resume", str(s.crafted(lambda c: c.update(history=[{"x": nested(3000)}])))]
    finally:
        sys.setrecursionlimit(limit)


def nonfinite(key, value=float("nan")):
    return lambda c: c["model"][key].fill_(value)


def idx(n, rows, columns, size=None):
    return b"\x00\x00\x08\x03" + struct.pack(">3I", n, rows, columns) \
        + bytes(n * rows * columns if size is None else size)


def evaluate_on_test_images(content):
    """test.py on the checkpoint with MNIST files whose test images file holds content."""
    return lambda s: ["--resume", str(s.checkpoint), "-k", "0", "--limit", "2", "--set",
                      "data_loader.args.dataset=mnist", "--data-dir",
                      s.idx_dir(idx(2, 28, 28), content)]


def reproduce_args(*flags):
    """reproduce.py for GraphVAE, its results and checkpoints in the test's folder."""
    return lambda s: ["--models", "graph_vae", "--epochs", "1", "--seeds", "0",
                      "--results", str(s.tmp / "results"), "--out", str(s.tmp / "out"), *flags]


def reproduce_with(make_flags):
    return lambda s: reproduce_args(*make_flags(s))(s)


CASES = [
    # -- A: no file runs code; nothing leaves save_dir --------------------------------------
    ("train", strokes(Setup.payload_npy), "is not a pickle-free NumPy file"),
    ("test", strokes_payload_in_checkpoint, "paths are never taken from a checkpoint"),
    ("train", strokes_payload_in_checkpoint, "paths are never taken from a checkpoint"),
    ("train", lambda s: ["--resume", str(s.write("tensor.safetensors", safetensors.torch.save(
        {}, {"format": "graphvae checkpoint 1", "state": '{"model": {"__tensor__": "x"}}',
             "sha256": hashlib.sha256(b'{"model": {"__tensor__": "x"}}').hexdigest()})))],
     "no tensor 'x'"),
    ("train", train_config(top(name="../../escaped")), "'name' must be one folder name"),
    ("train", train_config(top(name="a/b")), "'name' must be one folder name"),
    ("train", train_config(None, "--name", ".."), "'name' must be one folder name"),
    ("train", train_config(None, "--run-id", "../x"), "--run-id must be one folder name"),
    ("train", resumed(lambda c: c["config"].update(name="../../escaped")),
     "'name' must be one folder name"),
    ("test", resumed(lambda c: c["config"].update(name="/tmp/x")), "'name' must be one folder"),
    # -- B: resuming with settings that cannot continue --------------------------------------
    ("train", lambda s: ["--resume", str(s.checkpoint), "--epochs", "1"],
     "has finished 1 epochs already; train longer with --epochs N (N > 1)"),
    ("train", lambda s: ["--resume", str(s.checkpoint), "--epochs", "2", "--set",
                         "optimizer.type=SGD"], "cannot continue as SGD"),
    ("train", lambda s: ["--resume", str(s.checkpoint), "--epochs", "2", "--set",
                         "optimizer.args.amsgrad=true"], "cannot change when resuming"),
    # -- C: a run directory that another process writes, or that exists ----------------------
    ("train", lambda s: ["--resume", str(s.hold_lock()), "--epochs", "2"],
     "is in use by another training process"),
    ("train", Setup.existing_run, "exists already; continue it with --resume"),
    # -- E: damaged, crafted or missing checkpoints ------------------------------------------
    ("train", lambda s: ["--resume", str(s.flipped())], "is damaged"),
    ("test", lambda s: ["--resume", str(s.flipped())], "is damaged"),
    ("sample", lambda s: ["--resume", str(s.flipped())], "is damaged"),
    ("train", lambda s: ["--resume", str(s.write("empty.safetensors", b""))],
     "is not a readable checkpoint"),
    ("train", lambda s: ["--resume", str(s.write("text.safetensors", "hello, I am a text file\n"))],
     "is not a readable checkpoint"),
    ("test", lambda s: ["--resume", str(s.write("cut.safetensors", s.checkpoint.read_bytes()[:5000]))],
     "is not a readable checkpoint"),
    ("train", lambda s: ["--resume", str(s.tmp / "nope.safetensors")], "checkpoint not found"),
    ("train", resumed(lambda c: c.update(rng=[{"torch": torch.zeros(10, dtype=torch.uint8)}]),
                      "--epochs", "2"), "its random-number state is damaged"),
    ("train", resumed(lambda c: c.update(rng=[torch.zeros(3)]), "--epochs", "2"),
     "its 'rng' is not a list of random-number states"),
    ("train", resumed(lambda c: c.update(epoch="1")), "its 'epoch' is a str"),
    ("sample", resumed(lambda c: c.pop("model")), "its 'model' is missing"),
    ("test", resumed(lambda c: c.update(arch="VRNN")), "holds a VRNN"),
    ("sample", resumed(lambda c: c["model"].pop("gates.logits")),
     "do not fit the configured architecture"),
    # -- F: config values, each checked before anything is created ---------------------------
    ("train", train_config(trainer(save_period=0)),
     "'trainer.save_period' must be in [1, inf), got 0"),
    ("train", train_config(trainer(verbosity=5)),
     "'trainer.verbosity' must be 0 or 1 or 2, got 5"),
    ("train", train_config(None, "--epochs", "0"),
     "'trainer.epochs' must be in [1, 10000], got 0"),
    ("train", train_config(None, "--epochs", "-3"),
     "'trainer.epochs' must be in [1, 10000], got -3"),
    ("train", train_config(trainer(kl_warmup_epochs=-1)),
     "'trainer.kl_warmup_epochs' must be in [0, inf), got -1"),
    ("train", train_config(trainer(free_bits=-0.5)), "'trainer.free_bits' must be in [0, inf)"),
    ("train", train_config(trainer(free_bits=float("nan"))),
     "holds NaN; a setting is a finite number"),
    ("train", train_config(None, "--lr", "inf"),
     "'optimizer.args.lr' must be a finite number, got inf"),
    ("train", train_config(trainer(checkpoint_every_steps=0)),
     "'trainer.checkpoint_every_steps' must be in [1, inf)"),
    ("train", train_config(trainer(max_nonfinite_steps=0)),
     "'trainer.max_nonfinite_steps' must be in [1, inf)"),
    ("train", train_config(trainer(tbptt_steps=0)),
     "'trainer.tbptt_steps' must be in [1, inf)"),
    ("train", train_config(trainer(early_stop=-1)), "'trainer.early_stop' must be in [0, inf)"),
    ("train", train_config(top(n_gpu=-1)), "'n_gpu' must be in [0, inf)"),
    ("train", train_config(None, "--seed", str(2 ** 64)),
     "'seed' must be in [0, 9223372036854775807]"),
    ("train", train_config(None, "--seed", "-1"), "'seed' must be in [0, 9223372036854775807]"),
    ("train", train_config(trainer(monitor="min foo")),
     "trainer.monitor names 'foo', which is not logged"),
    ("train", train_config(trainer(monitor="lowest val_loss")),
     "monitor must be 'off' or 'min|max <metric>'"),
    ("train", train_config(trainer(epoch=3)),
     "unknown key 'trainer.epoch'; did you mean 'epochs'?"),
    ("train", train_config(trainer(epochs=2.5)), "'trainer.epochs' must be an integer"),
    ("train", train_config(trainer(temperature={})),
     "unknown key 'trainer.temperature'"),
    ("train", train_config(top(loss="negative_elbo")), "unknown key 'loss'"),
    ("train", train_config(top(nmae="x")), "unknown key 'nmae'; did you mean 'name'?"),
    ("train", train_config(lambda c: c.pop("arch")), "missing key 'arch'"),
    ("train", train_config(top(optimizer={"type": "Adamm"})),
     "unknown optimizer.type 'Adamm'; did you mean 'Adam'?"),
    ("train", train_config(top(optimizer={"type": "Adam", "args": {"learning_rate": 1.0}})),
     "unknown key 'optimizer.args.learning_rate'"),
    ("train", train_config(top(optimizer={"type": "Adam", "args": {"lr": -1.0}})),
     "optimizer.args: Invalid learning rate"),
    ("train", train_config(top(optimizer={"type": "SparseAdam"})),
     "optimizer SparseAdam cannot make a training step"),
    ("train", train_config(top(optimizer={"type": "LBFGS"})),
     "optimizer LBFGS cannot make a training step"),
    ("train", train_config(top(optimizer={"type": "lr_scheduler"})),
     "unknown optimizer.type 'lr_scheduler'"),
    ("train", train_config(top(optimizer={"type": "Optimizer"})),
     "unknown optimizer.type 'Optimizer'"),
    ("train", train_config(top(optimizer={"type": "StepLR"})), "unknown optimizer.type 'StepLR'"),
    ("train", train_config(top(lr_scheduler={"type": "StepLR", "args": {"step_size": 0}})),
     "lr_scheduler StepLR cannot make a training step"),
    ("train", train_config(top(lr_scheduler={"type": "StepLR"})),
     "missing 1 required positional argument: 'step_size'"),
    ("train", train_config(top(lr_scheduler={"type": "LambdaLR", "args": {"lr_lambda": 0.5}})),
     "lr_scheduler.args: 'float' object is not callable"),
    ("train", train_config(top(lr_scheduler={"type": "LRScheduler"})),
     "unknown lr_scheduler.type 'LRScheduler'"),
    ("train", train_config(lambda c: (c.update(lr_scheduler={"type": "ReduceLROnPlateau"}),
                                      c["trainer"].update(monitor="off"))),
     "ReduceLROnPlateau steps on the monitored metric; set trainer.monitor"),
    ("train", train_config(gates(tau_init=0, tau_floor=0)),
     "'arch.args.gate_schedule.tau_init' must be in [1e-6, 1e6]"),
    ("train", train_config(gates(tau_init=-1)), "'arch.args.gate_schedule.tau_init' must be in [1e-6, 1e6]"),
    ("train", train_config(gates(rate=0.9)), "unknown key 'arch.args.gate_schedule.rate'; did you mean 'tau_rate'?"),
    ("train", train_config(arch(encoder_hidden=[0])),
     "'arch.args.encoder_hidden' must be in [1, inf), got [0]"),
    ("train", train_config(arch(n_nodes=0)), "'arch.args.n_nodes' must be in [1, 32], got 0"),
    ("train", train_config(arch(n_nodes="five")), "'arch.args.n_nodes' must be an integer"),
    ("train", train_config(arch(n_node=4)),
     "unknown key 'arch.args.n_node'; did you mean 'n_nodes'?"),
    ("train", train_config(arch(structure="tree")), "'arch.args.structure': unknown structure 'tree'; registered"),
    ("train", train_config(arch(latent_dim=80, n_nodes=3)),
     "latent_dim 80 is not divisible by n_nodes 3"),
    ("train", train_config(lambda c: c["arch"].update(type="GrapVAE")),
     "unknown arch.type 'GrapVAE'; did you mean 'GraphVAE'?"),
    ("train", train_config(lambda c: c["data_loader"].update(type="MNISTLoader")),
     "unknown data_loader.type 'MNISTLoader'"),
    ("train", train_config(loader(seed=3)),
     "unknown key 'data_loader.args.seed'"),
    ("train", train_config(loader(batch_size=0)), "'data_loader.args.batch_size' must be in [1, inf), got 0"),
    ("train", train_config(loader(dataset="imagenet")), "unknown image data set 'imagenet'"),
    ("train", train_config(loader(split_seed=2 ** 64)),
     "'data_loader.args.split_seed' must be in [0, 9223372036854775807]"),
    ("train", strokes_loader(valid_fraction=0.5, test_fraction=0.6),
     "valid_fraction and test_fraction must add up to less than 1"),
    ("train", train_config(None, "--set", "arch.args.n_nodes=0"),
     "'arch.args.n_nodes' must be in [1, 32], got 0"),
    ("train", train_config(None, "--set", "trainer.epochs=many"),
     "'trainer.epochs' must be an integer"),
    ("train", train_config(None, "--set", "trainer.epochs"), "must look like key.path=value"),
    # -- F: config files ----------------------------------------------------------------------
    ("train", lambda s: ["-c", str(s.write("latin1.json", '{"name": "caf\xe9"}'.encode("latin1")))],
     "is not UTF-8 text"),
    ("train", lambda s: ["-c", str(s.write("bad.json", '{"name": "x",\n "arch": }'))],
     "is not valid JSON: Expecting value at line 2"),
    ("train", lambda s: ["-c", str(s.write("list.json", "[1, 2]"))],
     "the config must be a JSON object"),
    ("train", lambda s: ["-c", str(s.tmp / "nope.json")], "config file not found"),
    ("train", lambda s: [], "give a config with -c config.json"),
    # -- F: where data and runs go ------------------------------------------------------------
    ("train", train_config(None, "--data-dir", "/proc/graphvae"),
     "(set data_loader.args.data_dir (--data-dir) to a writable directory)"),
    ("train", lambda s: ["-c", str(s.config_file()), "--data-dir", str(s.write("file", "x"))],
     "is a file, not a directory"),
    ("train", lambda s: train_config()(s) + ["--save-dir", str(s.write("file", "x") / "saved")],
     "(set trainer.save_dir (--save-dir) to a writable directory)"),
    ("train", no_network, "mnist files not found"),
    # -- F: data files, each checked at load ----------------------------------------------------
    ("train", idx_images(b"\x00\x00\x08\x01" + bytes(2000)),
     "is not an IDX image file (it should start with bytes 00 00 08 03)"),
    ("train", idx_images(bytes(range(256)) * 8),
     "is not an IDX image file"),
    ("train", idx_images(b"\x00\x00\x08\x03" + struct.pack(">3I", 60000, 28, 28) + bytes(5000)),
     "5016 bytes, its header says 47040016: truncated or damaged"),
    ("train", idx_images(b""),
     "is not an IDX image file"),
    ("train", strokes(lambda s: s.strokes_npz(np.zeros((10, 2), np.float32), [4, 6])),
     "'steps' must be numbers of shape (total steps, 3), got float32 (10, 2)"),
    ("train", strokes(lambda s: s.strokes_npz(np.full((10, 3), np.nan, np.float32), [4, 6])),
     "sequence 0 has a NaN or infinite value"),
    ("train", strokes(lambda s: s.strokes_npz(np.r_[np.zeros((5, 3)), [[0, np.inf, 0]],
                                                     np.zeros((4, 3))], [4, 6])),
     "sequence 1 has a NaN or infinite value (at step 5 of the file)"),
    ("train", strokes(lambda s: s.strokes_npz(np.zeros((10, 3), np.float32), [4, 5])),
     "'lengths' must be positive integers, one per sequence, adding up to its 10 steps"),
    ("train", strokes(lambda s: s.npy(np.zeros((4, 5, 3)))),
     "is not a sequences .npz with 'steps' and 'lengths' arrays"),
    ("train", strokes(lambda s: s.tmp / "missing.npz"), "strokes file not found"),
    ("convert", lambda s: [str(s.npy(np.array([np.zeros((3, 2)), None], dtype=object))),
                           str(s.tmp / "out.npz")], "sequence 0 is not a (T, 3) array of numbers"),
    ("convert", lambda s: [str(s.tmp / "s.npy"), str(s.tmp / "out.txt")],
     "the output must end in .npz"),
    ("convert", lambda s: [str(s.payload_npy()), str(s.tmp / "out.npz")],
     "not a NumPy array; nothing in it was run"),
    ("convert", lambda s: [str(s.npy(np.array([OtherCodec(), None], dtype=object))),
                           str(s.tmp / "out.npz")], "not latin1; nothing in it was run"),
    ("convert", lambda s: [str(s.npy(np.zeros((4, 5, 3)))), str(s.tmp / "out.npz")],
     "not the object array of (T, 3) sequences a strokes.npy is"),
    # -- G: output paths that cannot be written; script arguments -----------------------------
    ("test", Setup.blocked_results, "(the results are printed above; to have them written"),
    ("sample", lambda s: ["--resume", str(s.checkpoint), "--out",
                          str(s.write("file", "x") / "samples.png")],
     "(choose a writable --out path)"),
    ("sample", lambda s: ["--resume", str(s.checkpoint), "--out", str(s.tmp / "samples.txt")],
     "--out must name a .png or .jpg file"),
    ("sample", lambda s: ["--resume", str(s.checkpoint), "--traverse", "9"],
     "--traverse must be 'all' or a node index"),
    ("sample", lambda s: ["--resume", str(s.checkpoint), "-n", "0"], "must be positive"),
    ("sample", lambda s: [], "give the checkpoint to sample from with --resume"),
    ("test", lambda s: ["--resume", str(s.checkpoint), "-k", "-1"],
     "argument -k/--samples: must be an integer from 0 to 100000 (20 times the paper's 5000)"),
    ("test", lambda s: ["--resume", str(s.checkpoint), "-k", str(10 ** 9)],
     "argument -k/--samples: must be an integer from 0 to 100000"),
    ("test", lambda s: ["--resume", str(s.checkpoint), "--limit", "0"],
     "argument --limit: must be an integer >= 1, got 0"),
    ("reproduce", reproduce_args("-k", str(10 ** 9)), "argument -k/--samples: must be an"),
    ("test", lambda s: [], "give the checkpoint to evaluate with --resume"),
    # -- H1: checkpoint state that does not fit the model or its counters --------------------
    ("train", resume_more(adam_state("exp_avg", lambda v: torch.zeros(3))),
     "optimizer state of parameter 0: 'exp_avg' is a torch.float32 (3,), not a torch.float32 (64, 784)"),
    ("train", resume_more(adam_state("exp_avg_sq", lambda v: v.double())),
     "'exp_avg_sq' is a torch.float64 (64, 784), not a torch.float32 (64, 784)"),
    ("train", resume_more(adam_state("step", lambda v: torch.zeros(2))),
     "'step' is a torch.float32 (2,), not torch.float32"),
    ("train", resume_more(lambda c: c["optimizer"]["state"][0].pop("exp_avg")),
     "not the exp_avg, exp_avg_sq, step of this optimizer"),
    ("train", resume_more(lambda c: c["optimizer"]["state"].update({999: {}})),
     "its optimizer state names parameter 999"),
    ("train", resume_more(lambda c: c["optimizer"]["param_groups"][0].update(lr="fast")),
     "its optimizer group 0 setting 'lr' is fast, not a positive number"),
    ("train", resume_more(lambda c: c["optimizer"]["param_groups"][0]["params"].pop()),
     "its optimizer group 0 holds"),
    ("train", resume_more(adam_state("exp_avg", lambda v: v.fill_(float("nan")))),
     "'optimizer.state.0.exp_avg' has a NaN, an infinity"),
    ("train", resume_more(with_scheduler(lambda st: st.update(last_epoch="3"))),
     "its lr_scheduler state 'last_epoch' is 3, which StepLR does not take"),
    ("train", resume_more(with_scheduler(lambda st: st.update(step=5))),
     "its lr_scheduler state 'step' is 5, which StepLR does not take"),
    ("train", resume_more(with_scheduler(lambda st: st.update(_last_lr=torch.ones(1)))),
     "its lr_scheduler state '_last_lr' is tensor([1.]), which StepLR does not take"),
    ("train", resume_more(with_scheduler(lambda st: st.pop("base_lrs"))),
     "its lr_scheduler state lacks base_lrs"),
    ("train", resume_more(lambda c: (mid_epoch(c), c["partial_sums"].update(loss="x"))),
     "its 'partial_sums' holds values that are not tensors"),
    ("train", resume_more(lambda c: (mid_epoch(c), c["partial_sums"].update(
        kl_per_node=torch.ones(7)))),
     "'kl_per_node' is a torch.float32 (7,), the model's torch.float32 (3,)"),
    ("train", resume_more(lambda c: (mid_epoch(c), c["partial_sums"].update(foo=1.0))),
     "its 'partial_sums' holds values that are not tensors"),
    ("train", resume_more(lambda c: c.update(partial_sums={"n": torch.tensor(1.0)})),
     "are an epoch's, but it holds no position inside one"),
    ("train", resume_more(lambda c: c.update(batches_done=-1)),
     "its 'batches_done' is -1 (a count from 0)"),
    ("train", resume_more(lambda c: c.update(batches_done=10 ** 6)),
     "it stopped after batch 1000000 of an epoch, which now has 2"),
    ("train", resume_more(lambda c: c.update(epoch=-5)), "its 'epoch' is -5 (a count from 0)"),
    ("train", resume_more(lambda c: c.update(nonfinite_steps=-1)), "its 'nonfinite_steps' is -1"),
    ("train", resume_more(lambda c: c.update(monitor_best=float("nan"))),
     "its 'monitor_best' is nan, not a finite number or null"),
    ("train", resume_more(lambda c: c.update(input_dim=100, image_shape=[1, 10, 10])),
     "its model takes 100 input values, the configured data 784"),
    ("sample", resumed(lambda c: c.update(image_shape=[1, 10, 10])),
     "its image_shape [1, 10, 10] is not the (C, H, W) of its 784 input values"),
    ("sample", resumed(lambda c: c.update(image_shape=[1, 28, "28"])), "its image_shape"),
    ("sample", resumed(lambda c: c.update(input_dim=0, image_shape=None)),
     "its 'input_dim' is 0"),
    ("train", resume_more(mid_epoch, "--bs", "32"),
     "was saved inside epoch 2 (after batch 1), and data_loader.args.batch_size changed"),
    ("train", resume_more(mid_epoch, "--seed", "5"), "and seed changed"),
    ("train", resume_more(mid_epoch, "--set", "data_loader.args.subset=256"),
     "data_loader.args.subset changed"),
    # -- H2: structure in configs and checkpoints: depth, self-reference, size, long numbers --
    ("train", lambda s: ["-c", str(s.write("deep.json", '{"name": ' + "[" * 100_000
                                           + "]" * 100_000 + "}"))], "nests too deep"),
    ("train", lambda s: ["-c", str(s.write("deep.json", '{"name": ' + "[" * 200 + "]" * 200
                                           + "}"))], "'name' must be a string"),
    ("train", lambda s: ["-c", str(s.write("digits.json", '{"seed": ' + "7" * 5000 + "}"))],
     "holds an integer of thousands of digits"),
    ("train", lambda s: ["-c", str(s.config_file(top(seed=int("7" * 4000))))],
     "'seed' must be in [0, 9223372036854775807]"),
    ("train", train_config(None, "--set", "trainer.epochs=" + "9" * 5000),
     "holds an integer of thousands of digits"),
    ("train", train_config(None, "--set", "arch.args.encoder_hidden=" + "[" * 1000 + "]" * 1000),
     "nests too deep"),
    ("train", lambda s: ["-c", str(s.write("big.json", '{"name": "' + "x" * 2_000_000 + '"}'))],
     "larger than any config"),
    ("sample", resumed(lambda c: c["config"].update(seed=10 ** 500)),
     "'seed' must be in [0, 9223372036854775807]"),
    ("train", resumed(lambda c: c.update(epoch=10 ** 40)), "its 'epoch' is 1000000000"),
    ("train", deeply_nested_checkpoint, "nests too deep"),
    # -- H3: paths are the user's ---------------------------------------------------------------
    ("train", lambda s: ["--resume", str(s.checkpoint), "--epochs", "2", "--run-id", "other"],
     "--run-id chooses where a new run goes; a resumed run continues in its checkpoint's"),
    ("train", lambda s: ["--resume", str(s.checkpoint), "--epochs", "2", "--save-dir",
                         str(s.tmp / "elsewhere")], "--save-dir chooses where a new run goes"),
    ("train", lambda s: ["--resume", str(s.checkpoint), "--epochs", "2", "--set",
                         f"trainer.save_dir={s.tmp / 'elsewhere'}"],
     "--set trainer.save_dir chooses where a new run goes"),
    ("train", train_config(top(name="n" * 300)), "'name' must be one folder name"),
    ("train", train_config(top(name="two\nlines")), "'name' must be one folder name"),
    ("train", train_config(top(name="~")), "'name' must be one folder name"),
    ("train", train_config(None, "--run-id", "~root"), "--run-id must be one folder name"),
    ("train", train_config(None, "--run-id", "r" * 256), "--run-id must be one folder name"),
    ("train", train_config(None, "--run-id", "tab\there"), "--run-id must be one folder name"),
    # -- H4: a batch of one ---------------------------------------------------------------------
    ("train", train_config(None, "--bs", "1"),
     "batch_size 1 cannot train GraphVAE, whose BatchNorm layers need at least 2 examples"),
    ("train", train_config(loader(subset=1)), "the training split holds 1 example(s)"),
    ("train", train_config(loader(subset=None, validation_size=59_999)),
     "the training split holds 1 example(s)"),
    # -- H6: data values that are finite but unusable -------------------------------------------
    ("train", strokes(lambda s: s.strokes_npz(np.full((10, 3), 1e300), [4, 6])),
     "sequence 0 has a value beyond float32's range"),
    ("train", strokes(lambda s: s.strokes_npz(np.r_[np.zeros((7, 3)), [[0, -1e39, 0]],
                                                     np.zeros((2, 3))], [4, 6])),
     "sequence 1 has a value beyond float32's range (|x| > 3.4e38), which it is trained in "
     "(at step 7"),
    ("train", strokes(lambda s: s.strokes_npz(np.zeros((40, 3), np.float32), [10] * 4)),
     "offsets (dx, dy) of source"),
    ("train", strokes(lambda s: s.strokes_npz(np.ones((40, 3), np.float32), [10] * 4)),
     "do not vary (all equal)"),
    ("train", strokes(lambda s: s.strokes_npz(np.c_[np.zeros(40), np.full((40, 2), 3e38)]
                                              .astype(np.float32), [10] * 4)),
     "offsets (dx, dy) of source"),
    # -- H7: sizes, before anything is allocated or created -------------------------------------
    ("train", lambda s: ["--resume", str(s.sparse("huge.safetensors", 100 * 2 ** 30))],
     "(100.0 GiB, larger than any graphvae checkpoint)"),
    ("test", lambda s: ["--resume", str(s.sparse("big.safetensors", 5 * 2 ** 30, b"PK"))],
     "(5.0 GiB, larger than any graphvae checkpoint)"),
    ("sample", lambda s: ["--resume", str(s.unread(s.sparse("notzip.safetensors", 2 ** 30)))],
     "is not a readable checkpoint"),
    ("train", strokes(Setup.huge_header_npz),
     "the header of 'steps' declares a float32 array of shape (100000000000, 3)"),
    ("train", strokes(lambda s: s.sparse("big.npy", 9 * 2 ** 30,
                                         np_header((400_000_000, 3), "<f8"))),
     "more than the 8 GiB graphvae loads"),
    ("train", Setup.big_idx, "holds 11,000,000 images (8 GiB), more than the 8 GiB graphvae loads"),
    ("train", train_config(arch(encoder_hidden=[10 ** 13])),
     "arch.args make a model of 8.21e+15 parameters"),
    ("train", train_config(arch(decoder_hidden=[10 ** 6, 10 ** 6])), "arch.args make a model of"),
    ("train", train_config(arch(n_nodes=200_000)), "'arch.args.n_nodes' must be in [1, 32], got 200000"),
    ("train", train_config(arch(node_dim=10 ** 9)), "arch.args make a model too large to count"),
    ("train", train_config(arch(latent_dim=10 ** 13, n_nodes=3)),
     "latent_dim 10000000000000 is not divisible by n_nodes 3"),
    ("sample", resumed(lambda c: c.update(input_dim=10 ** 12, image_shape=None)),
     "arch.args make a model of"),
    ("sample", lambda s: ["--resume", str(s.checkpoint), "--traverse", "0", "--rows", "100000",
                          "--traversal-steps", "100000"],
     "--rows x --traversal-steps asks for 10,000,000,000"),
    ("sample", lambda s: ["--resume", str(s.checkpoint), "-n", str(10 ** 9)],
     "-n asks for 1,000,000,000, more than the 10,000 one figure holds"),
    ("sample", lambda s: ["--resume", str(s.checkpoint), "--sequence-length", str(10 ** 6)],
     "--sequence-length asks for 1,000,000"),
    ("train", train_config(gates(tau_init=1e308, tau_floor=1e-308)),
     "'arch.args.gate_schedule.tau_init' must be in [1e-6, 1e6], got 1e+308"),
    ("train", train_config(gates(tau_floor=1e-308)),
     "'arch.args.gate_schedule.tau_floor' must be in [1e-6, 1e6]"),
    ("train", train_config(gates(tau_rate=2.0)), "'arch.args.gate_schedule.tau_rate' must be in (0, 1]"),
    ("train", train_config(top(optimizer={"type": "Adam", "args": {"betas": [0.9]}})),
     "'optimizer.args.betas' must be a list of 2 numbers like its default [0.9, 0.999]"),
    ("train", train_config(top(optimizer={"type": "Adam", "args": {"betas": [0.9, 0.99, 0.9]}})),
     "'optimizer.args.betas' must be a list of 2 numbers"),
    ("train", train_config(top(optimizer={"type": "Adam", "args": {"betas": ["a", "b"]}})),
     "'optimizer.args.betas' must be a list of 2 numbers"),
    ("train", train_config(top(optimizer={"type": "Rprop", "args": {"etas": [0.5]}})),
     "'optimizer.args.etas' must be a list of 2 numbers"),
    # -- H8: non-finite or unverified weights ---------------------------------------------------
    ("train", resume_more(nonfinite("gates.logits")), "its 'model.gates.logits' has a NaN, an infinity"),
    ("test", resumed(nonfinite("encoder.0.weight", float("inf"))),
     "its 'model.encoder.0.weight' has a NaN, an infinity"),
    ("sample", resumed(nonfinite("bottom_up.1.running_var")), "has a NaN, an infinity"),
    ("train", lambda s: ["--resume", str(s.digestless()), "--epochs", "2"],
     "is a checkpoint of an earlier graphvae"),
    ("test", lambda s: ["--resume", str(s.digestless())],
     "is a checkpoint of an earlier graphvae (torch.save's format), which this version does not "
     "read; convert it once with python -m trainer.convert_checkpoint"),
    ("sample", lambda s: ["--resume", str(s.digestless())], "earlier graphvae"),
    # -- H9: image files of other shapes --------------------------------------------------------
    ("train", idx_images(idx(2, 10, 10)),
     "holds 2 images of 10 x 10, not the 28 x 28 images of this data set; delete it"),
    ("train", idx_images(idx(2, 0, 0)), "holds 2 images of 0 x 0, not the 28 x 28 images"),
    ("train", idx_images(idx(2, 28, 10)), "holds 2 images of 28 x 10, not the 28 x 28 images"),
    ("test", evaluate_on_test_images(idx(2, 10, 10)),
     "t10k-images-idx3-ubyte holds 2 images of 10 x 10"),
    # -- H10: reproduce.py, checked before anything trains --------------------------------------
    ("reproduce", reproduce_args("-k", "0"), "-k 0 leaves the table without its log p(x)"),
    ("reproduce", reproduce_args("--test-limit", "-5"),
     "--test-limit must be a positive number of test images, got -5"),
    ("reproduce", reproduce_args("--test-limit", "0"), "--test-limit must be a positive"),
    ("reproduce", reproduce_args("--seeds", "0", "0"), "--seeds gives 0 more than once"),
    ("reproduce", reproduce_args("--seeds", "1", "2", "1"), "--seeds gives 1 more than once"),
    ("reproduce", reproduce_args("--seeds", "-1"), "--seeds must be integers in 0..2**63-1"),
    ("reproduce", reproduce_with(lambda s: ["--results", str(s.write("file", "x"))]),
     "is a file, not a directory; choose another --results"),
    ("reproduce", reproduce_with(lambda s: ["--out", str(s.write("file", "x") / "out")]),
     "is a file, not a directory; choose another --out"),
    ("reproduce", reproduce_with(lambda s: s.results_file('{"model": "graph_vae", "se')),
     "graph_vae_seed0.json is not a whole results file of reproduce.py"),
    ("reproduce", reproduce_with(lambda s: s.results_file("[1, 2]")), "not a JSON object"),
    ("reproduce", reproduce_with(lambda s: s.results_file('{"settings": {}}')),
     "is not a whole results file of reproduce.py (no 'epochs')"),
    ("reproduce", reproduce_args("--set", "trainer.epochz=3"), "unknown key 'trainer.epochz'"),
    ("reproduce", reproduce_args("--jobs", "100000"), "--jobs 100000: this machine has"),
    ("reproduce", reproduce_args("--jobs", "0"), "--jobs must be positive, got 0"),
    ("reproduce", reproduce_args("--partition", "gpu"),
     "--partition sets Slurm jobs: give --launcher slurm"),
    ("reproduce", reproduce_args("--launcher", "slurm", "--jobs", "2"),
     "--jobs is for --launcher local"),
    ("reproduce", reproduce_args("--launcher", "slurm", "--gpus-per-run", "2"),
     "--gpus-per-run 2: a run trains in one process on one GPU; give 0 or 1"),
    ("reproduce", reproduce_args("--launcher", "slurm", "--time", "0"),
     "--time and --cpus-per-run must be positive"),
    ("reproduce", reproduce_args("--launcher", "slurm", "--device", "1"),
     "--device 1 picks GPUs of this machine; a Slurm job gets its own: give --gpus-per-run"),
    # -- H11: duplicate keys ----------------------------------------------------------------------
    ("train", lambda s: ["-c", str(s.write("twice.json", '{"name": "a", "name": "b"}'))],
     "gives the key 'name' twice in one object; keep one"),
    ("train", train_config(None, "--set", 'arch.args.gate_schedule={"lr": 1, "lr": 2}'),
     "gives the key 'lr' twice in one object"),
    # -- overrides: every one counts, or the conflict is one line -------------------------------
    ("train", train_config(None, "--epochs", "1", "--set", 'trainer={"epochs": 3}'),
     "--set trainer and --epochs both set 'trainer.epochs'; give it once"),
    ("train", train_config(None, "--set", "trainer.epochs=2", "--set", "trainer.epochs=3"),
     "--set trainer.epochs and --set trainer.epochs both set 'trainer.epochs'"),
    ("train", train_config(None, "--set", 'arch.args={"n_nodes": 2}', "arch.args.n_nodes=4"),
     "--set arch.args and --set arch.args.n_nodes both set 'arch.args.n_nodes'"),
    ("train", lambda s: ["--resume", str(s.checkpoint), "--set", 'trainer={"save_dir": "x"}'],
     "--set trainer chooses where a new run goes"),
    ("reproduce", reproduce_args("--set", "trainer.epochs=3"),
     "--set trainer.epochs and --epochs both set 'trainer.epochs'"),
    # -- bounds that keep a run finite ----------------------------------------------------------
    ("train", train_config(None, "--epochs", str(10 ** 25)),
     "'trainer.epochs' must be in [1, 10000], got 10000000000000000000000000"),
    ("train", train_config(arch(n_nodes=100)), "'arch.args.n_nodes' must be in [1, 32], got 100"),
    ("train", train_config(None, "--data-dir", ""),
     "'data_loader.args.data_dir' is empty; name a folder or file ('.' for the current folder)"),
    ("train", train_config(None, "--save-dir", ""), "'trainer.save_dir' is empty"),
    ("train", strokes_loader(source=""), "'data_loader.args.source' is empty"),
    # -- data values out of range ---------------------------------------------------------------
    ("train", strokes(lambda s: s.strokes_npz(np.c_[np.full(40, 7.0), np.random.randn(40, 2)],
                                              [10] * 4)),
     "strokes.npz: sequence 0 has a pen_lift other than 0 or 1 (at step 0 of the file)"),
    ("train", strokes(lambda s: s.strokes_npz(np.c_[np.r_[np.zeros(25), [0.5], np.zeros(14)],
                                                    np.random.randn(40, 2)], [10] * 4)),
     "sequence 2 has a pen_lift other than 0 or 1 (at step 25 of the file)"),
    ("convert", lambda s: [str(s.npy(np.array([np.c_[np.full(3, -1.0), np.ones((3, 2))],
                                               np.zeros((4, 3))], dtype=object))), str(s.tmp / "out.npz")],
     "sequence 0 has a pen_lift other than 0 or 1"),
    ("train", strokes_loader(subsample=-1), "'data_loader.args.subsample' must be in [1, inf)"),
    ("train", strokes_loader(subsample=0), "'data_loader.args.subsample' must be in [1, inf)"),
    # -- flags: one line, never a traceback or a usage block ------------------------------------
    ("train", lambda s: ["--epochs", "x"], "argument --epochs: invalid int value: 'x'"),
    ("test", lambda s: ["--bogus"], "unrecognized arguments: --bogus"),
    ("reproduce", lambda s: ["--dataset", "imagenet"], "argument --dataset: invalid choice"),
    ("throughput", lambda s: ["--window", "0"], "argument --window: must be an integer >= 1, got 0"),
    ("throughput", lambda s: ["--threads", "0"],
     "argument --threads: must be an integer from 1 to"),
    ("throughput", lambda s: ["--threads", "100000"], "(this machine's CPU cores), got 100000"),
    ("eval_speed", lambda s: ["--images", "-5"], "argument --images: must be an integer >= 1"),
    ("eval_speed", lambda s: ["--threads", "x"], "argument --threads: must be an integer, got 'x'"),
    ("edge_gradients", lambda s: [], "give the checkpoint whose edges are examined with --resume"),
    ("edge_gradients", strokes_payload_in_checkpoint, "paths are never taken from a checkpoint"),
    ("edge_gradients", lambda s: ["--resume", "x", "--batches", "0"], "argument --batches"),
    ("ddp_scaling", lambda s: ["--procs", "0"], "argument --procs: must be an integer from 1"),
    # -- a flag that does not apply is refused, not ignored -------------------------------------
    ("sample", lambda s: ["--resume", str(s.checkpoint), "--sequence-length", "50"],
     "--sequence-length does not apply to GraphVAE, an image model: leave it out"),
    ("sample", lambda s: ["--resume", str(s.checkpoint), "--rows", "3"],
     "--rows shapes a traversal: give --traverse too, or leave it out"),
    ("sample", lambda s: ["--resume", str(s.checkpoint), "--out", str(s.linked("s.png"))],
     "s.png is a symbolic link; graphvae writes no file through a link"),
    # -- what a path is, said as it is -----------------------------------------------------------
    ("train", lambda s: ["-c", str(s.tmp)], "is a folder, not a file (pass a config file"),
    ("train", lambda s: ["-c", str(s.fifo())], "is a named pipe (FIFO), not a file"),
    ("train", lambda s: ["--resume", str(s.run)], "is a folder, not a file"),
    ("test", lambda s: ["--resume", "/dev/null"], "checkpoint /dev/null is a device, not a file"),
    ("train", strokes(lambda s: s.tmp), "is a folder, not a file (an .npz made by"),
    ("test", resumed(lambda c: c["model"]["bottom_up.1.running_var"].fill_(-1.0)),
     "its 'model.bottom_up.1.running_var' has negative values, and a variance never is"),
    # -- results are never replaced by a lesser evaluation --------------------------------------
    ("test", lambda s: s.earlier_results(n_examples=10000, samples=1000) + ["--limit", "10"],
     "holds a fuller evaluation (10000 examples, K=1000) than this one would be (10 examples, "
     "K=1000) and is kept: move it away to replace it"),
    ("test", lambda s: s.earlier_results(n_examples=10000, samples=5000),
     "(10000 examples, K=5000) than this one would be (the whole split, K=1000)"),
]


def np_header(shape, dtype="<f4"):
    """The bytes of a .npy header for an array of shape and dtype (no data)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False,
                                                  "shape": shape})
    return header.getvalue()


def tree(*roots):
    """Every file and directory under roots, with what would show a change."""
    return {p: (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns)
            for root in roots for p in [root, *Path(root).rglob("*")]}


@pytest.mark.parametrize("script, make_argv, expected", CASES,
                         ids=[f"{k}-{script}: {expected[:48]}"
                              for k, (script, _, expected) in enumerate(CASES)])
def test_bad_input_gets_one_line_and_changes_nothing(setup, trained_run, capsys, script,
                                                     make_argv, expected):
    argv = make_argv(setup)
    before = tree(setup.tmp, trained_run.parents[3])
    capsys.readouterr()
    status = run_cli(lambda: SCRIPTS[script](argv))
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expected in err, err
    assert tree(setup.tmp, trained_run.parents[3]) == before, "files were created or changed"
    assert not setup.marker.exists(), "loading a file ran code"


def test_a_payload_in_a_real_process_prints_one_line(setup):
    """The same promise outside pytest's capture: nothing else reaches stderr (warnings)."""
    config = setup.config_file(config=setup.strokes_config(setup.payload_npy()))
    result = subprocess.run([sys.executable, "train.py", "-c", str(config)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert not setup.marker.exists() and not (setup.tmp / "saved").exists()


def test_ctrl_c_while_starting_is_one_line(setup):
    """A Ctrl-C during the imports, before any handler of ours runs its course."""
    process = subprocess.Popen([sys.executable, "train.py", "-c", str(setup.config_file())],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode in (-signal.SIGINT, 130), err
    assert err == "error: interrupted (Ctrl-C)\n", err
    assert not (setup.tmp / "saved").exists()


def test_ctrl_c_while_loading_data_is_one_line(setup, capsys, monkeypatch):
    import experiment

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "build_loader", interrupted)
    assert run_cli(lambda: train.main(["-c", str(setup.config_file())])) == 130
    assert capsys.readouterr().err == "error: interrupted (Ctrl-C)\n"
    assert not (setup.tmp / "saved").exists()


def test_a_stopped_run_promises_no_file_that_does_not_exist(setup, capsys, monkeypatch):
    """After SIGTERM the run says how to resume, not "Done. Evaluate with model_best.safetensors"."""
    from trainer import Trainer
    original = Trainer.train_step

    def stop_then_step(self, batch):
        signal.raise_signal(signal.SIGTERM)
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_step", stop_then_step)
    assert run_cli(lambda: train.main(["-c", str(setup.config_file())])) == 0
    out = capsys.readouterr().out
    assert "Resume with:" in out and "Done." not in out and "model_best" not in out, out


# -- files we write: never through a link planted in a run folder -----------------------------
@pytest.mark.parametrize("planted", [".lock", "config.json", "log", "log/info.log",
                                     "checkpoint-epoch2.safetensors"])
def test_a_resumed_run_writes_nothing_through_a_planted_link(setup, capsys, planted):
    victim = setup.tmp / "victim"
    victim.mkdir() if planted == "log" else victim.write_text("precious\n")
    before = tree(victim)
    (setup.run / planted).parent.mkdir(exist_ok=True)
    shutil.rmtree(setup.run / planted, ignore_errors=True)
    (setup.run / planted).unlink(missing_ok=True)
    (setup.run / planted).symlink_to(victim)
    status = run_cli(lambda: train.main(["--resume", str(setup.checkpoint), "--epochs", "2"]))
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert f"{setup.run / planted} is a symbolic link; graphvae writes no file through" in err
    assert tree(victim) == before, "a file was written through the link"


@pytest.mark.parametrize("suffix", ["-test.json", "-graph.json", "-graph.dot"])
def test_evaluation_writes_nothing_through_a_planted_link(setup, capsys, suffix):
    victim = setup.write("victim", "precious\n")
    written = [setup.run / f"checkpoint-latest{s}" for s in ("-test.json", "-graph.json",
                                                             "-graph.dot")]
    (setup.run / f"checkpoint-latest{suffix}").symlink_to(victim)
    status = run_cli(lambda: test_script.main(["--resume", str(setup.checkpoint), "-k", "0",
                                               "--limit", "10", "--no-edge-values"]))
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "is a symbolic link" in err, err
    assert victim.read_text() == "precious\n"
    assert not any(p.exists() and not p.is_symlink() for p in written), "a result was written"


def test_the_writer_refuses_a_link_and_leaves_no_temporary_file(tmp_path):
    from utils.files import LinkRefused, write_file
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "out.json").symlink_to(victim)
    with pytest.raises(LinkRefused):
        write_file(tmp_path / "out.json", "{}")
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "victim"]
    write_file(tmp_path / "new.json", "{}")
    assert (tmp_path / "new.json").read_text() == "{}"


def test_every_override_counts(setup):
    """--set given twice, and a section given whole beside a flag that sets a key inside it:
    each lands in the run's config (none replaces another)."""
    from cli import load_run_config
    args = train.add_flags(train.parser(""), *train.FLAGS).parse_args([
        "-c", str(setup.config_file()), "--set", "data_loader.args.subset=64",
        "--set", 'trainer={"save_period": 3}', "--epochs", "1",
        "--set", "arch.args.n_nodes=2", "trainer.early_stop=4"])
    config, _ = load_run_config(args)
    assert config["data_loader"]["args"]["subset"] == 64
    assert config["arch"]["args"]["n_nodes"] == 2
    assert (config["trainer"]["epochs"], config["trainer"]["save_period"],
            config["trainer"]["early_stop"]) == (1, 3, 4)


@pytest.mark.parametrize("script", ["train", "test"])
def test_a_closed_stdout_stops_quietly(setup, script):
    """`python train.py ... | head -1`: no traceback, no "Logging error"; training stops with
    its checkpoint saved, to resume."""
    argv = (["-c", str(setup.config_file())] if script == "train" else
            ["--resume", str(setup.checkpoint), "-k", "0", "--limit", "10", "--no-edge-values"])
    process = subprocess.Popen([sys.executable, f"{script}.py", *argv], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.readline()
    process.stdout.close()  # what head does after its line
    err = process.stderr.read()
    assert process.wait(timeout=300) in (0, 141) and err == "", err
    if script == "train":
        runs = list((setup.tmp / "saved" / "models").glob("*/*"))
        assert [p.name for p in runs[0].glob("checkpoint-latest.safetensors")], runs


@pytest.mark.parametrize("flag", [["--traverse", "0"], ["--rows", "2"]])
def test_image_flags_are_refused_for_a_sequence_model(flag):
    class SequenceModel:
        def generate(self, n, length):
            raise AssertionError("never drawn")

    args = sample.parse_args(["--resume", "x.safetensors", *flag])
    with pytest.raises(sample.ConfigError, match=f"{flag[0]} does not apply to SequenceModel, "
                                                 f"a sequence model: leave it out"):
        sample.check_flags_apply(args, SequenceModel())
