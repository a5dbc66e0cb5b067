"""What a checkpoint's state may hold: every field's type and range, checked once when the file
is loaded (trainer/checkpoint.load_checkpoint). docs/checkpoints.md lists the fields.

Whether a state that passes fits the model and optimisers it is loaded into (shapes, keys,
kinds of values) is the trainer's check (trainer/state.py); paths are never taken from a
checkpoint's config (utils/config.PATH_KEYS says which keys are paths).
"""
import math

import torch

from utils.errors import CheckpointError

MAX_COUNT = 2**53  # epochs, batches, steps: far above any run's
COUNTERS = ("epoch", "batches_done", "nonfinite_steps", "not_improved_count")
OPTIMIZERS = ("optimizer", "structure_optimizer")
# Ranges of the optimiser settings torch's optimisers share; any other setting is a plain
# value of the kind the configured optimiser's is (checked when it is loaded).
GROUP_RULES = {
    "lr": (lambda v: v > 0, "a positive number"),
    "eps": (lambda v: v > 0, "a positive number"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "dampening": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "betas": (lambda v: len(v) == 2 and all(is_number(b) and 0 <= b < 1 for b in v),
              "two numbers in [0, 1)"),
}


class Invalid(Exception):
    """What is wrong, completing "its ..."."""


def check_state(state, path):
    """state keeps the schema, or a one-line CheckpointError naming the first field that does
    not."""
    try:
        check_fields(state)
    except Invalid as e:
        raise CheckpointError(f"{path} is not a valid checkpoint: its {e}; use another "
                              f"checkpoint of the run") from None


def check_fields(state):
    if not isinstance(state, dict):
        raise Invalid("contents are not a state")
    expect(state, "arch", str)
    expect(state, "config", dict)
    for key in COUNTERS:
        expect(state, key, int)
        if not 0 <= state[key] <= MAX_COUNT:
            raise Invalid(f"'{key}' is {state[key]} (a count from 0)")
    expect(state, "input_dim", int)
    if not 1 <= state["input_dim"] <= MAX_COUNT:
        raise Invalid(f"'input_dim' is {state['input_dim']}")
    check_image_shape(state.get("image_shape"), state["input_dim"])
    best = state.get("monitor_best")
    if best is not None and not (is_number(best) and math.isfinite(best)):
        raise Invalid(f"'monitor_best' is {best!r}, not a finite number or null")
    expect(state, "history", list)
    if not all(isinstance(log, dict) for log in state["history"]):
        raise Invalid("'history' is not a list of epoch logs")
    check_tensors(state, "model", dict)
    for key in OPTIMIZERS:
        if state.get(key) is not None:
            check_optimizer(state[key], key)
    expect(state, "lr_scheduler", (dict, type(None)))
    check_tensors(state, "partial_sums", (dict, type(None)))
    if state["partial_sums"] and not state["batches_done"]:
        raise Invalid("'partial_sums' are an epoch's, but it holds no position inside one")
    check_rng(state.get("rng"))
    check_values(state, "", allow_infinity=False)


def expect(state, key, types):
    if key not in state:
        raise Invalid(f"'{key}' is missing")
    if isinstance(state[key], bool) or not isinstance(state[key], types):
        raise Invalid(f"'{key}' is a {type(state[key]).__name__}")


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_image_shape(shape, input_dim):
    if shape is None:
        return
    if not (isinstance(shape, list) and len(shape) == 3
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)
            and math.prod(shape) == input_dim):
        raise Invalid(f"image_shape {str(shape)[:40]} is not the (C, H, W) of its {input_dim} "
                      f"input values")


def check_tensors(state, key, types):
    """state[key]: a dict of name -> tensor (or None where types allow)."""
    expect(state, key, types)
    if state[key] is not None and not all(torch.is_tensor(v) for v in state[key].values()):
        raise Invalid(f"'{key}' holds values that are not tensors")


def check_optimizer(saved, name):
    """torch's optimizer state_dict: per-parameter state of tensors and numbers, and parameter
    groups whose settings are in range."""
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict) \
            or not isinstance(saved.get("param_groups"), list):
        raise Invalid(f"{name} state is not torch's (state and param_groups)")
    for index, per_parameter in saved["state"].items():
        if not isinstance(index, int) or not isinstance(per_parameter, dict):
            raise Invalid(f"{name} state names parameter {str(index)[:20]!r}")
    for k, group in enumerate(saved["param_groups"]):
        if not isinstance(group, dict) or not isinstance(group.get("params"), list) \
                or not all(isinstance(i, int) for i in group["params"]):
            raise Invalid(f"{name} group {k} is not a parameter group")
        for key, (rule, what) in GROUP_RULES.items():
            value = group.get(key)
            if value is not None and not rule_holds(rule, value):
                raise Invalid(f"{name} group {k} setting '{key}' is {str(value)[:30]}, not "
                              f"{what}")


def rule_holds(rule, value):
    if isinstance(value, (bool, str)):
        return False
    try:
        return bool(rule(value))
    except TypeError:  # a value of another kind (a string for a number, a number for a pair)
        return False


def check_rng(states):
    """One random state per process: {"torch": its CPU generator's bytes, "cuda": its GPU's}."""
    if not isinstance(states, list) or not all(
            isinstance(s, dict) and set(s) <= {"torch", "cuda"} and "torch" in s
            and all(torch.is_tensor(t) and t.dtype == torch.uint8 and t.dim() == 1
                    for t in s.values()) for s in states):
        raise Invalid("'rng' is not a list of random-number states")


def check_values(value, where, allow_infinity):
    """No NaN anywhere, no infinity outside the scheduler's state (ReduceLROnPlateau starts
    from an infinite best), and no complex or non-finite tensor."""
    if torch.is_tensor(value):
        if value.is_complex() or value.is_floating_point() and not bool(value.isfinite().all()):
            raise Invalid(f"'{where}' has a NaN, an infinity or complex numbers")
    elif isinstance(value, float) and (math.isnan(value) or
                                       math.isinf(value) and not allow_infinity):
        raise Invalid(f"'{where}' is {value}")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_values(item, f"{where}.{key}".lstrip("."),
                         allow_infinity or (where, key) == ("", "lr_scheduler"))
    elif isinstance(value, list):
        for k, item in enumerate(value):
            check_values(item, f"{where}[{k}]", allow_infinity)
