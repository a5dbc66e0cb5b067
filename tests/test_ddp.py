"""DDP on the CPU with gloo: two processes train like one with the same global batch, keep
identical structure logits, reduce their metrics, and resume exactly. Every run here is on
the CPU (n_gpu 0) whatever GPUs the machine has: NCCL on GPUs is tests/test_cuda.py's."""
import socket

import pytest
import torch
import torch.multiprocessing as mp

import train
from tests.conftest import become_rank, write_config
from tests.test_training import logged, run_dir
from trainer import Trainer
from trainer.checkpoint import load_checkpoint
from utils.errors import run_cli


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_worker(rank, argv, out_dir, port):
    """One torchrun-like rank: train, then record this rank's structure logits."""
    become_rank(rank, port)
    original = Trainer.fit

    def train_and_record(self):
        original(self)
        torch.save(self.model.gates.logits.detach().clone(), f"{out_dir}/logits{rank}.pt")
        torch.save({"find_unused_parameters": self.train_forward.find_unused_parameters,
                    "static_graph": self.train_forward.static_graph}, f"{out_dir}/ddp{rank}.pt")

    Trainer.fit = train_and_record
    status = run_cli(lambda: train.main(argv))
    if status != 0:
        raise SystemExit(status)


def run_ddp(argv, out_dir):
    mp.spawn(ddp_worker, args=(argv, str(out_dir), free_port()), nprocs=2, join=True)


def ddp_config(tiny_config, save_dir, batch_size, epochs=2):
    tiny_config["n_gpu"] = 0  # gloo on CPUs, also on a GPU machine
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
    single = load_checkpoint(run_dir(tmp_path / "one") / "checkpoint-latest.safetensors")
    assert (logits[0] - single["model"]["gates.logits"]).abs().max() > 0  # they moved
    # The same examples per step and averaged gradients; BatchNorm statistics and the noise
    # are per process, so the runs agree up to that: within 1 % on every logged loss.
    for key in ("loss", "val_loss"):
        a, b = logged(tmp_path / "one", key), logged(tmp_path / "two", key)
        assert len(a) == len(b) == 2
        assert all(abs(x - y) / abs(x) < 0.01 for x, y in zip(a, b)), (key, a, b)
    assert logged(tmp_path / "two", "val_loss")  # only rank 0 wrote the log
    assert len(list((tmp_path / "two" / "models").glob("*/*"))) == 1


@pytest.mark.parametrize("arch", ["GraphVAE", "GraphLSTMVAE"])
def test_ddp_trains_a_graph_of_one_node(arch, tiny_config, tmp_path):
    """One latent node: the gates have no edges (empty logits) and GraphLSTMVAE never calls
    its LSTM, so parameters get no gradient: DDP must not wait for them ("Expected to have
    finished reduction" at step 2)."""
    config = ddp_config(tiny_config, tmp_path / "saved", batch_size=32, epochs=1)
    config["arch"]["type"] = arch
    config["arch"]["args"]["n_nodes"] = 1
    run_ddp(["-c", str(write_config(tmp_path, config))], tmp_path)
    assert logged(tmp_path / "saved", "loss")
    flags = torch.load(tmp_path / "ddp0.pt")
    assert flags == {"find_unused_parameters": False, "static_graph": True}  # no extra search


@pytest.mark.parametrize("own_optimizer", [False, True])
def test_under_ddp_a_frozen_graph_keeps_its_logits(own_optimizer, tiny_config, tmp_path):
    """After the freeze the logits get no gradient (nor from the structure cost): DDP is told
    (the model is wrapped again) and they stay where they froze, on every rank, also with an
    optimiser of their own."""
    config = ddp_config(tiny_config, tmp_path / "saved", batch_size=32, epochs=2)
    config["arch"]["args"]["gate_schedule"]["freeze_epoch"] = 1  # frozen from epoch 2
    if own_optimizer:
        del config["arch"]["args"]["gate_schedule"]["lr"]
        config["structure_optimizer"] = {"type": "SGD", "args": {"lr": 0.5}}
        config["arch"]["args"]["structure_prior"] = {"edge_penalty": 0.1}
    run_ddp(["-c", str(write_config(tmp_path, config))], tmp_path)
    at_freeze = load_checkpoint(run_dir(tmp_path / "saved") / "checkpoint-epoch1.safetensors")
    for rank in (0, 1):
        logits = torch.load(tmp_path / f"logits{rank}.pt")
        assert torch.equal(logits, at_freeze["model"]["gates.logits"]), rank
    assert not torch.equal(logits, torch.zeros_like(logits))  # they had moved before


