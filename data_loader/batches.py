"""The two shapes a batch has: an image tensor (B, D), or a sequence dict {"x", "mask", ...}.
Everything that needs to look inside a batch goes through these helpers."""
import torch


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


def time_chunks(batch, length, total=None):
    """The batch itself, or for sequence batches with a TBPTT length, chunks of that many
    steps covering `total` steps (default: the batch's own length; a longer total pads with
    masked steps, so that every DDP rank cuts the same number of chunks)."""
    if not isinstance(batch, dict) or not length:
        return [dict(batch) if isinstance(batch, dict) else batch]
    x, mask = batch["x"], batch["mask"]
    if total is not None and total > x.shape[1]:
        pad = total - x.shape[1]
        x = torch.nn.functional.pad(x, (0, 0, 0, pad))
        mask = torch.nn.functional.pad(mask, (0, pad), value=False)
    return [{"x": x[:, t:t + length], "mask": mask[:, t:t + length]}
            for t in range(0, x.shape[1], length)]


def sequence_length(batch):
    """Steps of a sequence batch (0 for images)."""
    return batch["x"].shape[1] if isinstance(batch, dict) else 0
