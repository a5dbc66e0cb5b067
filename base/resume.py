"""Resuming a run: the trainer's state put back from a checkpoint (utils/checkpoint.py reads
and checks the file; this sets the trainer from it).

Restored: weights, optimisers, scheduler, epoch and position inside it, best-so-far, history,
every rank's random state. Settings the config changes (--lr, --set optimizer.args.*,
gate_schedule.lr, structure_optimizer.args.*) apply from here on, and give the run a fresh
budget of non-finite steps (e.g. a lower rate after a divergence).
"""
import logging

import torch

from base.checkpoint_fit import check_fits
from utils import checkpoint as checkpoints
from utils import distributed
from utils.errors import CheckpointError, ConfigError


def resume(trainer, checkpoint, path):
    """Continue the run saved in checkpoint (loaded from path): weights, optimizer,
    scheduler, epoch and position in it, best-so-far and RNG states. Everything is checked
    against the trainer (base/checkpoint_fit.py) before anything is loaded."""
    checkpoints.check_shapes(trainer.model, checkpoint["state_dict"], path)
    if checkpoint["epoch"] + 1 > trainer.epochs:
        raise ConfigError(f"{path} has finished {checkpoint['epoch']} epochs already; train "
                          f"longer with --epochs N (N > {checkpoint['epoch']})")
    check_same_optimizers(trainer, checkpoint, path)
    # A checkpoint with separate top-down networks has its optimizer state merged like its
    # weights (upgraded_optimizer_state): that merged state is what must fit.
    optimizer_state = upgraded_or_saved(trainer, checkpoint)
    check_fits(trainer, checkpoint, path, optimizer_state)
    checkpoints.restore_model(trainer.model, checkpoint, path)
    trainer.start_epoch = checkpoint["epoch"] + 1
    fresh_groups = [dict(group) for group in trainer.optimizer.param_groups]
    structure_changed = restore_structure_optimizer(trainer, checkpoint, path)
    changed = restore_optimizer(trainer, checkpoint, path, optimizer_state)
    if trainer.lr_scheduler and checkpoint.get("lr_scheduler"):
        trainer.lr_scheduler.load_state_dict(checkpoint["lr_scheduler"])
    for key in changed:
        apply_optimizer_arg(trainer, key, fresh_groups)
    if apply_structure_lr(trainer, checkpoint, fresh_groups):
        changed.append("gate_schedule.lr")
    changed += structure_changed
    trainer.batches_done = checkpoint.get("batches_done", 0)
    # Saved sums are the total over ranks: rank 0 carries them on, the others start from
    # zeros of the same keys (so that every rank enters the same all-reduces).
    sums = checkpoint.get("partial_sums") or None
    if sums and not distributed.is_main():
        sums = {k: torch.zeros_like(v) if torch.is_tensor(v) else 0 for k, v in sums.items()}
    trainer.partial_sums = {k: v.to(trainer.device) if torch.is_tensor(v) else v
                            for k, v in sums.items()} if sums else None
    # New optimizer settings (e.g. a lower rate after a divergence) get a fresh budget.
    trainer.nonfinite_steps = 0 if changed else checkpoint.get("nonfinite_steps", 0)
    trainer.history = checkpoint.get("history", [])
    trainer.monitor_best = checkpoint.get("monitor_best", trainer.monitor_best)
    trainer.not_improved_count = checkpoint.get("not_improved_count", 0)
    restore_rng(trainer, checkpoint.get("rng", []), path)
    where = f", batch {trainer.batches_done}" if trainer.batches_done else ""
    trainer.notes.insert(0, (logging.INFO, f"Resumed from {path}: training continues at "
                                           f"epoch {trainer.start_epoch}{where}"))


