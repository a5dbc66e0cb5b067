"""DDP on the CPU with gloo: two processes train like one with the same global batch, keep
identical structure logits, reduce their metrics, and resume exactly. Every run here is on
the CPU (n_gpu 0) whatever GPUs the machine has: NCCL on GPUs is tests/test_cuda.py's."""
import math
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


def ending_worker(rank, argv, port, fail):
    """A rank that trains (or fails after joining the group), then runs the exit hook the run
    registered, as the interpreter does before it finalizes: by then no DDP wrapper, and so
    no process group, may be left for the finalization to free (where gloo's threads abort
    the process). The garbage collector runs only when asked, as when it happens not to."""
    import atexit
    import gc
    import weakref

    from utils import distributed
    from utils.errors import ConfigError
    gc.disable()
    become_rank(rank, port)
    wrappers, hooks, wrap, register = [], [], distributed.wrap_for_ddp, atexit.register

    def data_parallel(*args):
        wrapper = wrap(*args)
        wrappers.append(weakref.ref(wrapper))
        return wrapper

    distributed.wrap_for_ddp = data_parallel
    atexit.register = lambda hook, *args: hooks.append(hook) or register(hook, *args)
    if fail:
        def fail_step(self, batch):
            raise ConfigError("a run that fails while it trains")
        Trainer.train_step = fail_step
    assert run_cli(lambda: train.main(argv)) == (2 if fail else 0)
    assert fail or all(ref() is None for ref in wrappers)  # a finished run ends its group
    assert distributed.shutdown in hooks
    distributed.shutdown()  # as at exit
    assert wrappers and all(ref() is None for ref in wrappers)
    assert not torch.distributed.is_initialized()


@pytest.mark.parametrize("fail", [False, True])
def test_a_rank_ends_its_process_group_before_the_interpreter_finalizes(fail, tiny_config,
                                                                      tmp_path):
    config = ddp_config(tiny_config, tmp_path / "saved", batch_size=32, epochs=1)
    config["data_loader"]["args"].update(subset=128, validation_size=64)
    mp.spawn(ending_worker, args=(["-c", str(write_config(tmp_path, config))], free_port(),
                                  fail), nprocs=2, join=True)


def compiled_ddp_worker(rank, argv, out_dir, port):
    """ddp_worker with torch.compile's backend aot_eager: the autograd graphs a compiled step
    makes (one backward node for the whole graph, which DDP's static-graph hooks must follow),
    without the minutes of a C++ build of the kernels."""
    compile_ = torch.compile
    torch.compile = lambda function, mode=None, options=None: compile_(function,
                                                                       backend="aot_eager")
    ddp_worker(rank, argv, out_dir, port)


def test_a_compiled_step_trains_under_ddp_with_a_static_graph(tiny_config, tmp_path):
    """trainer.compile under DDP (static_graph): the ranks' structure logits move and stay
    identical (gradients averaged over ranks through the compiled backward)."""
    config = ddp_config(tiny_config, tmp_path / "saved", batch_size=32, epochs=1)
    config["trainer"]["compile"] = True
    config["data_loader"]["args"].update(subset=256, validation_size=64)
    mp.spawn(compiled_ddp_worker, args=(["-c", str(write_config(tmp_path, config))],
                                        str(tmp_path), free_port()), nprocs=2, join=True)
    logits = [torch.load(tmp_path / f"logits{rank}.pt") for rank in (0, 1)]
    assert torch.equal(logits[0], logits[1])
    assert not torch.equal(logits[0], torch.zeros_like(logits[0]))  # they moved from 0
    assert torch.load(tmp_path / "ddp0.pt")["static_graph"]
    assert all(math.isfinite(loss) for loss in logged(tmp_path / "saved", "loss"))


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


def test_ddp_broadcasts_buffers_only_where_ranks_batchnorm_statistics_can_differ(tiny_config):
    """Plain BatchNorm: each rank's statistics are its shard's, and rank 0's are copied to
    all (a collective a step); SyncBatchNorm, or no BatchNorm: every rank's buffers are the
    same, and the copy is left out."""
    import torch.distributed as dist

    from experiment import build_model
    from model import RecurrentGraphVAE
    from utils import distributed
    from utils.config import ConfigParser
    from utils.distributed import own_statistics, wrap_for_ddp
    synced = build_model(ConfigParser(tiny_config), 784)
    assert not own_statistics(torch.nn.SyncBatchNorm.convert_sync_batchnorm(synced))
    model = build_model(ConfigParser(tiny_config), 784)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0,
                            world_size=1)
    try:  # (DDP takes SyncBatchNorm on GPUs only)
        cpu = torch.device("cpu")
        assert wrap_for_ddp(model, cpu).will_sync_module_buffers()
        assert not wrap_for_ddp(RecurrentGraphVAE(), cpu).will_sync_module_buffers()
    finally:
        distributed.shutdown()