def straight_and_resumed(run, make_config, tiny_config, tmp_path):
    """The last checkpoints of two epochs trained straight and of one epoch then a resume to
    two, each launched by run(argv, tmp_path) from make_config(tiny_config, save_dir, ...)."""
    straight = make_config(tiny_config, tmp_path / "straight", batch_size=32)
    run(["-c", str(write_config(tmp_path, straight, "a.json"))], tmp_path)
    split = make_config(tiny_config, tmp_path / "split", batch_size=32, epochs=1)
    run(["-c", str(write_config(tmp_path, split, "b.json"))], tmp_path)
    latest = run_dir(tmp_path / "split") / "checkpoint-latest.safetensors"
    run(["--resume", str(latest), "--epochs", "2"], tmp_path)
    return (load_checkpoint(run_dir(tmp_path / "straight") / "checkpoint-latest.safetensors"),
            load_checkpoint(latest))


def test_resume_under_ddp_continues_exactly(tiny_config, tmp_path):
    a, b = straight_and_resumed(run_ddp, ddp_config, tiny_config, tmp_path)
    assert b["epoch"] == 2
    assert logged(tmp_path / "straight", "val_loss") == logged(tmp_path / "split", "val_loss")
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


# -- multi-GPU faults, caught without a GPU ------------------------------------------------
def test_a_mid_epoch_checkpoint_stores_cpu_sums_that_resume_on_the_trainers_device(
        tiny_config, tmp_path, monkeypatch):
    """Saved on a GPU, the partial sums of a stopped epoch must come back on the device the
    resumed run trains on (here the meta device stands in for a GPU)."""
    from experiment import build_trainer
    from tests.test_reliability import stop_at_step
    from utils.config import ConfigParser
    tiny_config["trainer"].update(epochs=1, tensorboard=False, save_dir=str(tmp_path / "s"))
    stop_at_step(monkeypatch, 3)
    assert run_cli(lambda: train.main(["-c", str(write_config(tmp_path, tiny_config))])) == 0
    checkpoint = load_checkpoint(run_dir(tmp_path / "s") / "checkpoint-latest.safetensors")
    sums = checkpoint["partial_sums"]
    assert sums and all(v.device.type == "cpu" for v in sums.values() if torch.is_tensor(v))
    trainer = build_trainer(ConfigParser(checkpoint["config"]), validate=False)
    trainer.device = torch.device("meta")
    trainer.load_state_dict(checkpoint)
    assert trainer.partial_sums["kl_per_node"].device.type == "meta"


def test_rng_states_are_saved_per_rank_and_restored_by_rank(tiny_config, monkeypatch):
    from experiment import build_trainer
    from trainer import resume
    from utils import distributed
    from utils.config import ConfigParser
    trainer = build_trainer(ConfigParser(tiny_config), validate=False)
    states = []
    for seed in (10, 11):  # what ranks 0 and 1 would have saved
        torch.manual_seed(seed)
        states.append(resume.rng_state(trainer.device))
    for rank, seed in ((0, 10), (1, 11)):
        monkeypatch.setattr(distributed, "world", lambda r=rank: (r, 2, r))
        resume.restore_rng(trainer, states)
        torch.manual_seed(seed)
        reference = torch.rand(3)
        resume.restore_rng(trainer, states)
        assert torch.equal(torch.rand(3), reference), rank
    # Resumed with more processes than saved: allowed, with a warning that it is not exact.
    monkeypatch.setattr(distributed, "world", lambda: (2, 3, 2))
    resume.restore_rng(trainer, states)
    assert any("not bit for bit" in note for _, note in trainer.notes)


def test_each_rank_draws_its_own_noise(tiny_config, monkeypatch):
    from experiment import seed_everything
    from utils import distributed
    from utils.config import ConfigParser
    config = ConfigParser(tiny_config)
    draws = []
    for rank in (0, 1):
        monkeypatch.setattr(distributed, "world", lambda r=rank: (r, 2, r))
        seed_everything(config)
        draws.append(torch.rand(4))
    assert not torch.equal(draws[0], draws[1])
    monkeypatch.setattr(distributed, "world", lambda: (0, 2, 0))
    seed_everything(config)
    assert torch.equal(torch.rand(4), draws[0])  # and reproducible


