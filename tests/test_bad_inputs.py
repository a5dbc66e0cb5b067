"""Bad input of every kind gets one clear line, and creates, changes and runs nothing.

One table: each row is what a user runs (a script and its arguments, set up in a fresh folder
that holds a copy of a trained run) and a fragment of the line it must print. Every row
checks the same promises: exit status 2; exactly one line on stderr, "error: ..."; no file
or directory created or changed, in the folder or in the run; and no file written by a
payload (a pickle that creates a file when it is unpickled).
"""
import json
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import sample
import test as test_script
import train
from data_loader import convert_strokes
from tests.conftest import DATA_DIR, REPO
from utils import run_dirs
from utils.checkpoint import atomic_save, load_checkpoint
from utils.errors import run_cli

SCRIPTS = {"train": train.main, "test": test_script.main, "sample": sample.main,
           "convert": convert_strokes.main}


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
        return self.run / "checkpoint-latest.pth"

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
        path = self.run / "crafted.pth"
        atomic_save(checkpoint, path)
        return path

    def flipped(self):
        """The checkpoint with 2,000 bytes in its middle changed (bit rot)."""
        data = bytearray(self.checkpoint.read_bytes())
        middle = len(data) // 2
        data[middle:middle + 2000] = bytes(b ^ 0xFF for b in data[middle:middle + 2000])
        path = self.run / "rotten.pth"
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

    def idx_dir(self, train_images):
        """An MNIST folder whose training images file holds train_images. (MNIST: a broken
        Fashion-MNIST file is rebuilt from Debian's package, tests/test_data_caches.py.)"""
        raw = self.tmp / "idx" / "MNIST" / "raw"
        raw.mkdir(parents=True)
        good = b"\x00\x00\x08\x03" + struct.pack(">3I", 2, 28, 28) + bytes(2 * 784)
        labels = b"\x00\x00\x08\x01" + struct.pack(">I", 2) + bytes(2)
        for name, data in (("train-images-idx3-ubyte", train_images),
                           ("t10k-images-idx3-ubyte", good),
                           ("train-labels-idx1-ubyte", labels),
                           ("t10k-labels-idx1-ubyte", labels)):
            (raw / name).write_bytes(data)
        return str(self.tmp / "idx")

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


