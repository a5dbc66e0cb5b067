"""The pieces around one ELBO step that are not the ELBO: truncated backpropagation in time,
DDP (the wrapper, the weighting of losses), mixed precision, and the guard that skips a
non-finite step on the device. trainer/trainer.py composes them in Trainer.train_step.

Nothing here waits for the device (except for an optimiser that cannot skip a step on it):
a step is skipped on the device (a flag, found_inf, torch.where), and the host looks at the
flags every few steps (trainer.LOOK_EVERY), not after each."""
import torch
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from data_loader.batches import time_chunks
from utils import distributed


def chunks(batch, tbptt_steps, whole=False):
    """The batch itself, or with trainer.tbptt_steps its chunks of that many steps (each an
    optimisation step, the recurrent state carried between them). whole: the last chunk too
    has tbptt_steps steps (padded, masked), so that a compiled step sees one length and not a
    new one, and a recompile, for every length the last chunk can have. (Under DDP every rank
    cuts as many chunks: the loader makes the ranks' batches of a step equally long.)"""
    return time_chunks(batch, tbptt_steps, whole)


def data_parallel(model, device):
    """model wrapped in DistributedDataParallel. static_graph: DDP finds out in the first step
    which parameters get no gradient (the empty logits of a one-node graph, GraphLSTMVAE's
    LSTM that one node never calls, a frozen graph's logits) instead of searching the autograd
    graph for them after every step (find_unused_parameters). It assumes the set then stays
    the same, so the trainer wraps the model again when it changes (at the freeze).

    broadcast_buffers (rank 0's buffers copied to every rank before each forward, a collective
    a step) only where ranks' buffers can differ: statistics of plain BatchNorm, which each
    rank takes from its own shard. SyncBatchNorm's are the same on every rank (each computes
    them from the same gathered statistics), and so are the gates' schedule buffers."""
    wrapper = DistributedDataParallel(model, static_graph=True,
                                      device_ids=[device] if device.type == "cuda" else None)
    # Set after construction (the buffers are copied once then, whatever it says): torch >=
    # 2.14 deprecates the argument for forward_sync_buffers, which older ones do not have,
    # and reads this attribute (a property there) in every forward in both.
    wrapper.broadcast_buffers = own_statistics(model)
    return wrapper


def own_statistics(model):
    """Whether model has BatchNorm that is not synchronised (each rank's statistics its own)."""
    return any(isinstance(m, _BatchNorm) and not isinstance(m, torch.nn.SyncBatchNorm)
               for m in model.modules())


def touching_state(loss, output):
    """Under DDP, the loss plus zero times the recurrent state the step hands on (if any).

    The DDP wrapper is static_graph: it learns in the first step which parameters get no
    gradient and expects the same ones in every step. A chunk of one time step (the last of a
    batch one step longer than a multiple of tbptt_steps) computes the state it hands on, a
    GRU step, but no loss from it, so the GRU would get no gradient in that step alone. This
    term gives those parameters zero gradients (every other gradient is unchanged) at the cost
    of one extra GRU step backwards, where padding every chunk to tbptt_steps would cost up to
    a chunk of masked steps a batch. A state is finite when the loss is (it is computed from
    what the loss is), and a non-finite one makes the step skipped."""
    state = output.get("state") if distributed.active() else None
    return loss if state is None else loss + sum(s.sum() for s in state) * 0


def weighted_and_skipped(loss, count, skipped=None):
    """(the loss weighted for DDP, whether to skip the step), both on the device: no sync.

    DDP averages gradients over ranks; weighting each rank's mean by its share of the units
    makes that the mean over all units (ranks' counts may differ). The step is skipped when
    the loss is not finite on some rank, or when `skipped` (an earlier chunk of the batch)
    is. Under DDP one all-reduce gives both the total count and the ranks' non-finite losses.
    """
    bad = ~torch.isfinite(loss)
    if distributed.active():
        total, bad_ranks = distributed.sum_tensor(torch.stack([count.float(), bad.float()]))
        loss, bad = loss * (count * distributed.world()[1] / total), bad_ranks > 0
    return loss, bad if skipped is None else skipped | bad


def skips_on_device(optimizer):
    """Whether optimizer can skip a step on the device: fused Adam and AdamW take GradScaler's
    found_inf flag, and with it set their kernel leaves parameters and state as they were.
    (Fused SGD takes it too, but a skipped first step leaves its momentum buffer unset.)"""
    return isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)) \
        and all(group.get("fused") for group in optimizer.param_groups)


def step_unless(optimizers, skip):
    """optimizer.step() for each unless skip: on the device where the optimiser can (no
    sync); any other optimiser has to read the flag on the host, one sync per step."""
    for optimizer in optimizers:
        if skips_on_device(optimizer):
            optimizer.found_inf = skip.float()
            try:
                optimizer.step()
            finally:
                del optimizer.found_inf
        elif not skip.item():
            optimizer.step()


def unless_skipped(terms, count, skip):
    """A step's terms and count, zeros where it was skipped (so that running sums leave it
    out; a non-finite term times a zero count would still be NaN)."""
    keep = ~skip
    return ({key: torch.where(keep, value, torch.zeros_like(value))
             for key, value in terms.items()}, torch.where(keep, count, torch.zeros_like(count)))


def autocast(device, enabled):
    """bf16 autocast of the training step (matmuls in bf16; the model keeps its Gaussian and
    likelihood maths in fp32); evaluation always runs in fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


class BufferGuard:
    """Floating-point buffers (BatchNorm statistics, which a forward pass updates) as they were
    before a step, put back when the step is skipped (on the device: no sync)."""

    def __init__(self, model):
        self.buffers = [b for b in model.buffers() if b.is_floating_point()]
        self.saved = [b.detach().clone() for b in self.buffers]

    def remember(self):
        for saved, buffer in zip(self.saved, self.buffers):
            saved.copy_(buffer)

    def restore_where(self, skip):
        for saved, buffer in zip(self.saved, self.buffers):
            buffer.copy_(torch.where(skip, saved, buffer))


def gradient_norm(parameters):
    """The total 2-norm of the gradients (a tensor on their device: no sync)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])) \
        if grads else None
