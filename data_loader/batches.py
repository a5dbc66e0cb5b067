"""The two shapes a batch has: an image tensor (B, D), or a sequence dict {"x", "mask", ...}.
Everything that needs to look inside a batch goes through these helpers."""


def batch_size(batch):
    return (batch["x"] if isinstance(batch, dict) else batch).shape[0]


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


def time_chunks(batch, length):
    """The batch itself, or for sequence batches with a TBPTT length, chunks of that many
    steps (those with at least one valid step)."""
    if not isinstance(batch, dict) or not length:
        return [dict(batch) if isinstance(batch, dict) else batch]
    total = batch["x"].shape[1]
    chunks = [{"x": batch["x"][:, t:t + length], "mask": batch["mask"][:, t:t + length]}
              for t in range(0, total, length)]
    return [c for c in chunks if c["mask"].any()]
