"""Which process this is in a DDP run (torchrun), and the one thing a training step does for
DDP; setting up and ending the process group, and the collectives, are utils/distributed.py."""
import os

import torch.distributed as dist


def world():
    """(rank, world_size, local_rank) of this process; (0, 1, 0) outside torchrun."""
    if not dist.is_available() or not dist.is_initialized():
        return 0, 1, 0
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))


def is_main():
    return world()[0] == 0


def active():
    return world()[1] > 1


def touching_state(loss, output):
    """Under DDP, the loss plus zero times the recurrent state the step hands on (if any).
    static_graph expects the same parameters to get a gradient in every step, but a TBPTT
    chunk of one time step computes the state it hands on (a GRU step) and no loss from it.
    This gives them zero gradients (every other is unchanged) for one GRU step backwards;
    padding every chunk to tbptt_steps would cost up to a chunk of masked steps a batch. A
    non-finite state (from a non-finite loss) makes the step skipped."""
    state = output.get("state") if active() else None
    return loss if state is None else loss + sum(s.sum() for s in state) * 0