def test_evaluation_shards_cover_every_example_once():
    from data_loader.data_loaders import SequenceDataLoader
    sequences = [torch.zeros(2, 3).numpy() for _ in range(7)]
    shards = [SequenceDataLoader(sequences, batch_size=2, shuffle=False, seed=0,
                                 num_replicas=2, rank=r).epoch_order() for r in (0, 1)]
    assert sorted(shards[0] + shards[1]) == list(range(7))  # no padding with duplicates
    training = [SequenceDataLoader(sequences, batch_size=2, shuffle=True, seed=0,
                                   num_replicas=2, rank=r) for r in (0, 1)]
    assert len(training[0]) == len(training[1])  # training shards stay even (DDP steps)


def test_the_device_comes_from_the_run(monkeypatch):
    """(--device forms, GPU counts and one process per GPU: tests/test_devices.py.)"""
    from cli import add_flags, load_run_config, parser
    from utils import distributed
    from utils.config import ConfigParser
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert distributed.uses_gpu(None) and distributed.uses_gpu(2) and not distributed.uses_gpu(0)
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert distributed.local_device(True) == torch.device("cuda", 0)
    assert distributed.local_device(False) == torch.device("cpu")
    args = add_flags(parser(""), "-c", "-d").parse_args(["-c", "config.json", "-d", "cpu"])
    config, _ = load_run_config(args)
    assert config["n_gpu"] == 0 and isinstance(config, ConfigParser)


def piano_config(tiny_config, save_dir, batch_size):
    config = {"name": "piano", "n_gpu": 0, "arch": {"type": "RecurrentGraphVAE", "args": {
                  "likelihood": "bernoulli", "rnn_hidden": 16, "hidden": 16, "feature_dim": 8,
                  "node_dim": 2}},
              "data_loader": {"type": "PianoRollDataLoader", "args": {
                  "data_dir": tiny_config["data_loader"]["args"]["data_dir"], "limit": 12,
                  "batch_size": batch_size, "valid_fraction": 0.25, "test_fraction": 0.25}},
              "trainer": {"epochs": 2, "tbptt_steps": 16, "save_dir": str(save_dir),
                          "tensorboard": False, "deterministic": True}}
    return config


def test_tbptt_under_ddp_with_ranks_of_different_lengths_matches_one_process(tiny_config, tmp_path):
    """Ranks whose batches have different longest sequences cut as many chunks (no deadlock)
    and weight their losses by their share of the steps, like one process on both batches."""
    one = piano_config(tiny_config, tmp_path / "one", batch_size=6)
    assert run_cli(lambda: train.main(["-c", str(write_config(tmp_path, one, "one.json"))])) == 0
    two = piano_config(tiny_config, tmp_path / "two", batch_size=3)
    mp.spawn(ddp_worker_plain, args=(["-c", str(write_config(tmp_path, two, "two.json"))],
                                     free_port()), nprocs=2, join=True)
    for key in ("loss", "val_loss"):
        a, b = logged(tmp_path / "one", key), logged(tmp_path / "two", key)
        assert len(a) == len(b) == 2
        assert all(abs(x - y) / abs(x) < 0.02 for x, y in zip(a, b)), (key, a, b)


def ddp_worker_plain(rank, argv, port):
    become_rank(rank, port)
    if run_cli(lambda: train.main(argv)) != 0:
        raise SystemExit(1)


def test_on_resume_every_rank_holds_partial_sums_with_the_same_keys(tiny_config, monkeypatch):
    """Rank 0 carries the saved sums on; the others start from zeros of the same keys, so
    every rank enters the same all-reduces at the end of the epoch (no hang)."""
    from experiment import build_trainer
    from utils import distributed
    from utils.config import ConfigParser
    trainer = build_trainer(ConfigParser(tiny_config), validate=False)
    sums = {"loss": torch.tensor(5.0), "kl_per_node": torch.ones(3), "n": torch.tensor(2.0)}
    checkpoint = {**trainer.state_dict(), "batches_done": 3, "partial_sums": sums}
    monkeypatch.setattr(distributed, "is_main", lambda: False)
    trainer.load_state_dict(checkpoint)
    assert set(trainer.partial_sums) == set(sums)
    assert all(torch.equal(v, torch.zeros_like(sums[k])) for k, v in trainer.partial_sums.items())
