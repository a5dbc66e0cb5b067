"""The run's configuration: JSON file + command-line overrides, checked before anything runs.

Every section is checked against what the code accepts, so that a typo, an unknown type or a
value of the wrong type stops the run with one line naming the key (ConfigError), before any
directory is created or any data is loaded.
"""
import copy
import difflib
import json
import math
from datetime import datetime
from pathlib import Path

from utils import plain_data, run_dirs
from utils.errors import ConfigError

OBJECT = "object"  # a section {"type": ..., "args": {...}} built by type name

# Range rules: (test, what the value must be). A rule is checked only for a non-null value.
POSITIVE = (lambda v: v >= 1, "a positive integer")
NON_NEGATIVE = (lambda v: v >= 0, ">= 0")
SEED = (lambda v: 0 <= v <= 2**63 - 1, "an integer in 0..2**63-1")
VERBOSITY = (0, 1, 2)  # logger/logger.py: warnings, info, debug
# torch.compile's modes; "reduce-overhead" replays the compiled step as CUDA graphs on a GPU.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


NAME_MAX = 255  # bytes in one file name, on every common file system


def is_folder_name(name):
    """Whether name is one path component that every file system and shell takes as it is:
    a run's directory can never leave save_dir, and its name is what was typed (no control
    character such as a newline, no leading '~' that a shell would expand)."""
    return (name not in ("", ".", "..") and not any(c in name for c in "/\\")
            and name.isprintable() and not name.startswith("~")
            and len(name.encode("utf-8", "surrogatepass")) <= NAME_MAX)


def monitor_parts(monitor):
    """(mode, metric) of trainer.monitor ('off' -> ('off', None)), or None if malformed."""
    if monitor == "off":
        return "off", None
    mode, _, metric = monitor.partition(" ")
    return (mode, metric) if mode in ("min", "max") and metric else None


FOLDER_NAME = (is_folder_name, "one folder name (no '/', '\\', '..', control characters or "
                               "leading '~'; at most 255 bytes)")

# key: (accepted types, default, range rule or None). These are the defaults: a config states
# only what differs.
REQUIRED = object()
TOP_LEVEL = {
    "name": ((str,), REQUIRED, FOLDER_NAME),
    "n_gpu": ((int, type(None)), None, NON_NEGATIVE),  # null: a GPU per process if visible
    "seed": ((int,), 0, SEED),
    "arch": (OBJECT, REQUIRED, None),
    "data_loader": (OBJECT, REQUIRED, None),
    "optimizer": (OBJECT, {"type": "Adam", "args": {"lr": 3e-4}}, None),
    # The structure logits' own optimiser, e.g. {"type": "SGD", "args": {"lr": 1.0}}; null:
    # they are trained by `optimizer` (at arch.args.gate_schedule.lr if given).
    "structure_optimizer": (OBJECT, None, None),
    "lr_scheduler": (OBJECT, None, None),
    "trainer": ((dict,), {}, None),
}
TRAINER = {
    "epochs": ((int,), 100, POSITIVE),
    "save_dir": ((str,), "saved/", (bool, "a directory")),
    "save_period": ((int,), 10, POSITIVE),
    "verbosity": ((int,), 2, (lambda v: v in VERBOSITY, "0 (warnings), 1 (info) or 2 (debug)")),
    "monitor": ((str,), "min val_loss", (monitor_parts, "'off' or 'min|max <metric>'")),
    "early_stop": ((int,), 0, NON_NEGATIVE),
    "tensorboard": ((bool,), True, None),
    "deterministic": ((bool,), False, None),
    "checkpoint_every_steps": ((int, type(None)), None, POSITIVE),
    "max_nonfinite_steps": ((int,), 10, POSITIVE),
    "tbptt_steps": ((int, type(None)), None, POSITIVE),
    # chosen on validation (docs/results/fashion_mnist_protocol)
    "kl_warmup_epochs": ((int,), 10, NON_NEGATIVE),
    "free_bits": ((float,), 0.0, NON_NEGATIVE),
    "amp": ((bool,), False, None),
    "log_every_steps": ((int,), 50, POSITIVE),  # TensorBoard: training loss, gradient norm
    "sync_batchnorm": ((bool,), True, None),
    # "auto": compile when the run is long enough to repay it (trainer/compiling.py).
    "compile": ((bool, str), "auto",
                (lambda v: v in (True, False, "auto"), 'true, false or "auto"')),
    # torch.compile's mode (implies compile): "reduce-overhead" for CUDA graphs on a GPU.
    "compile_mode": ((str, type(None)), None,
                     (lambda v: v in COMPILE_MODES, " or ".join(map(repr, COMPILE_MODES)))),
    # Measure every learned edge's value (trainer/edge_values.py) at the freeze and the end.
    "edge_values": ((bool,), True, None),
}
# Keys of older configs, and where their settings live now.
MOVED = {
    "loss": "nowhere: every model has the one objective (remove the key)",
    "trainer.temperature": "arch.args.gate_schedule (tau_init, tau_rate or anneal_epochs, tau_floor)",
    "trainer.freeze_graph_epoch": "arch.args.gate_schedule.freeze_epoch",
    "optimizer.structure_lr": "arch.args.gate_schedule.lr",
    "data_loader.args.seed": "the top-level 'seed' (the run's) and data_loader.args.split_seed (the split's)",
}


# Types that were renamed: a config (or a checkpoint's) that names the old one gets the new.
RENAMED_TYPES = {"data_loader": {"BinarizedImageDataLoader": "ImageDataLoader"}}


