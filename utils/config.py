"""The run's configuration: JSON file + command-line overrides, checked before anything runs.

Every section is checked against what the code accepts, so that a typo, an unknown type or a
value of the wrong type stops the run with one line naming the key (ConfigError), before any
directory is created or any data is loaded.
"""
import copy
import difflib
import inspect
import json
from datetime import datetime
from pathlib import Path

from utils.errors import ConfigError

OBJECT = "object"  # a section {"type": ..., "args": {...}} built by type name

# key: (accepted types, default). These are the defaults: a config states only what differs.
REQUIRED = object()
TOP_LEVEL = {
    "name": ((str,), REQUIRED),
    "n_gpu": ((int, type(None)), None),  # null: a GPU per process if one is visible
    "seed": ((int,), 0),
    "arch": (OBJECT, REQUIRED),
    "data_loader": (OBJECT, REQUIRED),
    "optimizer": (OBJECT, {"type": "Adam", "args": {"lr": 3e-4}}),
    "lr_scheduler": (OBJECT, None),
    "trainer": ((dict,), {}),
}
TRAINER = {
    "epochs": ((int,), 100),
    "save_dir": ((str,), "saved/"),
    "save_period": ((int,), 10),
    "verbosity": ((int,), 2),
    "monitor": ((str,), "min val_loss"),
    "early_stop": ((int,), 0),
    "tensorboard": ((bool,), True),
    "deterministic": ((bool,), False),
    "checkpoint_every_steps": ((int, type(None)), None),
    "max_nonfinite_steps": ((int,), 10),
    "tbptt_steps": ((int, type(None)), None),
    "kl_warmup_epochs": ((int,), 10),  # chosen on validation (docs/results/fashion_mnist_protocol)
    "free_bits": ((float,), 0.0),
    "amp": ((bool,), False),
    "sync_batchnorm": ((bool,), True),
    "compile": ((bool,), False),
}
# Keys of older configs, and where their settings live now.
MOVED = {
    "loss": "nowhere: every model has the one objective (remove the key)",
    "trainer.temperature": "arch.args.gate_schedule (tau_init, tau_rate or anneal_epochs, tau_floor)",
    "trainer.freeze_graph_epoch": "arch.args.gate_schedule.freeze_epoch",
    "optimizer.structure_lr": "arch.args.gate_schedule.lr",
    "data_loader.args.seed": "the top-level 'seed' (the run's) and data_loader.args.split_seed (the split's)",
}


def describe_type(types):
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string",
             dict: "an object", list: "a list", type(None): "null"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def type_ok(value, types):
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    if isinstance(value, (list, tuple)):
        return list in types or tuple in types
    return isinstance(value, tuple(types))


def unknown_key_error(key, where, valid):
    if where + key in MOVED:
        return ConfigError(f"'{where}{key}' has moved to {MOVED[where + key]}")
    close = difflib.get_close_matches(key, list(valid), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f" (valid keys: {', '.join(valid)})"
    return ConfigError(f"unknown key '{where}{key}'{hint}")


def apply_schema(section, schema, where):
    """Check keys and value types of a plain section, and fill in defaults."""
    for key in section:
        if key not in schema:
            raise unknown_key_error(key, where, schema)
    filled = {}
    for key, (types, default) in schema.items():
        if key not in section:
            if default is REQUIRED:
                raise ConfigError(f"missing key '{where}{key}' in the config")
            filled[key] = default
            continue
        value = section[key]
        if types == OBJECT:
            filled[key] = check_object_shape(value, where + key)
        elif not type_ok(value, types):
            raise ConfigError(f"'{where}{key}' must be {describe_type(types)}, got {value!r}")
        else:
            filled[key] = value
    return filled


def check_object_shape(value, where):
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise ConfigError(f"'{where}' must be an object with a \"type\" name and \"args\"")
    for key in value:
        if key not in ("type", "args"):
            raise unknown_key_error(key, where + ".", ("type", "args"))
    if not isinstance(value.get("args", {}), dict):
        raise ConfigError(f"'{where}.args' must be an object")
    return {"args": {}, **value}


def validate(config):
    """The config with every plain section checked and its defaults filled in."""
    if not isinstance(config, dict):
        raise ConfigError("the config must be a JSON object")
    config = apply_schema(config, TOP_LEVEL, "")
    config["trainer"] = apply_schema(config["trainer"], TRAINER, "trainer.")
    return config


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


def load_json(path):
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (pass an existing file with -c)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {e.msg} at line {e.lineno}, "
                          f"column {e.colno}") from None


