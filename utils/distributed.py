"""torch.distributed glue: DDP processes started by torchrun (or by train.py --device 0,1).

One process per device; each sees its shard of every epoch (DistributedSampler, inside the
data loaders), gradients are averaged by DistributedDataParallel, metric sums are added up
across processes, and only rank 0 writes logs, TensorBoard and checkpoints.
Each rank draws its own noise (its seed is derived from the run's seed and its rank) and a
checkpoint holds every rank's random state, so a resume with as many processes is exact.
"""
import atexit
import gc
import os
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from utils.errors import ConfigError
from utils.ranks import active, world


def launched_by_torchrun():
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def uses_gpu(n_gpu):
    """Whether this run trains on GPUs: n_gpu null (the default) means a GPU per process when
    one is visible, 0 the CPU, >= 1 GPUs (the CPU, with a warning, if none is visible: e.g. a
    run trained on GPUs resumed on a machine without one)."""
    available = torch.cuda.is_available()
    if n_gpu and not available:
        print("warning: n_gpu >= 1 but no GPU is visible; running on the CPU")
    return available and (n_gpu is None or n_gpu > 0)


# The GPUs this machine's processes use, one per process in LOCAL_RANK order, as indices
# among the visible ones (--device 0,1); None: all visible GPUs. CUDA_VISIBLE_DEVICES is never
# changed, so a scheduler's choice stays in force and the indices are within it.
_chosen_gpus = None


def visible_gpus():
    """How many GPUs this process sees (those CUDA_VISIBLE_DEVICES lists, when it is set)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def describe_visible():
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f"{visible_gpus()} GPU(s) visible" + \
        (f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else "")


def choose_gpus(indices, asked):
    """Train on these visible GPUs (None: all of them, a GPU per process), or say in one
    line why not: no GPU, or an index beyond the visible ones. `asked` is what the user
    typed, for the message."""
    global _chosen_gpus
    count = visible_gpus()
    if count == 0:
        raise ConfigError(f"--device {asked}: no GPU is visible ({describe_visible()}); "
                          f"use --device cpu")
    missing = [i for i in indices or () if i >= count]
    if missing:
        raise ConfigError(f"--device {asked}: there is no GPU {missing[0]}, {describe_visible()};"
                          f" give indices 0..{count - 1} (within CUDA_VISIBLE_DEVICES when it "
                          f"is set)")
    _chosen_gpus = None if indices is None else list(indices)


def use_all_gpus():
    """Forget a --device choice: a GPU per process among all the visible ones."""
    global _chosen_gpus
    _chosen_gpus = None


def local_gpus():
    """The GPUs this machine's processes share out, by LOCAL_RANK."""
    return list(range(visible_gpus())) if _chosen_gpus is None else _chosen_gpus


def local_device(gpu):
    """This process's device: the CPU, or GPU number LOCAL_RANK among this machine's GPUs
    (the visible ones, or those --device chose). Two processes on one GPU cannot train
    together (NCCL refuses), so more processes than GPUs is a one-line error."""
    if not gpu:
        return torch.device("cpu")
    gpus, local_rank = local_gpus(), int(os.environ.get("LOCAL_RANK", 0))
    if local_rank >= len(gpus):
        processes = os.environ.get("LOCAL_WORLD_SIZE", str(local_rank + 1))
        which = describe_visible() if _chosen_gpus is None else f"--device lists {len(gpus)}"
        raise ConfigError(f"{processes} processes on this machine but {len(gpus)} GPU(s) for "
                          f"them ({which}); start at most {len(gpus)} per machine (torchrun "
                          f"--nproc_per_node={len(gpus)}), or train on CPUs with --device cpu")
    return torch.device("cuda", gpus[local_rank])


def init(gpu):
    """Join the process group torchrun describes (nccl on GPUs, gloo on CPUs). On a GPU the
    process group is bound to this process's device (device_id): NCCL then never guesses it
    from the global rank, which is wrong when a machine runs fewer processes than it has GPUs.
    Each process's GPU is made the current one, so that nothing lands on GPU 0 by default."""
    device = local_device(gpu)  # checked before joining: a rank that cannot run says why
    if gpu:
        torch.cuda.set_device(device)
    if launched_by_torchrun() and not dist.is_initialized():
        if gpu:
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
        atexit.register(shutdown)  # however the process ends (shutdown can run twice)
    return world()


def shutdown():
    """Leave the process group, and let it end while the interpreter is whole: a trainer's
    DDP wrapper holds the group after destroy_process_group, and a trainer refers to itself,
    so only the garbage collector frees it; freed in the interpreter's finalization, gloo's
    threads take the GIL there to free their last tensors and abort the process ("terminate
    called without an active exception"). train.py calls this when a run ends; it also runs
    at exit (init registers it), for a trainer that an exception's traceback kept alive."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    gc.collect()


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


def wrap_for_ddp(model, device):
    """model in DistributedDataParallel. static_graph: DDP learns in the first step which
    parameters get no gradient (a one-node graph's empty logits, an LSTM no node calls, frozen
    logits) instead of searching the autograd graph after every step; the set must then stay
    the same, so the trainer wraps the model again when it changes (at the freeze), and a
    TBPTT chunk touches the state it hands on (touching_state).

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


