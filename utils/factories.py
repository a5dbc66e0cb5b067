"""Building objects named in a config: a section {"type": name, "args": {...}} becomes
module.<name>(**args), its arguments checked against the constructor first (names and value
types), so a typo is one line naming the key."""
import difflib
import inspect

from utils.config import MOVED, describe_type, type_ok, unknown_key_error
from utils.errors import ConfigError

# Constructor arguments the program sets (never the config): the data width, the split, the
# run's seed and the process's shard.
PROGRAM_SET = ("input_dim", "split", "seed", "num_replicas", "rank")
FILLED = ("arch", "data_loader")  # sections whose defaults are written into the config


def resolve(config, section, module):
    """The class or function named by config[section]['type'] in module, or a clear error."""
    type_name = config[section]["type"]
    choices = getattr(module, "__all__", None) or [
        n for n in dir(module) if not n.startswith("_") and inspect.isclass(getattr(module, n))]
    if type_name not in choices:
        close = difflib.get_close_matches(type_name, choices, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"choices: {', '.join(choices)}"
        raise ConfigError(f"unknown {section}.type '{type_name}'; {hint}")
    return getattr(module, type_name)


def check_args(config, section, module, *args, overrides=None, **kwargs):
    """Check that the section's args fit the constructor (names and value types).

    kwargs are set by the program and may not appear in the config; overrides replace
    config values (e.g. the test batch size)."""
    factory = resolve(config, section, module)
    cfg_args = {**config[section]["args"], **(overrides or {})}
    parameters, takes_any = accepted_parameters(factory)
    for key, value in cfg_args.items():
        if key in kwargs and f"{section}.args.{key}" not in MOVED:
            raise ConfigError(f"'{section}.args.{key}' is set by the program; remove it")
        if key not in parameters or key in PROGRAM_SET:
            if takes_any and key not in PROGRAM_SET:
                continue
            raise unknown_key_error(key, f"{section}.args.",
                                    [p for p in parameters if p not in PROGRAM_SET])
        types = value_types(parameters[key])
        if types and not type_ok(value, types):
            raise ConfigError(f"'{section}.args.{key}' must be {describe_type(types)}, "
                              f"got {value!r}")
        check_like_default(value, parameters[key].default, f"{section}.args.{key}")
    signature = inspect.signature(factory)
    try:
        signature.bind(*args, **cfg_args, **kwargs)
    except TypeError as e:
        raise ConfigError(f"{section}: {e}") from None
    return factory, cfg_args


def init_obj(config, section, module, *args, overrides=None, **kwargs):
    """factory(*args, **config[section]['args'], **kwargs), with clear errors. For the model
    and the data, the defaults the constructor used are written into config (the run's saved
    config.json then states every setting it ran with)."""
    factory, cfg_args = check_args(config, section, module, *args, overrides=overrides,
                                   **kwargs)
    try:
        built = factory(*args, **cfg_args, **kwargs)
    except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError, OverflowError,
            RuntimeError) as e:  # what a library's constructor raises for arguments it refuses
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{section}.args: {detail}") from None
    if section in FILLED:
        config[section]["args"] = {**defaults(factory, exclude=kwargs),
                                   **config[section]["args"]}
    return built


def check_like_default(value, default, key):
    """A list given for an argument whose default is a list or tuple of numbers holds
    numbers; for a library's tuple (Adam's betas, Rprop's etas: a pair by meaning) as many
    as the default (the model's tuples, like encoder_hidden, are any number of sizes)."""
    if not isinstance(default, (list, tuple)) or not isinstance(value, (list, tuple)) \
            or not all(type_ok(v, (float,)) for v in default):
        return
    fixed = isinstance(default, tuple) and not key.startswith("arch.")
    if not all(type_ok(v, (float,)) for v in value) or (fixed and len(value) != len(default)):
        count = f"{len(default)} numbers" if fixed else "numbers"
        raise ConfigError(f"'{key}' must be a list of {count} like its default "
                          f"{list(default)}, got {value!r}")


def accepted_parameters(factory):
    """({name: Parameter}, takes_any) of a constructor; a subclass's **kwargs that it passes
    on to its parent are resolved by following the class hierarchy."""
    classes = factory.__mro__ if inspect.isclass(factory) else [factory]
    parameters = {}
    for cls in classes:
        function = cls.__init__ if inspect.isclass(factory) else cls
        if function is object.__init__:
            break
        own = inspect.signature(function).parameters
        for name, p in own.items():
            if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                parameters.setdefault(name, p)
        if not any(p.kind == p.VAR_KEYWORD for p in own.values()):
            return parameters, False
    return parameters, True


def value_types(parameter):
    """The types a constructor argument takes, judged by its default (an int default annotated
    float, like torch's weight_decay = 0, takes numbers); () when it tells nothing."""
    default = parameter.default
    if default in (None, inspect.Parameter.empty):
        return ()
    if type(default) is int and parameter.annotation in (float, "float"):
        return (float,)
    return (type(default),)


def defaults(factory, exclude=()):
    """{name: default} of a constructor's arguments the config may set (JSON values)."""
    parameters, _ = accepted_parameters(factory)
    return {name: list(p.default) if isinstance(p.default, tuple) else p.default
            for name, p in parameters.items()
            if p.default is not inspect.Parameter.empty and name not in PROGRAM_SET
            and name not in exclude}
