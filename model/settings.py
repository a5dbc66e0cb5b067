"""Settings objects built from a config's plain dict (e.g. arch.args.gate_schedule)."""
from dataclasses import fields


def from_config(cls, values, name):
    """cls(**values), a frozen dataclass with a check() method; null gives the defaults. An
    unknown key or a wrong value is a ValueError that names `name` and the key."""
    if values is not None and not isinstance(values, dict):
        raise ValueError(f"{name} must be an object of settings, got {values!r}")
    values = dict(values or {})
    known = [f.name for f in fields(cls)]
    for key in values:
        if key not in known:
            raise ValueError(f"unknown {name} key '{key}' (keys: {', '.join(known)})")
    settings = cls(**values)
    settings.check()
    return settings