def validation_batches():
    """Five batches of four made-up images: rank 0's shard holds three, rank 1's two."""
    return list(torch.rand(5, 4, 784, generator=torch.Generator().manual_seed(1)))


def batchnorm_model(tiny_config):
    from experiment import build_model
    from utils.config import ConfigParser
    torch.manual_seed(0)
    return build_model(ConfigParser(tiny_config), 784)


def reestimating_worker(rank, port, tiny_config, out):
    """A rank re-estimating SyncBatchNorm statistics (edge values) on its uneven shard."""
    from trainer.edge_values import reestimate_batch_norm
    from utils import distributed
    become_rank(rank, port)
    distributed.init(False)
    model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(batchnorm_model(tiny_config))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.SyncBatchNorm)]
    shard = validation_batches()[:3] if rank == 0 else validation_batches()[3:]
    reestimate_batch_norm(model, norms, shard, torch.device("cpu"), None)
    torch.save([m.state_dict() for m in norms], f"{out}{rank}.pt")
    distributed.shutdown()


def test_edge_values_reestimate_batchnorm_on_uneven_shards_without_waiting_for_other_ranks(
        tiny_config, tmp_path):
    """SyncBatchNorm forwards are collectives: ranks with different numbers of validation
    batches would wait for each other for ever (on the CPU SyncBatchNorm refuses to run).
    Each rank's statistics come from its own batches, then are combined: every rank ends
    with the average over all five batches, as one process passing over them."""
    from trainer.edge_values import reestimate_batch_norm
    mp.spawn(reestimating_worker, args=(free_port(), tiny_config, str(tmp_path / "norms")),
             nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"norms{rank}.pt") for rank in (0, 1)]
    for a, b in zip(*ranks):
        assert all(torch.equal(a[key], b[key]) for key in a)
        assert a["num_batches_tracked"] == 5
    model = batchnorm_model(tiny_config)  # one process over every batch
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    reestimate_batch_norm(model, norms, validation_batches(), torch.device("cpu"), None)
    first = norms[0].state_dict()  # (its statistics do not depend on the noise drawn)
    assert torch.allclose(first["running_mean"], ranks[0][0]["running_mean"], atol=1e-6)
    assert torch.allclose(first["running_var"], ranks[0][0]["running_var"], rtol=1e-5)


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
    from utils import ranks
    from utils.config import ConfigParser
    trainer = build_trainer(ConfigParser(tiny_config), validate=False)
    states = []
    for seed in (10, 11):  # what ranks 0 and 1 would have saved
        torch.manual_seed(seed)
        states.append(resume.rng_state(trainer.device))
    for rank, seed in ((0, 10), (1, 11)):
        monkeypatch.setattr(ranks, "world", lambda r=rank: (r, 2, r))
        resume.restore_rng(trainer, states)
        torch.manual_seed(seed)
        reference = torch.rand(3)
        resume.restore_rng(trainer, states)
        assert torch.equal(torch.rand(3), reference), rank
    # Resumed with more processes than saved: allowed, with a warning that it is not exact.
    monkeypatch.setattr(ranks, "world", lambda: (2, 3, 2))
    resume.restore_rng(trainer, states)
    assert any("not bit for bit" in note for _, note in trainer.notes)


def test_each_rank_draws_its_own_noise(tiny_config, monkeypatch):
    from experiment import seed_everything
    from utils import ranks
    from utils.config import ConfigParser
    config = ConfigParser(tiny_config)
    draws = []
    for rank in (0, 1):
        monkeypatch.setattr(ranks, "world", lambda r=rank: (r, 2, r))
        seed_everything(config)
        draws.append(torch.rand(4))
    assert not torch.equal(draws[0], draws[1])
    monkeypatch.setattr(ranks, "world", lambda: (0, 2, 0))
    seed_everything(config)
    assert torch.equal(torch.rand(4), draws[0])  # and reproducible


def test_evaluation_shards_cover_every_example_once():
    from data_loader.sequence_loaders import SequenceDataLoader
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


