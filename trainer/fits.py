"""Whether a checkpoint's state fits the trainer it is loaded into, checked before anything is
loaded (Trainer.load_state_dict).

trainer/checkpoint.py has checked the state on its own (types, ranges); this checks it against
the model, optimisers, scheduler and data: torch's load_state_dict methods trust what they are
given (an optimiser state of other shapes makes a fused step write out of bounds, a position
past the end of an epoch would skip it unnoticed). Each misfit is one line.
"""
import math

import torch

from trainer.epoch_log import partial_sum_shapes
from utils.errors import ConfigError, UserError

# Data settings that do not change which examples an epoch's batches hold, in which order.
NOT_ORDER = ("data_dir",)


class Misfit(UserError):
    """The state does not fit this trainer (the caller names the file)."""


def check_model(model, state):
    """The state's weights are those of model: its architecture, names and shapes."""
    if state["arch"] != type(model).__name__:
        raise Misfit(f"it holds a {state['arch']}, the config builds a {type(model).__name__}")
    fits_tensors(state["model"], model.state_dict(), "weights", exact=True)


def check_fits(trainer, state):
    check_model(trainer.model, state)
    if state["epoch"] >= trainer.settings["epochs"]:
        raise ConfigError(f"the checkpoint has finished {state['epoch']} epochs already; train "
                          f"longer with --epochs N (N > {state['epoch']})")
    check_data(trainer, state)
    shapes = partial_sum_shapes(trainer.model)
    fits_tensors(state["partial_sums"] or {}, {k: torch.zeros(s) for k, s in shapes.items()},
                 "partial sums", dtype=False)
    for name in ("structure_optimizer", "optimizer"):  # whether it has one, before its shape
        check_optimizer(getattr(trainer, name), state, name, trainer.config)
    if trainer.lr_scheduler is not None and state["lr_scheduler"] is not None:
        check_scheduler(trainer.lr_scheduler, state["lr_scheduler"])


def check_data(trainer, state):
    """The model's data width and image shape, and for a state taken inside an epoch the
    settings that decide the epoch's batches (the batches already seen are skipped)."""
    if state["input_dim"] != trainer.model.input_dim:
        raise Misfit(f"its model takes {state['input_dim']} input values, the configured data "
                     f"{trainer.model.input_dim}")
    shape = getattr(trainer.data_loader, "image_shape", None)
    if None not in (state["image_shape"], shape) and tuple(state["image_shape"]) != tuple(shape):
        raise Misfit(f"its images are {tuple(state['image_shape'])}, the configured data's "
                     f"{tuple(shape)}")
    done, batches = state["batches_done"], len(trainer.data_loader)
    if done > batches:
        raise Misfit(f"it stopped after batch {done} of an epoch, which now has {batches}")
    old, new = state["config"], trainer.config.config
    changed = [f"data_loader.args.{k}" for k in sorted(loader_args(old).keys() & loader_args(new))
               if k not in NOT_ORDER and loader_args(old)[k] != loader_args(new)[k]]
    changed += [key for key in ("seed",) if old.get(key, new[key]) != new[key]]
    if done and changed:
        raise ConfigError(f"the checkpoint was saved inside epoch {state['epoch'] + 1} (after "
                          f"batch {done}), and {', '.join(changed)} changed, so the rest of that "
                          f"epoch cannot be told apart from what was seen; resume with the "
                          f"checkpoint's settings, or from a checkpoint-epochK of the run")


def loader_args(config):
    args = (config.get("data_loader") or {}).get("args") or {}
    return args if isinstance(args, dict) else {}


def fits_tensors(saved, template, what, exact=False, dtype=True):
    """saved's tensors have the template's shapes (and dtypes); exact: the same names too."""
    misfit = f"its {what} do not fit " + ("the configured architecture" if what == "weights"
                                          else "the terms a training step sums")
    if exact and set(saved) != set(template):
        missing, extra = sorted(set(template) - set(saved)), sorted(set(saved) - set(template))
        raise Misfit(f"{misfit} (missing {', '.join(missing[:3]) or 'none'}; unexpected "
                     f"{', '.join(extra[:3]) or 'none'}); resume with the checkpoint's own config")
    for key, value in saved.items():
        like = template.get(key)
        if like is None or value.shape != like.shape or dtype and value.dtype != like.dtype:
            raise Misfit(f"{misfit}: '{key}' is a {value.dtype} {tuple(value.shape)}"
                         + ("" if like is None else f", the model's {like.dtype} {tuple(like.shape)}")
                         + "; resume with the checkpoint's own config")


