"""The guard against a non-finite step, decided on the device (no host sync per step).

A step whose loss is not finite on some process is skipped, and with it the rest of its batch
(earlier TBPTT chunks keep their updates): parameters, optimiser state and floating-point
buffers (BatchNorm statistics, which the forward pass already updated) stay as they were, and
its terms and count add zeros to the epoch's sums. The skip is a flag on the device: fused
Adam and AdamW take it as GradScaler's found_inf and leave everything as it was; any other
optimiser reads it on the host (one sync per step). The host reads the flags of the batches
since its last look in one sync (read_flags, every few steps), warns about each skipped step
and says when there were too many (trainer.max_nonfinite_steps).

Under DDP one all-reduce gives both the ranks' non-finite flags and their units, by which each
rank's loss is weighted: DDP averages gradients over ranks, and weighting each rank's mean by
its share of the units makes that the mean over all units (ranks' counts may differ).
"""
import torch

from utils import distributed, ranks


class NonFiniteGuard:
    def __init__(self, model):
        self.buffers = [b for b in model.buffers() if b.is_floating_point()]
        self.saved = [b.detach().clone() for b in self.buffers]
        self.skip = None  # this batch's flag (a bool tensor on the device)
        self.unseen = []  # (batch index, flag) of batches the host has not looked at

    def begin_batch(self):
        """Remember the buffers as they are before the batch's first step."""
        self.skip = None
        for saved, buffer in zip(self.saved, self.buffers):
            saved.copy_(buffer)

    def weigh(self, loss, count):
        """The loss weighted for DDP; the batch's skip flag set where it is not finite."""
        bad = ~torch.isfinite(loss)
        if ranks.active():
            total, bad_ranks = distributed.sum_tensor(torch.stack([count.float(), bad.float()]))
            loss, bad = loss * (count * ranks.world()[1] / total), bad_ranks > 0
        self.skip = bad if self.skip is None else self.skip | bad
        return loss

    def step(self, optimizers):
        """optimizer.step() for each, unless the flag is set; buffers put back where it is."""
        for optimizer in optimizers:
            if skips_on_device(optimizer):
                optimizer.found_inf = self.skip.float()
                try:
                    optimizer.step()
                finally:
                    del optimizer.found_inf
            elif not self.skip.item():
                optimizer.step()
        for saved, buffer in zip(self.saved, self.buffers):
            buffer.copy_(torch.where(self.skip, saved, buffer))

    def unless_skipped(self, terms, count):
        """A step's terms and count, zeros where it was skipped (a non-finite term times a zero
        count would still be NaN)."""
        keep = ~self.skip
        return ({key: torch.where(keep, value, torch.zeros_like(value))
                 for key, value in terms.items()}, torch.where(keep, count, torch.zeros_like(count)))

    def end_batch(self, batch):
        self.unseen.append((batch, self.skip))

    def read_flags(self):
        """The batch indices of the skipped steps since the last look (one sync for all)."""
        if not self.unseen:
            return []
        batches, flags = zip(*self.unseen)
        self.unseen = []
        return [batch for batch, skipped in zip(batches, torch.stack(flags).tolist()) if skipped]


def skips_on_device(optimizer):
    """Fused Adam and AdamW take a found_inf flag and then leave parameters and state as they
    were. (Fused SGD takes it too, but a skipped first step leaves its momentum buffer unset.)"""
    return isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)) \
        and all(group.get("fused") for group in optimizer.param_groups)
