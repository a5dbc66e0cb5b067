"""Whether a checkpoint fits the trainer it resumes, checked before anything is loaded.

utils/checkpoint.py checks a checkpoint on its own (types, bounds, ranges); this checks it
against the model, optimisers, scheduler and data it is about to be loaded into. torch's
load_state_dict methods trust what they are given: an optimizer state of other shapes makes
a fused step write out of bounds (a segmentation fault), a scheduler state of other types
fails at its first step, a position past the end of the epoch skips it unnoticed. Each misfit
is one CheckpointError here instead.
"""
import math

import torch

from utils.config import shorten
from utils.errors import CheckpointError, ConfigError

# Settings that do not change which examples an epoch's batches hold, in which order.
NOT_ORDER = ("data_dir",)


def check_fits(trainer, checkpoint, path, optimizer_state=None):
    """Every part of checkpoint fits trainer, or a one-line CheckpointError (or ConfigError
    for settings the config changes that cannot continue the run). optimizer_state: the
    optimizer state that will be loaded, when it is not the checkpoint's as saved (one
    merged for the grouped top-down networks: base/resume.upgraded_optimizer_state)."""
    check_data(trainer, checkpoint, path)
    check_position(trainer, checkpoint, path)
    check_partial_sums(trainer.partial_sum_shapes(), checkpoint, path)
    check_optimizer_state(trainer.optimizer, checkpoint["optimizer"] if optimizer_state is None
                          else optimizer_state, path, "optimizer")
    if trainer.structure_optimizer is not None:
        check_optimizer_state(trainer.structure_optimizer, checkpoint.get("structure_optimizer"),
                              path, "structure_optimizer")
    if trainer.lr_scheduler is not None and checkpoint.get("lr_scheduler"):
        check_scheduler_state(trainer.lr_scheduler, checkpoint["lr_scheduler"], path)


def misfit(path, what):
    return CheckpointError(f"{path} does not fit this run: {what}; resume from another "
                           f"checkpoint of the run, or start a new run")


# -- the data -----------------------------------------------------------------------------
def check_data(trainer, checkpoint, path):
    """The data the model was trained on has the width (and image shape) of the data now."""
    width = trainer.model.input_dim
    if checkpoint["input_dim"] != width:
        raise misfit(path, f"its model takes {checkpoint['input_dim']} input values, the "
                           f"configured data has {width}")
    saved = checkpoint.get("image_shape")
    shape = getattr(trainer.data_loader, "image_shape", None)
    if saved is not None and shape is not None and tuple(saved) != tuple(shape):
        raise misfit(path, f"its images are {tuple(saved)}, the configured data's "
                           f"{tuple(shape)}")


def check_position(trainer, checkpoint, path):
    """The position inside the epoch lies within it, and the epoch's batches are the ones the
    checkpoint was cut in (a mid-epoch resume skips the batches already seen)."""
    done, batches = checkpoint.get("batches_done", 0), len(trainer.data_loader)
    if not done:
        return
    if done > batches:
        raise misfit(path, f"it stopped after batch {done} of an epoch, which now has "
                           f"{batches} batches")
    changed = changed_order_settings(checkpoint["config"], trainer.config.config)
    if changed:
        epoch = checkpoint["epoch"] + 1
        raise ConfigError(f"{path} was saved inside epoch {epoch} (after batch {done}), and "
                          f"{', '.join(changed)} changed, so the rest of that epoch cannot "
                          f"be told apart from what was seen; resume with the checkpoint's "
                          f"settings, or from a checkpoint taken at the end of an epoch "
                          f"(checkpoint-epochK.pth)")


def changed_order_settings(saved, configured):
    """The settings that decide an epoch's batches (data_loader.args but the data's folder,
    and the run's seed) in which two configs differ; keys only one of them gives (an older
    checkpoint's defaults) are not compared."""
    def loader_args(config):
        args = (config.get("data_loader") or {}).get("args") or {}
        return args if isinstance(args, dict) else {}
    old, new = loader_args(saved), loader_args(configured)
    changed = [f"data_loader.args.{key}" for key in sorted(old.keys() & new.keys())
               if key not in NOT_ORDER and old[key] != new[key]]
    if (saved.get("data_loader") or {}).get("type") != configured["data_loader"]["type"]:
        changed.append("data_loader.type")
    if saved.get("seed", configured["seed"]) != configured["seed"]:
        changed.append("seed")
    return changed