def parse_value(text):
    """A command-line value: JSON if it parses (3, 1e-3, true, null, [1,2]), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def set_by_path(config, dotted_key, value):
    """config['a']['b']['c'] = value for 'a.b.c'; the type must match an existing value.
    A section the config leaves out starts from its default (e.g. the default optimizer)."""
    *parents, last = dotted_key.split(".")
    node = config
    for k, key in enumerate(parents):
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set '{dotted_key}': '{'.'.join(parents[:k])}' "
                              f"is not an object")
        default = TOP_LEVEL.get(key, (None, None))[1] if k == 0 else None
        node = node.setdefault(key, copy.deepcopy(default) if isinstance(default, dict) else {})
    if not isinstance(node, dict):
        raise ConfigError(f"cannot set '{dotted_key}': '{'.'.join(parents)}' is not an object")
    old = node.get(last)
    if old is not None and value is not None and not type_ok(value, (type(old),)):
        raise ConfigError(f"'{dotted_key}' must be {describe_type((type(old),))} like its "
                          f"current value {old!r}, got {value!r}")
    node[last] = value


def apply_overrides(config, assignments):
    """Apply ['key.path=value', ...] from the command line."""
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{assignment}' must look like key.path=value")
        set_by_path(config, key, parse_value(text))
    return config


# Constructor arguments the program sets (never the config): the data width, the split, the
# run's seed and the process's shard.
PROGRAM_SET = ("input_dim", "split", "seed", "num_replicas", "rank")


class ConfigParser:
    """The validated config plus where the run writes (models/ and log/ under save_dir)."""

    def __init__(self, config, run_dir=None):
        self.config = validate(config)
        save_dir = Path(self.config["trainer"]["save_dir"])
        if run_dir is None:
            run_id = datetime.now().strftime("%m%d_%H%M%S")
            run_dir = save_dir / "models" / self.config["name"] / run_id
        self.save_dir = Path(run_dir)
        self.log_dir = save_dir / "log" / self.config["name"] / self.save_dir.name

    def name_run(self, run_id):
        """Use run_id instead of the date and time; an existing run is never reused."""
        self.save_dir = self.save_dir.with_name(run_id)
        self.log_dir = self.log_dir.with_name(run_id)
        if self.save_dir.exists():
            raise ConfigError(f"run directory {self.save_dir} exists already; continue it with "
                              f"--resume {self.save_dir / 'checkpoint-latest.pth'} or choose "
                              f"another --run-id")

    def __getitem__(self, key):
        return self.config[key]

    def make_run_dirs(self, resuming=False):
        """Create the run's directories; a new run never reuses an existing one."""
        if resuming:  # a write killed mid-way leaves its temporary file behind
            for stale in self.save_dir.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
        else:
            base, k = self.save_dir, 1
            while self.save_dir.exists() or self.log_dir.exists():
                self.save_dir = base.with_name(f"{base.name}_{k}")
                self.log_dir = self.log_dir.with_name(self.save_dir.name)
                k += 1
        try:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            self.log_dir.mkdir(parents=True, exist_ok=True)
            probe = self.save_dir / ".write_test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise ConfigError(f"cannot write to save_dir {self.save_dir}: {e.strerror} "
                              f"(set trainer.save_dir to a writable directory)") from None
        (self.save_dir / "config.json").write_text(json.dumps(self.config, indent=2))

    def resolve(self, section, module):
        """The class or function named by config[section]['type'] in module, or a clear error."""
        type_name = self.config[section]["type"]
        choices = getattr(module, "__all__", None) or [
            n for n in dir(module) if not n.startswith("_") and inspect.isclass(getattr(module, n))]
        if type_name not in choices:
            close = difflib.get_close_matches(type_name, choices, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"choices: {', '.join(choices)}"
            raise ConfigError(f"unknown {section}.type '{type_name}'; {hint}")
        return getattr(module, type_name)

    def check_args(self, section, module, *args, overrides=None, **kwargs):
        """Check that the section's args fit the constructor (names and value types).

        kwargs are set by the program and may not appear in the config; overrides replace
        config values (e.g. the test batch size)."""
        factory = self.resolve(section, module)
        cfg_args = {**self.config[section]["args"], **(overrides or {})}
        parameters, takes_any = accepted_parameters(factory)
        for key, value in cfg_args.items():
            if key in kwargs and f"{section}.args.{key}" not in MOVED:
                raise ConfigError(f"'{section}.args.{key}' is set by the program; remove it")
            if key not in parameters or key in PROGRAM_SET:
                if takes_any and key not in PROGRAM_SET:
                    continue
                raise unknown_key_error(key, f"{section}.args.",
                                        [p for p in parameters if p not in PROGRAM_SET])
            default = parameters[key].default
            if default not in (None, inspect.Parameter.empty) and not type_ok(value, (type(default),)):
                raise ConfigError(f"'{section}.args.{key}' must be "
                                  f"{describe_type((type(default),))}, got {value!r}")
        signature = inspect.signature(factory)
        try:
            signature.bind(*args, **cfg_args, **kwargs)
        except TypeError as e:
            raise ConfigError(f"{section}: {e}") from None
        return factory, cfg_args

    def init_obj(self, section, module, *args, overrides=None, **kwargs):
        """factory(*args, **config[section]['args'], **kwargs), with clear errors."""
        factory, cfg_args = self.check_args(section, module, *args, overrides=overrides,
                                            **kwargs)
        try:
            return factory(*args, **cfg_args, **kwargs)
        except ValueError as e:
            raise ConfigError(f"{section}.args: {e}") from None