# (data loader, its args, per-rank batch size, tbptt_steps) of sequence runs whose every step
# ends with a chunk of one time step after chunks of several: that chunk computes the
# recurrent state it hands on (the GRU) but no loss from it. Piano: one step an epoch, all 6
# training rolls, the longest 124 = 3 x 41 + 1 steps; cold: the first 6 chorales, training
# rolls of 63 = 2 x 31 + 1 and 52 steps; strokes: two steps, every stroke 39 = 2 x 19 + 1.
SEQUENCE_RUNS = {
    "piano": ("PianoRollDataLoader", {"limit": 12}, 3, 41),
    "piano_cold": ("PianoRollDataLoader", {"limit": 6}, 1, 31),
    "strokes": ("StrokesDataLoader", {"subsample": 25}, 42, 19),
    "strokes_cold": ("StrokesDataLoader", {"subsample": 25}, 42, 19),
}


@pytest.mark.parametrize("run", SEQUENCE_RUNS)
def test_sequence_models_train_under_ddp_with_chunks_of_one_step(run, tiny_config, tmp_path):
    """Two gloo processes train RecurrentGraphVAE with truncated BPTT, also when the last
    chunk of a batch is a single step (the GRU then takes part in no loss, only in the state
    handed on), from the cached data and from a cold cache (two processes building it)."""
    loader, args, batch_size, tbptt_steps = SEQUENCE_RUNS[run]
    data_dir = tmp_path / "data" if run.endswith("cold") \
        else tiny_config["data_loader"]["args"]["data_dir"]
    likelihood = "bernoulli" if loader == "PianoRollDataLoader" else "strokes"
    config = {"name": run, "n_gpu": 0, "arch": {"type": "RecurrentGraphVAE", "args": {
                  "likelihood": likelihood, "rnn_hidden": 8, "hidden": 8, "feature_dim": 4,
                  "node_dim": 2, "n_mixtures": 2}},
              "data_loader": {"type": loader, "args": {
                  "data_dir": str(data_dir), "batch_size": batch_size, "test_fraction": 0.25,
                  "valid_fraction": 0.25, **args}},
              "trainer": {"epochs": 2, "tbptt_steps": tbptt_steps, "tensorboard": False,
                          "edge_values": False, "save_dir": str(tmp_path / "saved")}}
    mp.spawn(ddp_worker_plain, args=(["-c", str(write_config(tmp_path, config))], free_port()),
             nprocs=2, join=True)
    assert len(logged(tmp_path / "saved", "val_loss")) == 2


def test_on_resume_every_rank_holds_partial_sums_with_the_same_keys(tiny_config, monkeypatch):
    """Rank 0 carries the saved sums on; the others start from zeros of the same keys, so
    every rank enters the same all-reduces at the end of the epoch (no hang)."""
    from experiment import build_trainer
    from utils import ranks
    from utils.config import ConfigParser
    trainer = build_trainer(ConfigParser(tiny_config), validate=False)
    sums = {"loss": torch.tensor(5.0), "kl_per_node": torch.ones(3), "n": torch.tensor(2.0)}
    checkpoint = {**trainer.state_dict(), "batches_done": 3, "partial_sums": sums}
    monkeypatch.setattr(ranks, "is_main", lambda: False)
    trainer.load_state_dict(checkpoint)
    assert set(trainer.partial_sums) == set(sums)
    assert all(torch.equal(v, torch.zeros_like(sums[k])) for k, v in trainer.partial_sums.items())


def failing_worker(rank, argv, port, out_dir):
    """Rank 1's step breaks (a bug, not a bad input): each rank reports on one line."""
    import contextlib
    import io
    become_rank(rank, port)
    original = Trainer.train_step

    def breaks_on_rank_1(self, batch):
        if rank == 1:
            raise RuntimeError("a broken step")
        return original(self, batch)

    Trainer.train_step = breaks_on_rank_1
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = run_cli(lambda: train.main(argv))
    (out_dir / f"rank{rank}.txt").write_text(f"{status}\n{err.getvalue()}")


def test_a_failed_rank_says_which_it_is_and_how_to_resume(tiny_config, tmp_path):
    config = ddp_config(tiny_config, tmp_path / "saved", batch_size=32, epochs=1)
    config["data_loader"]["args"].update(subset=128, validation_size=64)
    mp.spawn(failing_worker, args=(["-c", str(write_config(tmp_path, config))], free_port(),
                                   tmp_path), nprocs=2, join=True)
    status, err = (tmp_path / "rank1.txt").read_text().split("\n", 1)
    assert status == "2" and err.count("\n") == 1, err
    assert err.startswith("error: rank 1 of 2 failed (RuntimeError: a broken step), and the "
                          "run stopped; its traceback is in "), err
    trace = err.split("its traceback is in ")[1].split(";")[0]
    assert "a broken step" in open(trace).read()
    assert (tmp_path / "rank0.txt").read_text().startswith(
        "2\nerror: rank 0 of 2 stopped: another rank failed, and the run stopped; its traceback")