def check_partial_sums(shapes, checkpoint, path):
    """The partial sums of an epoch's metrics: the terms a step sums ({name: shape}), numbers
    or tensors of those shapes, finite; none before the epoch's first batch."""
    sums = checkpoint.get("partial_sums")
    if not sums:
        return
    if not checkpoint.get("batches_done"):
        raise misfit(path, "it holds partial sums of an epoch but no position inside it")
    if "n" not in sums or not set(sums) <= set(shapes):
        raise misfit(path, f"its partial sums name {', '.join(map(str, sorted(sums, key=str)))}"
                           f", not the terms a step sums ({', '.join(shapes)})")
    for key, value in sums.items():
        if torch.is_tensor(value):
            fits = tuple(value.shape) == shapes[key] and not value.is_complex() \
                and bool(torch.isfinite(value.double()).all())
        else:
            fits = shapes[key] == () and is_number(value) and math.isfinite(value)
        if not fits:
            raise misfit(path, f"its partial sum '{key}' is not a finite number of shape "
                               f"{shapes[key]}")


# -- optimisers ---------------------------------------------------------------------------
def check_optimizer_state(optimizer, saved, path, name):
    """An optimizer's saved state fits it: its groups hold as many parameters, their settings
    are values of the kinds the optimizer's are, and every state tensor has its parameter's
    shape and dtype (or is a scalar, like Adam's step) and is finite."""
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict) \
            or not isinstance(saved.get("param_groups"), list):
        raise misfit(path, f"its {name} state is not torch's (state and param_groups)")
    groups = optimizer.param_groups
    if len(saved["param_groups"]) != len(groups):
        raise misfit(path, f"its {name} has {len(saved['param_groups'])} parameter groups, "
                           f"the configured one {len(groups)}")
    params = {}  # saved index -> the parameter it stands for
    for k, (group, fresh) in enumerate(zip(saved["param_groups"], groups)):
        check_group(group, fresh, path, f"{name} group {k}")
        params.update(zip(group["params"], fresh["params"]))
    if len(params) != sum(len(g["params"]) for g in groups):
        raise misfit(path, f"its {name} groups name a parameter twice")
    forms = state_forms(optimizer)
    for index, state in saved["state"].items():
        if index not in params or not isinstance(state, dict):
            raise misfit(path, f"its {name} state names parameter {index!r}, which none of "
                               f"its groups holds")
        check_param_state(state, params[index], forms, path, f"{name} state of parameter "
                                                             f"{index}")


def check_group(group, fresh, path, where):
    if not isinstance(group, dict) or not isinstance(group.get("params"), list) \
            or not all(is_int(i) for i in group["params"]):
        raise misfit(path, f"its {where} is not a parameter group")
    if len(group["params"]) != len(fresh["params"]):
        raise misfit(path, f"its {where} holds {len(group['params'])} parameters, the "
                           f"configured model's {len(fresh['params'])}")
    for key, value in group.items():
        if key == "params":
            continue
        if not isinstance(key, str) or not same_kind(value, fresh.get(key, value)) \
                or not is_plain(value):
            raise misfit(path, f"its {where} setting '{key}' is {shorten(value)}, not a value "
                               f"like {shorten(fresh.get(key))}")


def state_forms(optimizer):
    """{state key: "param" | torch.dtype of a scalar | None | "number"} of what one step of
    this optimizer keeps per parameter, found by stepping a copy of it on a stand-in (2, 3)
    parameter; None when it cannot be made (then every key gets the general check)."""
    device = optimizer.param_groups[0]["params"][0].device
    stand_in = torch.nn.Parameter(torch.zeros(2, 3, device=device))
    try:
        copy = type(optimizer)([stand_in], **optimizer.defaults)
        stand_in.grad = torch.zeros_like(stand_in)
        copy.step()
    except Exception:  # an optimizer whose settings its constructor does not all take
        return None
    forms = {}
    for key, value in copy.state[stand_in].items():
        if torch.is_tensor(value):
            forms[key] = "param" if value.shape == stand_in.shape else value.dtype
        else:
            forms[key] = "number" if is_number(value) else None
    return forms