def check_optimizer(optimizer, state, name, config):
    """The saved state of an optimiser fits it: the same type and kept settings, as many groups
    and parameters, each per-parameter tensor of its parameter's shape (or a scalar)."""
    saved = state.get(name)
    if (saved is None) != (optimizer is None):
        raise ConfigError(f"the checkpoint was trained {'with' if saved else 'without'} a "
                          f"{name}; resume with the same (its settings may change) or start a "
                          f"new run")
    if optimizer is None:
        return
    old, new = state["config"].get(name) or {}, config[name]
    if old.get("type", new["type"]) != new["type"]:
        raise ConfigError(f"the checkpoint was trained with {name} {old['type']}, which cannot "
                          f"continue as {new['type']}; keep {name}.type {old['type']} or start "
                          f"a new run")
    for key in changed_args(state["config"], config, name):
        if not all(is_numbers(group.get(key)) for group in optimizer.param_groups):
            raise ConfigError(f"{name}.args.{key} cannot change when resuming (it shapes the "
                              f"optimizer's state); keep the checkpoint's value or start a new run")
    groups = optimizer.param_groups
    if len(saved["param_groups"]) != len(groups):
        raise Misfit(f"its {name} has {len(saved['param_groups'])} parameter groups, the "
                     f"configured one {len(groups)}")
    params = {}
    for k, (group, live) in enumerate(zip(saved["param_groups"], groups)):
        if len(group["params"]) != len(live["params"]):
            raise Misfit(f"its {name} group {k} holds {len(group['params'])} parameters, the "
                         f"model's {len(live['params'])}")
        for key, value in group.items():
            if key != "params" and not same_kind(value, live.get(key, value)):
                raise Misfit(f"its {name} group {k} setting '{key}' is {str(value)[:30]}, not a "
                             f"value like {str(live.get(key))[:30]}")
        params.update(zip(group["params"], live["params"]))
    forms = state_forms(optimizer)
    for index, per_parameter in saved["state"].items():
        if index not in params:
            raise Misfit(f"its {name} state names parameter {index}, which no group holds")
        check_parameter_state(per_parameter, params[index], forms,
                              f"{name} state of parameter {index}:")


def state_forms(optimizer):
    """{key: a tensor like the parameter ("param"), a scalar tensor of a dtype, or a number}:
    what one step of this optimiser keeps per parameter, from a copy stepped on a stand-in."""
    stand_in = torch.nn.Parameter(torch.zeros(2, 3, device=optimizer.param_groups[0]["params"][0].device))
    copy = type(optimizer)([stand_in], **optimizer.defaults)
    stand_in.grad = torch.zeros_like(stand_in)
    copy.step()
    return {key: ("param" if value.shape == stand_in.shape else value.dtype)
            if torch.is_tensor(value) else "number" for key, value in copy.state[stand_in].items()}


def check_parameter_state(state, param, forms, where):
    if set(state) != set(forms):
        raise Misfit(f"its {where} holds {', '.join(sorted(state))}, not the "
                     f"{', '.join(sorted(forms))} of this optimizer")
    for key, value in state.items():
        form, fits = forms[key], False
        if form == "param":
            fits = torch.is_tensor(value) and value.shape == param.shape \
                and value.dtype == param.dtype
        elif form == "number":
            fits = is_numbers(value)
        else:
            fits = torch.is_tensor(value) and value.dim() == 0 and value.dtype == form
        if not fits:
            raise Misfit(f"its {where} '{key}' is {describe(value)}, not "
                         f"{'a ' + str(param.dtype) + ' ' + str(tuple(param.shape)) if form == 'param' else form}")


def check_scheduler(scheduler, saved):
    """A scheduler's saved state: the keys and kinds of values its own state has, and no key
    that would replace one of its methods (load_state_dict sets every key as an attribute)."""
    live = scheduler.state_dict()
    for key in live:
        if key not in saved:
            raise Misfit(f"its lr_scheduler state lacks {key}")
    for key, value in saved.items():
        if key not in live and hasattr(type(scheduler), key) or \
                key in live and not same_kind(value, live[key]):
            raise Misfit(f"its lr_scheduler state '{key}' is {str(value)[:30]}, which "
                         f"{type(scheduler).__name__} does not take")


def changed_args(saved_config, config, section):
    old = (saved_config.get(section) or {}).get("args") or {}
    new = (config[section] or {}).get("args") or {}
    return sorted(k for k in {*old, *new} if old.get(k) != new.get(k))


def is_numbers(value):
    """A number, or a list of numbers (e.g. Adam's betas): what may change on resume."""
    if isinstance(value, (list, tuple)):
        return all(map(is_numbers, value))
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def same_kind(value, like):
    """Whether value can stand where like stands: an int for an int, a number for a float, a
    bool for a bool, a string for a string, a list of as many such items for a list or tuple,
    a dict of the same keys for a dict; a plain value where like is None."""
    if isinstance(like, bool) or like is None or isinstance(like, str):
        return isinstance(value, type(like)) if like is not None else not torch.is_tensor(value)
    if isinstance(like, (int, float)):
        return is_numbers(value) and (isinstance(value, int) or isinstance(like, float)) \
            and not (isinstance(value, float) and math.isnan(value))
    if isinstance(like, (list, tuple)):
        return isinstance(value, (list, tuple)) and len(value) == len(like) \
            and all(map(same_kind, value, like))
    if isinstance(like, dict):
        return isinstance(value, dict) and value.keys() == like.keys() \
            and all(same_kind(value[k], like[k]) for k in like)
    return not torch.is_tensor(value)


def describe(value):
    return f"a {value.dtype} {tuple(value.shape)}" if torch.is_tensor(value) else str(value)[:30]