CASES = [
    # -- A: no file runs code; nothing leaves save_dir --------------------------------------
    ("train", strokes(Setup.payload_npy), "is not a pickle-free NumPy file"),
    ("test", strokes_payload_in_checkpoint, "is not a pickle-free NumPy file"),
    ("train", strokes_payload_in_checkpoint, "is not a pickle-free NumPy file"),
    ("train", lambda s: ["--resume", str(s.crafted(lambda c: c.update(
        optimizer={"payload": Payload(s.marker)})))], "holds objects other than tensors"),
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
    ("train", lambda s: ["--resume", str(s.write("empty.pth", b""))],
     "is not a readable checkpoint"),
    ("train", lambda s: ["--resume", str(s.write("text.pth", "hello, I am a text file\n"))],
     "is not a readable checkpoint"),
    ("test", lambda s: ["--resume", str(s.write("cut.pth", s.checkpoint.read_bytes()[:5000]))],
     "is not a readable checkpoint"),
    ("train", lambda s: ["--resume", str(s.tmp / "nope.pth")], "checkpoint not found"),
    ("train", resumed(lambda c: c.update(rng=[{"torch": torch.zeros(10, dtype=torch.uint8)}]),
                      "--epochs", "2"), "its random-number state is damaged"),
    ("train", resumed(lambda c: c.update(rng=[torch.zeros(3)]), "--epochs", "2"),
     "its random-number state is damaged"),
    ("train", resumed(lambda c: c.update(epoch="1")), "its 'epoch' is a str"),
    ("sample", resumed(lambda c: c.pop("state_dict")), "is not a graphvae checkpoint"),
    ("test", resumed(lambda c: c.update(arch="VRNN")), "holds a VRNN"),
    ("sample", resumed(lambda c: c["state_dict"].pop("gates.logits")),
     "does not fit the configured architecture"),
    # -- F: config values, each checked before anything is created ---------------------------
    ("train", train_config(trainer(save_period=0)),
     "'trainer.save_period' must be a positive integer, got 0"),
    ("train", train_config(trainer(verbosity=5)),
     "'trainer.verbosity' must be 0 (warnings), 1 (info) or 2 (debug), got 5"),
    ("train", train_config(None, "--epochs", "0"),
     "'trainer.epochs' must be a positive integer, got 0"),
    ("train", train_config(None, "--epochs", "-3"),
     "'trainer.epochs' must be a positive integer, got -3"),
    ("train", train_config(trainer(kl_warmup_epochs=-1)),
     "'trainer.kl_warmup_epochs' must be >= 0, got -1"),
    ("train", train_config(trainer(free_bits=-0.5)), "'trainer.free_bits' must be >= 0"),
    ("train", train_config(trainer(free_bits=float("nan"))),
     "'trainer.free_bits' must be a finite number, got nan"),
    ("train", train_config(None, "--lr", "inf"),
     "'optimizer.args.lr' must be a finite number, got inf"),
    ("train", train_config(trainer(checkpoint_every_steps=0)),
     "'trainer.checkpoint_every_steps' must be a positive integer"),
    ("train", train_config(trainer(max_nonfinite_steps=0)),
     "'trainer.max_nonfinite_steps' must be a positive integer"),
    ("train", train_config(trainer(tbptt_steps=0)),
     "'trainer.tbptt_steps' must be a positive integer"),
    ("train", train_config(trainer(early_stop=-1)), "'trainer.early_stop' must be >= 0"),
    ("train", train_config(top(n_gpu=-1)), "'n_gpu' must be >= 0"),
    ("train", train_config(None, "--seed", str(2 ** 64)),
     "'seed' must be an integer in 0..2**63-1"),
    ("train", train_config(None, "--seed", "-1"), "'seed' must be an integer in 0..2**63-1"),
    ("train", train_config(trainer(monitor="min foo")),
     "trainer.monitor names 'foo', which is not logged"),
    ("train", train_config(trainer(monitor="lowest val_loss")),
     "'trainer.monitor' must be 'off' or 'min|max <metric>'"),
    ("train", train_config(trainer(epoch=3)),
     "unknown key 'trainer.epoch'; did you mean 'epochs'?"),
    ("train", train_config(trainer(epochs=2.5)), "'trainer.epochs' must be an integer"),
    ("train", train_config(trainer(temperature={})),
     "'trainer.temperature' has moved to arch.args.gate_schedule"),
    ("train", train_config(top(loss="negative_elbo")), "'loss' has moved to nowhere"),
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
     "optimizer.type 'lr_scheduler' is not an optimizer"),
    ("train", train_config(top(optimizer={"type": "Optimizer"})),
     "optimizer.type 'Optimizer' is not an optimizer"),
    ("train", train_config(top(optimizer={"type": "StepLR"})), "unknown optimizer.type 'StepLR'"),
    ("train", train_config(top(lr_scheduler={"type": "StepLR", "args": {"step_size": 0}})),
     "lr_scheduler StepLR cannot make a training step"),
    ("train", train_config(top(lr_scheduler={"type": "StepLR"})),
     "lr_scheduler: missing a required argument: 'step_size'"),
    ("train", train_config(top(lr_scheduler={"type": "LambdaLR", "args": {"lr_lambda": 0.5}})),
     "lr_scheduler.args: 'float' object is not callable"),
    ("train", train_config(top(lr_scheduler={"type": "LRScheduler"})),
     "lr_scheduler.type 'LRScheduler' is not a scheduler"),
    ("train", train_config(lambda c: (c.update(lr_scheduler={"type": "ReduceLROnPlateau"}),
                                      c["trainer"].update(monitor="off"))),
     "ReduceLROnPlateau steps on the monitored metric; set trainer.monitor"),
    ("train", train_config(gates(tau_init=0, tau_floor=0)),
     "gate_schedule.tau_init must be a positive number"),
    ("train", train_config(gates(tau_init=-1)), "gate_schedule.tau_init must be a positive number"),
    ("train", train_config(gates(rate=0.9)), "unknown gate_schedule key 'rate'"),
    ("train", train_config(arch(encoder_hidden=[0])),
     "encoder_hidden[0] must be a positive integer"),
    ("train", train_config(arch(n_nodes=0)), "n_nodes must be a positive integer"),
    ("train", train_config(arch(n_nodes="five")), "'arch.args.n_nodes' must be an integer"),
    ("train", train_config(arch(n_node=4)),
     "unknown key 'arch.args.n_node'; did you mean 'n_nodes'?"),
    ("train", train_config(arch(structure="tree")), "structure must be one of"),
    ("train", train_config(arch(latent_dim=80, n_nodes=3)),
     "latent_dim 80 is not divisible by n_nodes 3"),
    ("train", train_config(lambda c: c["arch"].update(type="GrapVAE")),
     "unknown arch.type 'GrapVAE'; did you mean 'GraphVAE'?"),
    ("train", train_config(lambda c: c["data_loader"].update(type="MNISTLoader")),
     "unknown data_loader.type 'MNISTLoader'"),
    ("train", train_config(loader(seed=3)),
     "'data_loader.args.seed' has moved to the top-level 'seed'"),
    ("train", train_config(loader(batch_size=0)), "batch_size must be positive"),
    ("train", train_config(loader(dataset="imagenet")), "unknown dataset 'imagenet'"),
    ("train", train_config(loader(split_seed=2 ** 64)),
     "split_seed must be an integer in 0..2**63-1"),
    ("train", strokes_loader(valid_fraction=0.5, test_fraction=0.6),
     "valid_fraction and test_fraction must be >= 0 and add up to less than 1"),
    ("train", train_config(None, "--set", "arch.args.n_nodes=0"),
     "n_nodes must be a positive integer"),
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
    ("test", lambda s: ["--resume", str(s.checkpoint), "-k", "-1"], "-k must be >= 0"),
    ("test", lambda s: [], "give the checkpoint to evaluate with --resume"),
]


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
    """After SIGTERM the run says how to resume, not "Done. Evaluate with model_best.pth"."""
    from trainer import Trainer
    original = Trainer.train_step

    def stop_then_step(self, batch):
        signal.raise_signal(signal.SIGTERM)
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_step", stop_then_step)
    assert run_cli(lambda: train.main(["-c", str(setup.config_file())])) == 0
    out = capsys.readouterr().out
    assert "Resume with:" in out and "Done." not in out and "model_best" not in out, out