def describe_type(types):
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string",
             dict: "an object", list: "a list", tuple: "a list", type(None): "null"}
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
    for key, (types, default, rule) in schema.items():
        if key not in section:
            if default is REQUIRED:
                raise ConfigError(f"missing key '{where}{key}' in the config")
            filled[key] = default
            continue
        value = section[key]
        if types == OBJECT:
            filled[key] = check_object_shape(value, where + key)
            continue
        if not type_ok(value, types):
            raise ConfigError(f"'{where}{key}' must be {describe_type(types)}, got "
                              f"{shorten(value)}")
        if rule is not None and value is not None and not rule[0](value):
            raise ConfigError(f"'{where}{key}' must be {rule[1]}, got {shorten(value)}")
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
    check_bounds(config, "the config")
    if not isinstance(config, dict):
        raise ConfigError("the config must be a JSON object")
    check_finite(config, "")
    config = apply_schema(config, TOP_LEVEL, "")
    config["trainer"] = apply_schema(config["trainer"], TRAINER, "trainer.")
    for section, renamed in RENAMED_TYPES.items():
        if config[section] is not None and config[section]["type"] in renamed:
            config[section]["type"] = renamed[config[section]["type"]]
    return config


def check_finite(value, where):
    """No NaN or infinity anywhere (JSON files and --set may spell them NaN, Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"'{where}' must be a finite number, got {value}")
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, (list, tuple)):
        for k, item in enumerate(value):
            check_finite(item, f"{where}[{k}]")


def load_json(path):
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (pass an existing file with -c)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text (byte {e.start}); save it as UTF-8 "
                          f"JSON") from None
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from None
    return parse_json(text, str(path))


def parse_json(text, where):
    """JSON text as plain data within plain_data's bounds, each object's keys given once;
    otherwise a ConfigError naming `where` (a file, or a --set value)."""
    try:
        value = json.loads(text, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where} is not valid JSON: {e.msg} at line {e.lineno}, "
                          f"column {e.colno}") from None
    except DuplicateKey as e:
        raise ConfigError(f"{where} gives the key '{e}' twice in one object; keep "
                          f"one") from None
    except RecursionError:
        raise ConfigError(f"{where} nests deeper than {plain_data.MAX_DEPTH} levels; a "
                          f"config is a few levels of objects") from None
    except ValueError:  # Python refuses to parse integers of over 4300 digits
        raise ConfigError(f"{where} holds an integer of thousands of digits (at most "
                          f"{plain_data.MAX_INT_DIGITS}); a config is small, plain "
                          f"JSON") from None
    check_bounds(value, where)
    return value


class DuplicateKey(ValueError):
    pass


def unique_keys(pairs):
    """json's object_pairs_hook: an object whose keys are all different (JSON itself would
    keep the last of a repeated key and drop the others without a word)."""
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise DuplicateKey(key)
        obj[key] = value
    return obj


def check_bounds(value, where):
    """Plain data within the bounds of utils/plain_data.py, or a one-line ConfigError."""
    found = plain_data.problem(value)
    if found:
        raise ConfigError(f"{where} {found}; a config is small, plain JSON")


def parse_value(text):
    """A command-line value: JSON if it parses (3, 1e-3, true, null, [1,2]), else a string."""
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return text
    except (ValueError, RecursionError):
        pass  # JSON, but not usable: parse_json says why
    return parse_json(text, f"the value {shorten(text)}")


def shorten(value, limit=60):
    """repr(value), cut to about limit characters (for one-line messages)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def set_by_path(config, dotted_key, value):
    """config['a']['b']['c'] = value for 'a.b.c'; the type must match an existing value.
    A section the config leaves out starts from its default (e.g. the default optimizer)."""
    *parents, last = dotted_key.split(".")
    node = config
    for k, key in enumerate(parents):
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set '{dotted_key}': '{'.'.join(parents[:k])}' "
                              f"is not an object")
        default = TOP_LEVEL.get(key, (None, None, None))[1] if k == 0 else None
        node = node.setdefault(key, copy.deepcopy(default) if isinstance(default, dict) else {})
    if not isinstance(node, dict):
        raise ConfigError(f"cannot set '{dotted_key}': '{'.'.join(parents)}' is not an object")
    old = node.get(last)
    types = TRAINER[last][0] if parents == ["trainer"] and last in TRAINER else (type(old),)
    if old is not None and value is not None and not type_ok(value, types):
        raise ConfigError(f"'{dotted_key}' must be {describe_type(types)} like its "
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


class ConfigParser:
    """The validated config plus where the run writes (models/ and log/ under save_dir)."""

    def __init__(self, config, run_dir=None):
        self.config = validate(config)
        save_dir = Path(self.config["trainer"]["save_dir"])
        if run_dir is None:
            run_id = datetime.now().strftime("%m%d_%H%M%S")
            self.save_dir = save_dir / "models" / self.config["name"] / run_id
            self.log_dir = save_dir / "log" / self.config["name"] / run_id
        else:  # an existing run's directory (a resume): its logs lie beside it
            self.save_dir, self.log_dir = Path(run_dir), run_dirs.log_dir_of(run_dir)
        self.exact_run_id = False  # a run id the user chose is never replaced by another

    def name_run(self, run_id):
        """Use run_id instead of the date and time; an existing run is never reused."""
        if not is_folder_name(run_id):
            raise ConfigError(f"--run-id must be {FOLDER_NAME[1]}, got {run_id!r}")
        self.save_dir = self.save_dir.with_name(run_id)
        self.log_dir = self.log_dir.with_name(run_id)
        self.exact_run_id = True
        for path in (self.save_dir, self.log_dir):
            if path.exists():
                raise run_dirs.exists_error(path)

    def __getitem__(self, key):
        return self.config[key]
