"""Deterministic batching shared by every data loader, and the two shapes a batch has.

The order of examples and any per-batch randomness (e.g. dynamic binarization) depend only on
(seed, epoch, batch index, rank). Nothing has to be stored to resume a run exactly, and a run
can even be resumed in the middle of an epoch by skipping the batches already seen.
"""
import torch
from torch.utils.data import DistributedSampler


class BaseDataLoader:
    """Yields `make_batch(indices, generator)` for consecutive slices of the epoch's order.

    Training shards across ranks with torch's own DistributedSampler, so a torchrun job sees
    exactly the split DDP users expect (every rank the same number of examples, padded with
    repeats); evaluation (shuffle=False) shards without padding, rank k taking examples
    k, k + N, ..., so that no example is counted twice. One process is num_replicas=1, rank=0.
    """

    def __init__(self, n_items, batch_size, shuffle=True, seed=0, drop_last=False,
                 num_replicas=1, rank=0):
        if n_items <= 0:
            raise ValueError("the dataset is empty")
        self.n_items, self.num_replicas, self.rank = n_items, num_replicas, rank
        self.split_size = n_items  # examples in the whole split; loaders with a subset say more
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        # A training epoch's last batch smaller than this is left out (BatchNorm cannot
        # train on a batch of one; the trainer sets it); set by drop_batches_below().
        self.min_batch_size = 1
        self.epoch = 0
        self.device = torch.device("cpu")  # where batches are made (see to())
        # DistributedSampler only takes the data's len(): a range stands for the examples.
        self.sampler = DistributedSampler(
            range(n_items), num_replicas=num_replicas, rank=rank, shuffle=shuffle,
            seed=seed, drop_last=drop_last) if shuffle else None

    def to(self, device):
        """Make batches on device where the data can live there (subclasses); else a no-op."""
        return self

    def set_epoch(self, epoch):
        self.epoch = epoch
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)

    def epoch_order(self):
        """This rank's example indices for the current epoch, in order."""
        if self.sampler is not None:
            return list(iter(self.sampler))
        return list(range(self.rank, self.n_items, self.num_replicas))

    def every_rank_order(self):
        """Every rank's epoch_order of a training shard, in rank order: each rank can tell
        them without asking the others, since DistributedSampler's order depends only on
        (seed, epoch) and the rank."""
        orders = []
        for rank in range(self.num_replicas):
            sampler = DistributedSampler(
                range(self.n_items), num_replicas=self.num_replicas, rank=rank,
                shuffle=True, seed=self.seed, drop_last=self.drop_last)
            sampler.set_epoch(self.epoch)
            orders.append(list(iter(sampler)))
        return orders

    def drop_batches_below(self, size):
        """Leave out a shuffled epoch's last batch when it holds fewer than size examples
        (the epochs' orders differ, so no example is left out for good)."""
        self.min_batch_size = size if self.sampler is not None else 1

    def examples(self):
        """How many examples this rank sees per epoch."""
        return self.sampler.num_samples if self.sampler is not None \
            else len(range(self.rank, self.n_items, self.num_replicas))

    def __len__(self):
        n = self.examples()
        if self.drop_last:
            return n // self.batch_size
        last = n % self.batch_size
        return -(-n // self.batch_size) - (0 < last < self.min_batch_size)

    def batch_generator(self, batch_index):
        """A generator on the batches' device whose state depends only on (seed, epoch,
        batch, rank)."""
        generator = torch.Generator(device=self.device)
        mixed = hash((self.seed, self.epoch, batch_index, self.rank)) & 0x7FFF_FFFF_FFFF_FFFF
        generator.manual_seed(mixed)
        return generator

    def __iter__(self):
        return self.iter_from(0)

    def iter_from(self, first_batch):
        """Iterate the current epoch starting at batch `first_batch` (for mid-epoch resume)."""
        order = torch.tensor(self.epoch_order(), dtype=torch.long, device=self.device)
        for b in range(first_batch, len(self)):
            indices = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.make_batch(indices, self.batch_generator(b))

    def make_batch(self, indices, generator):
        raise NotImplementedError


# The two shapes a batch has: an image tensor (B, D), or a sequence dict {"x", "mask", ...}.
# Everything that needs to look inside a batch goes through these helpers.
def to_device(batch, device):
    """A tensor or a dict of tensors (sequence batches) on device."""
    if isinstance(batch, dict):
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return batch.to(device, non_blocking=True)


def first_examples(batch, n):
    """The first n examples of a batch."""
    if isinstance(batch, dict):
        return {k: v[:n] for k, v in batch.items()}
    return batch[:n]


def padded_steps(batch, total):
    """A sequence batch with masked steps added after the last one, up to `total` steps."""
    x, mask = batch["x"], batch["mask"]
    if total <= x.shape[1]:
        return batch
    pad = total - x.shape[1]
    return {**batch, "x": torch.nn.functional.pad(x, (0, 0, 0, pad)),
            "mask": torch.nn.functional.pad(mask, (0, pad), value=False)}


def time_chunks(batch, length, whole=False):
    """The batch itself, or for sequence batches with a TBPTT length, chunks of that many
    steps; whole: every chunk has `length` steps (the last padded with masked steps) and its
    own memory, so that chunks of any batch have the same shape and strides (what a compiled
    step is specialised on; a view's strides would follow the batch's length)."""
    if not isinstance(batch, dict) or not length:
        return [dict(batch) if isinstance(batch, dict) else batch]
    if whole:
        batch = padded_steps(batch, -(-batch["x"].shape[1] // length) * length)
    x, mask = batch["x"], batch["mask"]
    chunk = (lambda t: t.contiguous()) if whole else (lambda t: t)  # noqa: E731
    return [{"x": chunk(x[:, t:t + length]), "mask": chunk(mask[:, t:t + length])}
            for t in range(0, x.shape[1], length)]


def sequence_length(batch):
    """Steps of a sequence batch (0 for images)."""
    return batch["x"].shape[1] if isinstance(batch, dict) else 0
