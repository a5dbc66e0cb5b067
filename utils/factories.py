"""The door for the sections that name torch's own classes: optimizer and structure_optimizer
(a torch.optim optimizer) and lr_scheduler (a torch.optim.lr_scheduler scheduler).

torch's constructors declare no ranges, so a section is checked in three steps before anything
is loaded: its type is one of torch's optimizers (schedulers), its args are parameters of that
class of the types their defaults have, and the class, built on a stand-in parameter, makes two
closure-free steps with them (LBFGS, SparseAdam, StepLR with step_size 0 ... stop here, with one
line). What torch's constructors refuse themselves (a negative rate) is that one line too.
"""
import difflib
import inspect

import torch
from torch.optim import lr_scheduler as schedulers

from utils.errors import ConfigError
from utils.settings import describe, type_ok, unknown_key

KINDS = {"optimizer": (torch.optim, torch.optim.Optimizer),
         "structure_optimizer": (torch.optim, torch.optim.Optimizer),
         "lr_scheduler": (schedulers, schedulers.LRScheduler)}
REFUSED = (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError, OverflowError,
           RuntimeError)  # what torch's constructors and steps raise for settings they refuse


def resolve(config, section):
    """The torch class config[section] names, or one line with the closest name."""
    module, base = KINDS[section]
    choices = sorted(name for name, cls in vars(module).items() if not name.startswith("_")
                     and inspect.isclass(cls) and issubclass(cls, base) and cls is not base
                     and not (section == "lr_scheduler" and cls.__module__ != module.__name__))
    name = config[section]["type"]
    if name not in choices:
        close = difflib.get_close_matches(name, choices, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"choices: {', '.join(choices)}"
        raise ConfigError(f"unknown {section}.type '{name}'; {hint}")
    return getattr(module, name)


def init_torch(config, section, *args, **given):
    """torch's class for config[section] built with its args (and the program's `given`)."""
    factory = resolve(config, section)
    parameters = inspect.signature(factory).parameters
    for key, value in config[section]["args"].items():
        if key not in parameters or key in ("params", "optimizer") or key in given:
            raise unknown_key(f"{section}.args.{key}", key,
                              [p for p in parameters if p not in ("params", "optimizer")])
        like = parameters[key].default
        kind = float if isinstance(like, int) and not isinstance(like, bool) else type(like)
        if like not in (None, inspect.Parameter.empty) and not type_ok(value, kind):
            raise ConfigError(f"'{section}.args.{key}' must be {describe(kind)}, got {value!r}")
        if isinstance(like, tuple) and not (len(value) == len(like) and all(
                type_ok(v, float) for v in value)):  # a pair by meaning: Adam's betas
            raise ConfigError(f"'{section}.args.{key}' must be a list of {len(like)} numbers "
                              f"like its default {list(like)}, got {value!r}")
    try:
        return factory(*args, **config[section]["args"], **given)
    except REFUSED as e:
        raise ConfigError(f"{section}.args: {first_line(e)}") from None


def check_torch_sections(config):
    """Every torch section builds and makes two steps on a stand-in parameter."""
    for section in ("optimizer", "structure_optimizer"):
        if config[section] is not None:
            parameter = torch.nn.Parameter(torch.zeros(1))
            try_steps(config, section, parameter, init_torch(config, section, [parameter]).step)
    if config["lr_scheduler"] is not None:
        parameter = torch.nn.Parameter(torch.zeros(1))
        optimizer = init_torch(config, "optimizer", [parameter])
        scheduler = init_torch(config, "lr_scheduler", optimizer)
        plateau = isinstance(scheduler, schedulers.ReduceLROnPlateau)
        try_steps(config, "lr_scheduler", parameter,
                  lambda: (optimizer.step(), scheduler.step(0.0) if plateau else scheduler.step()))


def try_steps(config, section, parameter, step):
    try:
        for _ in range(2):
            parameter.grad = torch.zeros(1)
            step()
    except Exception as e:  # whatever the class raises, training could not use it
        raise ConfigError(f"{section} {config[section]['type']} cannot make a training step "
                          f"with these settings: {first_line(e)}") from None


def first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
