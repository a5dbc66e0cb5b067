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
