"""Bounds on plain data (a config from a file or inside a checkpoint, a checkpoint's fields),
checked before anything else reads it.

A JSON file or a pickled checkpoint can describe structure that is small on disk and ruinous
to use: nesting deep enough to exhaust Python's recursion, a list that contains itself, a few
shared sub-lists that expand to 2**40 items when they are walked (or written out as JSON), an
integer of thousands of digits. problem() walks the data once, each shared part once (a
visited set), and names the first bound it exceeds.
"""
import math

import torch

MAX_DEPTH = 64  # configs nest about 5 levels deep, checkpoints about 6
# Items counted as every reader sees them, a shared part every time it appears: a config has
# hundreds, a checkpoint's history of 10,000 epochs about a million.
MAX_ITEMS = 4_000_000
MAX_INT_DIGITS = 30  # seeds go up to 2**63-1, 19 digits
MAX_STRING = 100_000  # characters: paths, names, type names


class TooBig(Exception):
    """What bound the data exceeds (the message completes "<what> ...")."""


def problem(value):
    """None if value keeps every bound, else what is wrong, e.g. "nests deeper than 64 levels"."""
    try:
        items(value, 0, set(), {})
    except TooBig as e:
        return str(e)
    return None


def items(value, depth, path, sizes):
    """How many items value holds, counting a shared part every time it appears (memoised by
    identity in sizes, so the walk is linear); path: the containers around value."""
    if isinstance(value, bool) or value is None or isinstance(value, float) \
            or torch.is_tensor(value):
        return 1
    if isinstance(value, int):
        # the digits of 2**(bits - 1) <= |value|: str() refuses integers of 4300 digits
        digits = math.floor((abs(value).bit_length() - 1) * math.log10(2)) + 1
        if digits > MAX_INT_DIGITS:
            raise TooBig(f"holds an integer of about {digits} digits (at most "
                         f"{MAX_INT_DIGITS})")
        return 1
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise TooBig(f"holds a string of {len(value):,} characters (at most "
                         f"{MAX_STRING:,})")
        return 1
    if not isinstance(value, (dict, list, tuple)):
        return 1  # other types are the callers' to judge
    key = id(value)
    if key in path:
        raise TooBig("contains itself (a list or object inside its own items)")
    if key in sizes:
        return sizes[key]
    if depth >= MAX_DEPTH:
        raise TooBig(f"nests deeper than {MAX_DEPTH} levels")
    path.add(key)
    children = [*value.keys(), *value.values()] if isinstance(value, dict) else value
    total = 1
    for child in children:
        total += items(child, depth + 1, path, sizes)
        if total > MAX_ITEMS:
            raise TooBig(f"holds more than {MAX_ITEMS:,} items (shared parts counted every "
                         f"time they appear)")
    path.discard(key)
    sizes[key] = total
    return total