def check_same_optimizers(trainer, checkpoint, path):
    """The optimisers the config builds can continue the checkpoint's: the same types, and
    only settings that are numbers changed (the others shape the optimizer's state)."""
    saved = checkpoint["config"].get("optimizer") or {}
    configured = trainer.config["optimizer"]
    if saved.get("type", configured["type"]) != configured["type"]:
        raise ConfigError(f"{path} was trained with optimizer {saved['type']}, which cannot "
                          f"continue as {configured['type']}; keep optimizer.type "
                          f"{saved['type']} or start a new run")
    for key in changed_optimizer_args(checkpoint, trainer):
        if not all(is_numbers(group.get(key)) for group in trainer.optimizer.param_groups):
            raise ConfigError(f"optimizer.args.{key} cannot change when resuming (it shapes "
                              f"the optimizer's state); keep the checkpoint's value or "
                              f"start a new run")
    saved = (checkpoint["config"].get("structure_optimizer") or {}).get("type")
    configured = (trainer.config["structure_optimizer"] or {}).get("type")
    state = checkpoint.get("structure_optimizer")
    if saved != configured or (state is None) != (trainer.structure_optimizer is None):
        raise ConfigError(f"{path} was trained with structure_optimizer {saved or 'null'}; "
                          f"resume with the same (its settings may change) or start a new "
                          f"run")


def changed_optimizer_args(checkpoint, trainer):
    """The optimizer.args keys in which the config differs from the checkpoint's."""
    old = (checkpoint["config"].get("optimizer") or {}).get("args", {})
    new = trainer.config["optimizer"]["args"]
    return sorted(k for k in {*old, *new} if old.get(k) != new.get(k))


def restore_optimizer(trainer, checkpoint, path, state):
    """Load the optimizer's state (state: upgraded_or_saved's, checked by
    base/checkpoint_fit.py); returns the optimizer.args keys in which the config differs from
    the checkpoint's (they are applied once the scheduler is restored)."""
    try:
        trainer.optimizer.load_state_dict(state)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: optimizer state does not fit the configured "
                              f"optimizer: {e}") from None
    old = (checkpoint["config"].get("optimizer") or {}).get("args", {})
    new = trainer.config["optimizer"]["args"]
    changed = changed_optimizer_args(checkpoint, trainer)
    for key in changed:
        trainer.notes.append((logging.INFO, f"optimizer.args.{key} is {new.get(key, 'default')} "
                                            f"(the checkpoint's: {old.get(key, 'default')}); "
                                            f"applied from here on, with a fresh budget of "
                                            f"non-finite steps"))
    return changed


def upgraded_or_saved(trainer, checkpoint):
    """upgraded_optimizer_state for the trainer, or the checkpoint's own optimizer state when
    it is too malformed to merge (check_fits then says what is wrong with it)."""
    try:
        return upgraded_optimizer_state(trainer.model, checkpoint, trainer.optimizer)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError):
        return checkpoint["optimizer"]


def upgraded_optimizer_state(model, checkpoint, optimizer):
    """The checkpoint's optimizer state, for a model that merged the checkpoint's separate
    top-down networks into grouped ones on load (GraphVAE.separate_top_down_sources): each
    state tensor of a parameter's shape merged like the parameter, step counts kept. Any
    other checkpoint's state as it is."""
    saved = checkpoint["optimizer"]
    sources = getattr(model, "separate_top_down_sources", lambda _: {})(checkpoint["state_dict"])
    if not sources:
        return saved
    merged_into = {old: new for new, (olds, _) in sources.items() for old in olds}
    names = {id(p): name for name, p in model.named_parameters()}
    parameters = set(names.values())
    # The saved model's parameters, in its order: what its optimizer numbered.
    saved_order = [k for k in checkpoint["state_dict"] if merged_into.get(k, k) in parameters]
    state, groups, index = {}, [], 0
    for saved_group, group in zip(saved["param_groups"], optimizer.param_groups):
        wanted = [names[id(p)] for p in group["params"]]
        old_names = [k for k in saved_order if merged_into.get(k, k) in set(wanted)]
        if len(old_names) != len(saved_group["params"]):
            return saved  # another model's: load_state_dict says it does not fit
        old_state = {name: saved["state"].get(i) for name, i in zip(old_names, saved_group["params"])}
        for name in wanted:
            olds, merge = sources.get(name, ((name,), None))
            if all(old_state[old] is not None for old in olds):
                state[index] = merged_state([old_state[old] for old in olds], merge)
            index += 1
        groups.append({**saved_group, "params": list(range(index - len(wanted), index))})
    return {"state": state, "param_groups": groups}


def merged_state(states, merge):
    """One parameter's optimizer state from those of the parameters merged into it."""
    if merge is None:
        return states[0]
    return {key: merge(*(s[key] for s in states)) if torch.is_tensor(value) and value.dim()
            else value for key, value in states[0].items()}


