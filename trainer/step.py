"""The pieces around one ELBO step that are not the ELBO: truncated backpropagation in time,
the weighting of losses under DDP, mixed precision, and the guard that skips a non-finite step.
trainer/trainer.py composes them in Trainer.train_step."""
import torch
from torch.nn.parallel import DistributedDataParallel

from data_loader.batches import sequence_length, time_chunks
from utils import distributed


def chunks(batch, tbptt_steps, device):
    """The batch itself, or with trainer.tbptt_steps its chunks of that many steps (each an
    optimisation step, the recurrent state carried between them). Under DDP every rank cuts
    as many chunks as the longest batch of the step has (shorter ones are padded, masked)."""
    total = distributed.max_int(sequence_length(batch), device) \
        if tbptt_steps and distributed.active() else None
    return time_chunks(batch, tbptt_steps, total)


def data_parallel(model, device):
    """model wrapped in DistributedDataParallel. static_graph: DDP finds out in the first step
    which parameters get no gradient (the empty logits of a one-node graph, GraphLSTMVAE's
    LSTM that one node never calls, a frozen graph's logits) instead of searching the autograd
    graph for them after every step (find_unused_parameters). It assumes the set then stays
    the same, so the trainer wraps the model again when it changes (at the freeze)."""
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None,
                                   static_graph=True)


def weighted_for_ddp(loss, count):
    """DDP averages gradients over ranks; weighting each rank's mean by its share of the
    units makes that the mean over all units (ranks' counts may differ). Unchanged outside."""
    if not distributed.active():
        return loss
    return loss * (count * distributed.world()[1] / distributed.sum_tensor(count))


def autocast(device, enabled):
    """bf16 autocast of the training step (matmuls in bf16; the model keeps its Gaussian and
    likelihood maths in fp32); evaluation always runs in fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def finite_everywhere(loss, device):
    """Whether the loss is finite on every rank: the one device-to-host sync of a step."""
    return distributed.all_true(torch.isfinite(loss), device)


class BufferGuard:
    """Floating-point buffers (BatchNorm statistics, which a forward pass updates) as they were
    before a step, to put back when the step is skipped."""

    def __init__(self, model):
        self.buffers = [b for b in model.buffers() if b.is_floating_point()]
        self.saved = [b.detach().clone() for b in self.buffers]

    def remember(self):
        for saved, buffer in zip(self.saved, self.buffers):
            saved.copy_(buffer)

    def restore(self):
        for saved, buffer in zip(self.saved, self.buffers):
            buffer.copy_(saved)


def gradient_norm(parameters):
    """The total 2-norm of the gradients (a tensor on their device: no sync)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])) \
        if grads else None
