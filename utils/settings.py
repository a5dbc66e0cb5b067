"""Checking settings against the one place that declares them: a signature.

A section of the config is checked against the signature of what it configures: a model's or
data loader's constructor, or a settings dataclass (the trainer's, a gate schedule). Each
parameter's annotation is its type and its range, its default is the default:

    n_nodes: Annotated[int, "[1, 128]"] = 5          an integer from 1 to 128
    free_bits: Annotated[float, "[0, inf)"] = 0.0    a number >= 0
    structure: Literal["learned", "full"] = "learned"
    likelihood: Annotated[str, LIKELIHOODS] = "bernoulli"   a name registered there
    gate_schedule: GateSchedule = None               a nested settings dataclass

Ranges are written as intervals (brackets include the end, parentheses exclude it), so the
classes that declare them need nothing but the standard library. check_args returns the
section with every default filled in (a run's saved config states every setting it used);
anything wrong is one ConfigError naming the key, with a did-you-mean for an unknown one.
"""
import dataclasses
import difflib
import inspect
import math
import re
import types
import typing
from typing import Annotated

from utils.errors import ConfigError

# What marks a setting that names a file or folder: never taken from a checkpoint's config
# (where a run writes and what data it reads come from the user).
PATH = "file path"
FilePath = Annotated[str, PATH]
INTERVAL = re.compile(r"^([\[(])\s*(-?inf|[-+.\deE]+)\s*,\s*(inf|[-+.\deE]+)\s*([\])])$")
TYPE_NAMES = {bool: "true/false", int: "an integer", float: "a finite number", str: "a string",
              dict: "an object", list: "a list", tuple: "a list", type(None): "null"}


def check_args(target, args, where, program_set=()):
    """args (a dict from a config) checked against target's signature; returns them with every
    default filled in. program_set: parameters the program gives, never the config."""
    if not isinstance(args, dict):
        raise ConfigError(f"'{where.rstrip('.')}' must be an object of settings, got "
                          f"{shorten(args)}")
    parameters, hints = settable(target, program_set)
    for key in args:
        if key not in parameters:
            raise unknown_key(where + key, key, [*parameters])
    filled = {}
    for name, parameter in parameters.items():
        if name in args:
            filled[name] = check_value(args[name], hints.get(name), where + name)
        elif parameter.default is inspect.Parameter.empty:
            raise ConfigError(f"missing key '{where}{name}' in the config")
        else:
            filled[name] = default_of(hints.get(name), parameter.default, where + name)
    return filled


def settable(target, program_set):
    """({name: parameter}, {name: annotation}) of the keyword parameters a config may set; a
    subclass's **kwargs that it passes on are its parent's parameters (the class hierarchy is
    followed)."""
    functions = [c.__init__ for c in target.__mro__] if inspect.isclass(target) else [target]
    parameters, hints = {}, {}
    for function in functions:
        own = inspect.signature(function).parameters
        for name, p in own.items():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name != "self" \
                    and name not in program_set and name not in parameters:
                parameters[name] = p
                hints[name] = typing.get_type_hints(function, include_extras=True).get(name)
        if not any(p.kind == p.VAR_KEYWORD for p in own.values()):
            break
    return parameters, hints


def default_of(hint, default, where):
    """A parameter's default as the config states it: a nested settings class's defaults."""
    settings = settings_class(hint)
    if settings is not None and default is None and all_defaulted(settings):
        return check_args(settings, {}, where + ".")
    return list(default) if isinstance(default, tuple) else default


