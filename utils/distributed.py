"""torch.distributed glue: DDP processes started by torchrun (or by train.py --device 0,1).

One process per device; each sees its shard of every epoch (DistributedSampler, inside the
data loaders), gradients are averaged by DistributedDataParallel, metric sums are added up
across processes, and only rank 0 writes logs, TensorBoard and checkpoints.
Each rank draws its own noise (its seed is derived from the run's seed and its rank) and a
checkpoint holds every rank's random state, so a resume with as many processes is exact.
"""
import os
from contextlib import contextmanager

import torch
import torch.distributed as dist


def world():
    """(rank, world_size, local_rank) of this process; (0, 1, 0) outside torchrun."""
    if not dist.is_available() or not dist.is_initialized():
        return 0, 1, 0
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))


def launched_by_torchrun():
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def uses_gpu(n_gpu):
    """Whether this run trains on GPUs: n_gpu null (the default) means a GPU per process when
    one is visible, 0 the CPU, >= 1 GPUs (the CPU, with a warning, if none is visible)."""
    available = torch.cuda.is_available()
    if n_gpu and not available:
        print("warning: n_gpu >= 1 but no GPU is visible; running on the CPU")
    return available and (n_gpu is None or n_gpu > 0)


def local_device(gpu):
    """This process's device: the CPU, or GPU LOCAL_RANK among the visible ones (modulo their
    number, so a cluster that shows each task only its own GPU, as index 0, works too)."""
    if not gpu:
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())


def init(gpu):
    """Join the process group torchrun describes (nccl on GPUs, gloo on CPUs)."""
    if launched_by_torchrun() and not dist.is_initialized():
        dist.init_process_group("nccl" if gpu else "gloo")
        if gpu:
            torch.cuda.set_device(local_device(gpu))
    return world()


def is_main():
    return world()[0] == 0


def active():
    return world()[1] > 1


def shutdown():
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def local_main_first():
    """Under torchrun, local rank 0 of each machine runs the block first (building any missing
    data cache) while the machine's other processes wait at a barrier, then they run it (and
    find the caches whole). A no-op outside torchrun."""
    if not active():
        yield
        return
    first = world()[2] == 0
    if not first:
        dist.barrier()
    yield
    if first:
        dist.barrier()


def broadcast(obj):
    """rank 0's obj on every rank."""
    if not active():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather(obj):
    """[obj of rank 0, obj of rank 1, ...] on every rank (a list of one outside DDP)."""
    if not active():
        return [obj]
    objects = [None] * world()[1]
    dist.all_gather_object(objects, obj)
    return objects


def all_true(flag, device):
    """Whether flag holds on every rank (one collective; the same answer everywhere)."""
    if not active():
        return bool(flag)
    value = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def sum_tensor(value):
    """value (a tensor on this process's device) summed over every rank, without a host sync."""
    if active():
        value = value.clone()
        dist.all_reduce(value)
    return value


def max_int(value, device):
    """The largest of an integer over every rank (one collective)."""
    if not active():
        return value
    tensor = torch.tensor([value], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def barrier():
    if active():
        dist.barrier()


def any_true(flag, device):
    return not all_true(not flag, device)


def sum_over_ranks(sums, device):
    """A dict of running sums (tensors or numbers) added up over every rank."""
    if not active() or not sums:
        return sums
    total = {}
    for key in sorted(sums):
        value = torch.as_tensor(sums[key], dtype=torch.float64, device=device).clone()
        dist.all_reduce(value)
        total[key] = value
    return total
