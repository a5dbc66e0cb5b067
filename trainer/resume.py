"""Putting a checkpoint's state back into a trainer (Trainer.load_state_dict), once
trainer/fits.py has found that it fits: settings the config changes since the checkpoint
(--lr, --set optimizer.args.*, gate_schedule.lr, structure_optimizer.args.*) apply from here on,
every process continues its own random stream, and the epoch's partial sums go on.
"""
import logging

import torch

from trainer.fits import Misfit, changed_args
from utils import distributed, ranks


def restore_optimizers(trainer, state):
    """Load every optimiser's state; each setting the config changes since the checkpoint is
    applied from here on, with a note. Returns whether any changed."""
    changed = []  # (key, the checkpoint's value, the config's)
    for name in ("optimizer", "structure_optimizer"):
        optimizer = getattr(trainer, name)
        if optimizer is None:
            continue
        fresh = [dict(group) for group in optimizer.param_groups]
        optimizer.load_state_dict(state[name])
        old, new = (config[name].get("args") or {} for config in (state["config"], trainer.config))
        for key in changed_args(state["config"], trainer.config, name):
            apply_setting(trainer, optimizer, key, fresh, networks_only=name == "optimizer")
            changed.append((f"{name}.args.{key}", old.get(key, "default"), new.get(key, "default")))
    if trainer.lr_scheduler is not None and state["lr_scheduler"] is not None:
        trainer.lr_scheduler.load_state_dict(state["lr_scheduler"])
    old, new = structure_lr(state["config"]), structure_lr(trainer.config)
    if old != new and len(trainer.optimizer.param_groups) > 1:
        trainer.optimizer.param_groups[1]["lr"] = new
        trainer.optimizer.param_groups[1].pop("initial_lr", None)
        changed.append(("arch.args.gate_schedule.lr", old, new))
    for key, old, new in changed:
        trainer.notes.append((logging.INFO, f"{key} is {new} (the checkpoint's: {old}); applied "
                                            f"from here on, with a fresh budget of non-finite "
                                            f"steps"))
    return bool(changed)


def apply_setting(trainer, optimizer, key, fresh, networks_only):
    """A changed setting, as the freshly built optimiser has it, in every group it governs (a
    rate: the networks' group only; the structure logits keep gate_schedule.lr). A scheduler
    goes on from the new rate: the factor it has applied so far is kept."""
    for i, (group, new) in enumerate(zip(optimizer.param_groups, fresh)):
        if key == "lr" and networks_only and i > 0:
            continue
        if key != "lr" or "initial_lr" not in group:
            group[key] = new[key]
            continue
        base = new.get("initial_lr", new["lr"])
        group["lr"] *= base / group["initial_lr"]
        group["initial_lr"] = base
        if getattr(trainer.lr_scheduler, "base_lrs", None):
            trainer.lr_scheduler.base_lrs[i] = base


def structure_lr(config):
    return ((config["arch"].get("args") or {}).get("gate_schedule") or {}).get("lr")


def summed_over_ranks(sums, device):
    """The epoch's partial sums over every process, on the CPU (None before the first batch)."""
    total = distributed.sum_over_ranks(sums, device)
    return {k: torch.as_tensor(v).cpu() for k, v in total.items()} if total else None


def partial_sums_of_this_rank(sums, device):
    """Saved sums are the total over ranks: rank 0 carries them on, the others start from
    zeros of the same keys (so that every rank enters the same all-reduces)."""
    if not sums:
        return None
    keep = ranks.is_main()
    return {k: (v if keep else torch.zeros_like(v)).to(device) for k, v in sums.items()}


def rng_state(device):
    """This process's random state: the CPU generator's, and its own GPU's if it uses one."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(trainer, states):
    """Each rank continues its own random stream when the number of processes is the one the
    checkpoint was saved with; with another number the run goes on, not bit for bit."""
    rank, world_size, _ = ranks.world()
    if len(states) != world_size:
        trainer.notes.append((logging.WARNING, f"the checkpoint was saved by {len(states)} "
                                               f"process(es) and resumes with {world_size}: "
                                               f"training continues, but not bit for bit"))
    if rank >= len(states):
        torch.manual_seed(trainer.config["seed"] + 1_000_003 * rank + trainer.epoch)
        return
    try:
        torch.set_rng_state(states[rank]["torch"])
        if trainer.device.type == "cuda" and "cuda" in states[rank]:
            torch.cuda.set_rng_state(states[rank]["cuda"], trainer.device)
    except RuntimeError as e:
        raise Misfit(f"its random-number state is damaged ({e})") from None