def check_value(value, hint, where):
    """value of the type and in the range hint declares; nested settings are filled in."""
    base, constraints = unpack(hint)
    settings = settings_class(hint)
    if settings is not None and value is None and not all_defaulted(settings):
        return None  # an optional section left out (e.g. no lr_scheduler)
    if settings is not None and (value is None or isinstance(value, dict)):
        filled = check_args(settings, value or {}, where + ".")
        try:
            settings(**filled)  # the relations between its fields (its __post_init__)
        except ValueError as e:
            raise ConfigError(f"'{where}': {e}") from None
        return filled
    if not type_ok(value, base):
        raise ConfigError(f"'{where}' must be {describe(base)}, got {shorten(value)}")
    if names_path(hint) and value == "":  # not the current folder by accident: '.' says so
        raise ConfigError(f"'{where}' is empty; name a folder or file ('.' for the current "
                          f"folder)")
    for constraint in constraints:
        if value is None:
            continue
        if not isinstance(constraint, str):  # a registry of names (model/registry.one_of)
            if value not in constraint:
                raise ConfigError(f"'{where}': unknown {constraint.kind} {shorten(value)}; "
                                  f"{constraint.unknown(value)}")
        elif not in_interval(value, constraint):
            raise ConfigError(f"'{where}' must be in {constraint}, got {shorten(value)}")
    return value


def unpack(hint):
    """(the type without Annotated, the interval strings and registries it carries)."""
    if typing.get_origin(hint) is typing.Annotated:
        base, *extras = typing.get_args(hint)
        return base, [e for e in extras if (isinstance(e, str) and INTERVAL.match(e))
                      or hasattr(e, "unknown")]
    options = typing.get_args(hint) if is_union(hint) else ()
    if options and any(typing.get_origin(o) is typing.Annotated for o in options):
        inner = [unpack(o) for o in options]
        return typing.Union[tuple(b for b, _ in inner)], [c for _, cs in inner for c in cs]
    return hint, []


def is_union(hint):
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def path_keys(target):
    """The names of target's settings that are file paths (annotated FilePath)."""
    _, hints = settable(target, ())
    return [name for name, hint in hints.items() if names_path(hint)]


def names_path(hint):
    """Whether a setting's annotation marks a file path (FilePath)."""
    return typing.get_origin(hint) is typing.Annotated and PATH in typing.get_args(hint)


def all_defaulted(settings):
    """Whether every field of a settings class has a default (then null means the defaults;
    otherwise, e.g. a section that must name a type, null means none)."""
    return all(f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
               for f in dataclasses.fields(settings))


def settings_class(hint):
    """The settings dataclass a parameter takes (also inside Optional), or None."""
    base = unpack(hint)[0]
    options = typing.get_args(base) if is_union(base) else (base,)
    return next((o for o in options if dataclasses.is_dataclass(o)), None)


def type_ok(value, hint):
    """Whether a JSON value is of the annotated type (no annotation: anything)."""
    if hint is None or hint is typing.Any:
        return True
    origin, options = typing.get_origin(hint), typing.get_args(hint)
    if is_union(hint):
        return any(type_ok(value, option) for option in options)
    if origin is typing.Literal:
        return any(value == o and type(value) is type(o) for o in options)
    if origin in (list, tuple) or hint in (list, tuple):
        return isinstance(value, list) and all(type_ok(v, options[0]) for v in value if options)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) \
            and math.isfinite(value)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is type(None):
        return value is None
    return isinstance(value, origin or hint)


def in_interval(value, interval):
    """Whether value lies in an interval written like "[1, 128]" or "(0, inf)"; a list's
    items each."""
    if isinstance(value, list):
        return all(in_interval(v, interval) for v in value)
    left, low, high, right = INTERVAL.match(interval).groups()
    low, high = number(low), number(high)
    return (low <= value if left == "[" else low < value) and \
        (value <= high if right == "]" else value < high)


def number(text):
    """An interval's end: an integer exactly (2**63 - 1 is no float), else a float."""
    return int(text) if text.lstrip("-").isdigit() else float(text)


def describe(hint):
    if is_union(hint):
        return " or ".join(describe(option) for option in typing.get_args(hint))
    if typing.get_origin(hint) is typing.Literal:
        return " or ".join(repr(o) for o in typing.get_args(hint))
    if typing.get_origin(hint) in (list, tuple):
        return f"a list of {describe(typing.get_args(hint)[0]).removeprefix('a ')}s"
    return TYPE_NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def unknown_key(where, key, valid):
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f" (valid keys: {', '.join(valid)})"
    return ConfigError(f"unknown key '{where}'{hint}")


def shorten(value, limit=60):
    """repr(value), cut to about limit characters (for one-line messages)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
