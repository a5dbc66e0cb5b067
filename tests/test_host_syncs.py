"""How often a training step waits for the device: counted on the CPU with a harness that
counts every read of a tensor's value on the host (item, bool, tolist, ...: each one a sync
on a GPU) and every collective the project calls (DDP's own gradient all-reduce aside).

Counts are taken over two runs of different lengths, so that what an epoch does once (its
means, logs) cancels: the difference is what the steps in between cost. (On a GPU the same
is checked with torch.cuda.set_sync_debug_mode in tests/test_cuda.py.)"""
import itertools
from collections import Counter
from contextlib import contextmanager

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from logger import TensorboardWriter
from tests.conftest import become_rank
from tests.test_ddp import free_port, piano_config
from trainer.trainer import LOOK_EVERY

HOST_READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy")
COLLECTIVES = ("all_reduce", "broadcast", "all_gather", "all_gather_object",
               "broadcast_object_list", "barrier")
SHORT, LONG = 10, 60  # steps of the two runs


@contextmanager
def counting():
    """Counter of host reads and collectives made inside the block."""
    counts = Counter()

    def counted(kind, original):
        def call(*args, **kwargs):
            counts[kind] += 1
            return original(*args, **kwargs)
        return call

    patched = [(torch.Tensor, name, "host reads") for name in HOST_READS] \
        + [(dist, name, "collectives") for name in COLLECTIVES]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patched]
    for (owner, name, kind), (_, _, original) in zip(patched, originals):
        setattr(owner, name, counted(kind, original))
    try:
        yield counts
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


class Prepared:
    """A loader's batches made beforehand, so that only the trainer's reads are counted."""

    def __init__(self, loader, n):
        def endless():
            for epoch in itertools.count(1):
                loader.set_epoch(epoch)
                yield from loader
        self.batches = list(itertools.islice(endless(), n))
        self.image_shape = getattr(loader, "image_shape", None)

    def set_epoch(self, epoch):
        pass

    def iter_from(self, first_batch):
        return iter(self.batches[first_batch:])

    def __len__(self):
        return len(self.batches)


def counts_per_run(config_dict, lengths=(SHORT, LONG)):
    """{steps: Counter} of one epoch of each length (SHORT and LONG steps)."""
    from experiment import build_trainer
    from utils.config import ConfigParser
    trainer = build_trainer(ConfigParser(config_dict), validate=False)
    trainer.writer = TensorboardWriter(None, False)
    loader = trainer.data_loader
    results = {}
    for steps in lengths:
        trainer.data_loader = Prepared(loader, steps)
        trainer.batches_done = 0
        with counting() as counts:
            trainer.train_epoch(1)
        tbptt = trainer.settings["tbptt_steps"]
        counts["chunks"] = sum(-(-batch["x"].shape[1] // tbptt) if tbptt else 1
                               for batch in trainer.data_loader.batches)
        results[steps] = counts
    return results


def per_steps(results, kind):
    """What the steps between the short and the long run cost."""
    short, long = sorted(results)
    return results[long][kind] - results[short][kind]


def small_batches(tiny_config):
    tiny_config["n_gpu"] = 0
    tiny_config["data_loader"]["args"].update(batch_size=8, subset=512, binarize="fixed")
    tiny_config["trainer"].update(tensorboard=False, kl_warmup_epochs=0)
    return tiny_config


def looks():
    """The host's looks at the device between the two runs' lengths."""
    return LONG // LOOK_EVERY - SHORT // LOOK_EVERY


def test_one_process_does_not_wait_for_the_device_at_every_step(tiny_config):
    results = counts_per_run(small_batches(tiny_config))
    assert per_steps(results, "host reads") <= looks(), results  # before: one per step
    assert per_steps(results, "collectives") == 0


def test_an_optimiser_that_cannot_skip_on_the_device_costs_one_sync_a_step(tiny_config):
    """A structure optimiser SGD must be told on the host whether to step."""
    config = small_batches(tiny_config)
    config["structure_optimizer"] = {"type": "SGD", "args": {"lr": 0.1, "momentum": 0.9}}
    results = counts_per_run(config)
    assert per_steps(results, "host reads") <= (LONG - SHORT) + looks(), results


def count_in_ddp_worker(rank, config_dict, port, out, lengths):
    become_rank(rank, port)
    results = counts_per_run(config_dict, lengths)
    torch.save({steps: dict(counts) for steps, counts in results.items()}, f"{out}{rank}.pt")
    dist.destroy_process_group()


def counts_under_ddp(config_dict, tmp_path, lengths=(SHORT, LONG)):
    mp.spawn(count_in_ddp_worker, args=(config_dict, free_port(), str(tmp_path / "counts"),
                                        lengths), nprocs=2, join=True)
    return [torch.load(tmp_path / f"counts{rank}.pt") for rank in (0, 1)]


def test_under_ddp_a_step_adds_one_all_reduce_and_no_sync(tiny_config, tmp_path):
    """Besides DDP's own gradient all-reduce: one all-reduce per step (the ranks' unit counts
    and non-finite losses together; before: three, and three syncs)."""
    for results in counts_under_ddp(small_batches(tiny_config), tmp_path):
        assert per_steps(results, "collectives") <= (LONG - SHORT) + looks(), results
        assert per_steps(results, "host reads") <= 2 * looks(), results  # flags, stop request


def test_under_ddp_a_tbptt_batch_adds_one_all_reduce_per_chunk_and_no_sync(
        tiny_config, tmp_path):
    """The ranks' chunk counts agree without a collective (the loader pads every rank's batch
    of a step to the longest), and each chunk adds one all-reduce (before: 2 per chunk, and
    a sync per chunk and per batch)."""
    config = piano_config(tiny_config, tmp_path / "saved", batch_size=2)
    config["trainer"]["tbptt_steps"] = 40
    for results in counts_under_ddp(config, tmp_path, lengths=(2, 8)):  # no look between
        assert per_steps(results, "chunks") > 2 * 6  # several chunks a batch
        assert per_steps(results, "host reads") == 0, results
        assert per_steps(results, "collectives") == per_steps(results, "chunks"), results
