"""Deterministic batching shared by every data loader.

The order of examples and any per-batch randomness (e.g. dynamic binarization) depend only on
(seed, epoch, batch index, rank). Nothing has to be stored to resume a run exactly, and a run
can even be resumed in the middle of an epoch by skipping the batches already seen.
"""
import torch
from torch.utils.data import DistributedSampler


class _IndexOnlyDataset:
    """DistributedSampler only needs len(); it never reads the data."""

    def __init__(self, n_items):
        self.n_items = n_items

    def __len__(self):
        return self.n_items


class BaseDataLoader:
    """Yields `make_batch(indices, generator)` for consecutive slices of the epoch's order.

    Sharding across ranks uses torch's own DistributedSampler, so a torchrun job sees exactly
    the split DDP users expect; a single process is the case num_replicas=1, rank=0.
    """

    def __init__(self, n_items, batch_size, shuffle=True, seed=0, drop_last=False,
                 num_replicas=1, rank=0):
        if n_items <= 0:
            raise ValueError("the dataset is empty")
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.epoch = 0
        self.sampler = DistributedSampler(_IndexOnlyDataset(n_items), num_replicas=num_replicas,
                                          rank=rank, shuffle=shuffle, seed=seed,
                                          drop_last=drop_last)

    def set_epoch(self, epoch):
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __len__(self):
        n = self.sampler.num_samples
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batch_generator(self, batch_index):
        """A generator whose state depends only on (seed, epoch, batch, rank)."""
        generator = torch.Generator()
        mixed = hash((self.seed, self.epoch, batch_index, self.rank)) & 0x7FFF_FFFF_FFFF_FFFF
        generator.manual_seed(mixed)
        return generator

    def __iter__(self):
        return self.iter_from(0)

    def iter_from(self, first_batch):
        """Iterate the current epoch starting at batch `first_batch` (for mid-epoch resume)."""
        order = torch.tensor(list(iter(self.sampler)), dtype=torch.long)
        for b in range(first_batch, len(self)):
            indices = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.make_batch(indices, self.batch_generator(b))

    def make_batch(self, indices, generator):
        raise NotImplementedError