def restore_structure_optimizer(trainer, checkpoint, path):
    """Load the structure logits' optimiser (kept or not, as the checkpoint's run had it);
    settings the config changes apply from here on. Returns what changed."""
    state = checkpoint.get("structure_optimizer")
    if trainer.structure_optimizer is None:
        return []
    fresh = [dict(group) for group in trainer.structure_optimizer.param_groups]
    try:
        trainer.structure_optimizer.load_state_dict(state)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: structure_optimizer state does not fit the "
                              f"configured one: {e}") from None
    changed = []
    for group, new in zip(trainer.structure_optimizer.param_groups, fresh):
        for key, value in new.items():
            if key != "params" and group.get(key) != value:
                trainer.notes.append((logging.INFO, f"structure_optimizer.args.{key} is "
                                                    f"{value} (the checkpoint's: "
                                                    f"{group.get(key)}); applied from here on"))
                group[key] = value
                changed.append(f"structure_optimizer.{key}")
    return changed


def apply_structure_lr(trainer, checkpoint, fresh_groups):
    """A changed arch.args.gate_schedule.lr applies to the structure logits' group (the
    restored optimizer state would keep the old rate); whether it changed."""
    def structure_lr(config):
        arch = (config.get("arch") or {}).get("args") or {}
        return (arch.get("gate_schedule") or {}).get("lr")
    old, new = structure_lr(checkpoint["config"]), structure_lr(trainer.config.config)
    if old == new or len(fresh_groups) < 2:
        return False
    trainer.optimizer.param_groups[1]["lr"] = fresh_groups[1]["lr"]
    trainer.optimizer.param_groups[1].pop("initial_lr", None)
    trainer.notes.append((logging.INFO, f"arch.args.gate_schedule.lr is {new} (the "
                                        f"checkpoint's: {old}); applied from here on"))
    return True


def apply_optimizer_arg(trainer, key, fresh_groups):
    """Set a changed optimizer setting, as the freshly built optimizer has it, in every
    parameter group it governs (the learning rate: the networks' group; the structure
    logits keep gate_schedule.lr). A scheduler goes on from the new rate: the factor it
    has applied so far is kept."""
    for i, (group, fresh) in enumerate(zip(trainer.optimizer.param_groups, fresh_groups)):
        if key == "lr" and i > 0:
            continue
        if not is_numbers(fresh.get(key)):
            raise ConfigError(f"optimizer.args.{key} cannot change when resuming (it shapes "
                              f"the optimizer's state); keep the checkpoint's value or "
                              f"start a new run")
        if key != "lr" or "initial_lr" not in group:
            group[key] = fresh[key]
            continue
        base = fresh.get("initial_lr", fresh["lr"])
        group["lr"] *= base / group["initial_lr"]
        group["initial_lr"] = base
        if getattr(trainer.lr_scheduler, "base_lrs", None):
            trainer.lr_scheduler.base_lrs[i] = base


def rng_state(device):
    """This process's random state: the CPU generator's, and its own GPU's if it uses one."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(trainer, saved, path):
    """Each rank continues its own random stream when the number of processes is the one
    the checkpoint was saved with; with another number the run goes on, not bit for bit."""
    states = saved if isinstance(saved, list) else [saved]  # older checkpoints: one state
    rank, world_size, _ = distributed.world()
    if len(states) != world_size:
        trainer.notes.append((logging.WARNING, f"{path} was saved by {len(states)} process(es) "
                                               f"and resumes with {world_size}: training "
                                               f"continues, but not bit for bit"))
    state = states[rank] if rank < len(states) else None
    if state is None:
        torch.manual_seed(trainer.config["seed"] + 1_000_003 * rank + trainer.start_epoch)
        return
    try:
        if not isinstance(state, dict):
            raise TypeError(f"a {type(state).__name__}, not a dict of generator states")
        torch.set_rng_state(state["torch"])
        if trainer.device.type == "cuda" and "cuda" in state:
            torch.cuda.set_rng_state(state["cuda"], trainer.device)
    except (RuntimeError, TypeError, KeyError) as e:
        raise CheckpointError(f"{path}: its random-number state is damaged ({e}); resume "
                              f"from another checkpoint") from None


def is_numbers(value):
    """A number, or a list of numbers (e.g. Adam's betas): what may change on resume."""
    if isinstance(value, (list, tuple)):
        return all(map(is_numbers, value))
    return isinstance(value, (int, float)) and not isinstance(value, bool)
