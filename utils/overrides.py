"""Command-line overrides of a config (--set key.path=value and flags such as --epochs):
every one counts, whatever the order; two that set the same key are one line."""
import json

from utils.config import SECTION_DEFAULTS, parse_json
from utils.errors import ConfigError
from utils.settings import shorten


def parse_value(text):
    """A command-line value: JSON if it parses (3, 1e-3, true, null, [1,2]), else a string."""
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return text
    except (ValueError, RecursionError):
        pass  # JSON, but not usable: parse_json says why
    return parse_json(text, f"the value {shorten(text)}")


def set_by_path(config, dotted_key, value):
    """config['a']['b']['c'] = value for 'a.b.c'. A section the config leaves out starts from
    its default (e.g. the default optimizer), or empty."""
    *parents, last = dotted_key.split(".")
    node = config
    for k, key in enumerate(parents):
        if not isinstance(node, dict):
            break
        default = SECTION_DEFAULTS.get(key) if k == 0 else None
        node = node.setdefault(key, {"type": default.type, "args": dict(default.args)}
                               if default else {})
    if not isinstance(node, dict):
        raise ConfigError(f"cannot set '{dotted_key}': '{'.'.join(parents)}' is not an object")
    node[last] = value


def apply_overrides(config, assignments, flags=()):
    """Apply the command line's ['key.path=value', ...] (--set) and [(flag, key, value)], e.g.
    ("--epochs", "trainer.epochs", 1). Every one counts, whatever the order: a section given
    whole (--set 'trainer={...}') is set first, the keys inside it after (--epochs 1 sets its
    epochs); two that set the same key are one line."""
    overrides = sorted([*map(parse_assignment, assignments), *flags],
                       key=lambda override: override[1].count("."))
    for k, (given, key, value) in enumerate(overrides):
        for earlier, section, whole in overrides[:k]:
            if key == section or key.startswith(section + ".") \
                    and holds(whole, key[len(section) + 1:]):
                raise ConfigError(f"{earlier} and {given} both set '{key}'; give it once")
        set_by_path(config, key, value)
    return config


def parse_assignment(assignment):
    """(how it was given, key, value) of a --set key.path=value."""
    key, sep, text = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"override '{assignment}' must look like key.path=value")
    return f"--set {key}", key, parse_value(text)


def holds(value, dotted_key):
    """Whether the nested objects of value give dotted_key ('a.b': value['a']['b'])."""
    for key in dotted_key.split("."):
        if not isinstance(value, dict) or key not in value:
            return False
        value = value[key]
    return True