def check_param_state(state, param, forms, path, where):
    if forms is not None and set(state) != set(forms):
        raise misfit(path, f"its {where} holds {', '.join(map(str, sorted(state, key=str)))}"
                           f", not the {', '.join(sorted(forms))} of this optimizer")
    for key, value in state.items():
        form = forms.get(key) if forms is not None else None
        if torch.is_tensor(value):
            scalar = value.dim() == 0 and (forms is None or form != "param")
            shaped = tuple(value.shape) == tuple(param.shape) and value.dtype == param.dtype \
                and form in ("param", None)
            if not (scalar or shaped) or value.is_complex() or value.layout != torch.strided:
                raise misfit(path, f"its {where}: '{key}' is a {value.dtype} tensor of shape "
                                   f"{tuple(value.shape)}, the parameter a {param.dtype} "
                                   f"{tuple(param.shape)}")
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise misfit(path, f"its {where}: '{key}' has a NaN or an infinity")
        elif form == "param" or (value is not None
                                 and not (is_number(value) and math.isfinite(value))):
            raise misfit(path, f"its {where}: '{key}' is {shorten(value)}, not a tensor or "
                               f"a finite number")


# -- the scheduler ------------------------------------------------------------------------
def check_scheduler_state(scheduler, saved, path):
    """A scheduler's saved state: plain values of the kinds its own state has, and no key
    that would replace one of its methods (load_state_dict sets every key as an attribute)."""
    fresh = scheduler.state_dict()
    if not isinstance(saved, dict) or not is_plain(saved):
        raise misfit(path, "its lr_scheduler state is not a dict of plain values")
    missing = [key for key in fresh if key not in saved]
    if missing:
        raise misfit(path, f"its lr_scheduler state lacks {', '.join(missing)}")
    for key, value in saved.items():
        if key not in fresh and (not isinstance(key, str) or hasattr(type(scheduler), key)):
            raise misfit(path, f"its lr_scheduler state sets '{key}', which is not a state "
                               f"of {type(scheduler).__name__}")
        if key in fresh and not same_kind(value, fresh[key]):
            raise misfit(path, f"its lr_scheduler state '{key}' is {shorten(value)}, not a "
                               f"value like {shorten(fresh[key])}")


# -- plain values -------------------------------------------------------------------------
def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_plain(value):
    """Numbers, strings, booleans, None, and lists, tuples and dicts of them (no tensors)."""
    if isinstance(value, (list, tuple)):
        return all(map(is_plain, value))
    if isinstance(value, dict):
        return all(isinstance(k, (str, int)) and is_plain(v) for k, v in value.items())
    return value is None or isinstance(value, (bool, int, float, str))


def same_kind(value, like):
    """Whether value can stand where like stands: an integer for an integer, a number (not
    NaN) for a float, a bool for a bool, a list of as many such items for a list, a dict of
    the same keys for a dict; anything plain where like is None (set later)."""
    if like is None:
        return is_plain(value)
    if isinstance(like, bool):
        return isinstance(value, bool)
    if is_int(like):
        return is_int(value)
    if isinstance(like, float):
        return is_number(value) and not math.isnan(value)
    if isinstance(like, str):
        return isinstance(value, str)
    if isinstance(like, (list, tuple)):
        return isinstance(value, (list, tuple)) and len(value) == len(like) \
            and all(map(same_kind, value, like))
    if isinstance(like, dict):
        return isinstance(value, dict) and value.keys() == like.keys() \
            and all(same_kind(value[k], like[k]) for k in like)
    if torch.is_tensor(like):
        return torch.is_tensor(value) and value.shape == like.shape and value.dtype == like.dtype
    return is_plain(value)
