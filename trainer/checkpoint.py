"""Checkpoint files: save_checkpoint(state, path) and load_checkpoint(path).

A checkpoint is a safetensors file: an 8-byte header length, a JSON header, then raw tensor
bytes at the offsets the header declares. No pickle and no compression, so opening a file can
neither run code nor inflate it. The tensors of the state (weights, optimiser moments, random
states, partial sums) are its tensors, each under the path that leads to it
("model/encoder.0.weight", "optimizer/state/0/exp_avg"); everything else (config, counters,
history, parameter groups) is one JSON tree in the header's metadata, in which each tensor
stands as {"__tensor__": its path}. The metadata also holds the SHA-256 of the tree and the
tensor bytes, so a byte changed anywhere is found before anything is used.

load_checkpoint is the door for checkpoints: the size and header are bounded before the file
is read whole, and the tree is checked by one schema (trainer/checkpoint_schema.py). A
state this module returns is plain data and tensors of checked types and ranges; whether it
fits a given model and optimiser is the trainer's to check when it loads it.
"""
import hashlib
import json
import os
import struct
from pathlib import Path

import safetensors.torch
import torch

from trainer.checkpoint_schema import check_state
from utils.errors import CheckpointError
from utils.files import write_file

FORMAT = "graphvae checkpoint 1"
MAX_BYTES = 4 * 2**30  # far above any model graphvae builds (utils/model_size.py)
MAX_HEADER = 64 * 2**20  # the JSON: a config, and a history of thousands of epochs
TENSOR, INT_KEYS = "__tensor__", "__int_keys__"


def save_checkpoint(state, path):
    """Write state (nested dicts and lists of plain values and tensors) to path, atomically."""
    write_encoded(encode(state), path)


def write_encoded(data, path):
    """Write encode()'s bytes to path, atomically; an OSError (a full disk, a folder that
    cannot be written) is one line."""
    try:
        write_file(path, data)
    except OSError as e:
        raise CheckpointError(f"could not write checkpoint {path}: {e.strerror or e}; the "
                              f"previous checkpoint is intact (free space or choose another "
                              f"trainer.save_dir, then resume)") from None


def load_checkpoint(path):
    """The checked state saved at path (tensors on the CPU), or a one-line CheckpointError."""
    path = Path(path)
    if not path.is_file():
        several = int(os.environ.get("WORLD_SIZE", "1")) > 1  # under torchrun
        raise CheckpointError(f"checkpoint not found: {path}" + (
            f" on this machine (rank {os.environ.get('RANK', '?')}): every process reads it, "
            f"so it must be at this path on every machine (a shared file system, or a copy)"
            if several else ""))
    state = decode(read_bounded(path), path)
    check_state(state, path)
    return state


def encode(state):
    tensors = {}
    tree = json.dumps(to_tree(state, "", tensors))
    data = data_section(safetensors.torch.save(tensors))
    return safetensors.torch.save(tensors, {"format": FORMAT, "state": tree,
                                            "sha256": digest(tree, data)})


def decode(data, path):
    header_length = struct.unpack("<Q", data[:8])[0]
    try:
        tensors = safetensors.torch.load(data)
        metadata = json.loads(data[8:8 + header_length]).get("__metadata__") or {}
    except Exception as e:  # what the library or json raise for a malformed file
        raise unreadable(path, type(e).__name__) from None
    if metadata.get("format") != FORMAT or not isinstance(metadata.get("state"), str):
        raise unreadable(path, "not a graphvae checkpoint")
    if metadata.get("sha256") != digest(metadata["state"], data_section(data)):
        raise CheckpointError(f"{path} is damaged: its contents do not match the SHA-256 saved "
                              f"with them (bytes changed on disk or in a copy); use another "
                              f"checkpoint of the run or copy it again")
    try:
        return from_tree(json.loads(metadata["state"]), tensors, path)
    except RecursionError:
        raise unreadable(path, "its state nests too deep") from None
    except ValueError:  # an integer of thousands of digits
        raise unreadable(path, "its state holds a number too long to read") from None


def read_bounded(path):
    """The file's bytes, after its size and header length are checked against the bounds."""
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise unreadable(path, f"{size / 2**30:.1f} GiB, larger than any graphvae checkpoint")
    with open(path, "rb") as f:
        head = f.read(8)
        if head.startswith(b"PK\x03\x04"):
            raise CheckpointError(f"{path} is a checkpoint of an earlier graphvae (torch.save's "
                                  f"format), which this version does not read; convert it once "
                                  f"with python -m trainer.convert_checkpoint {path}")
        if len(head) < 8 or not 0 < struct.unpack("<Q", head)[0] <= min(MAX_HEADER, size - 8):
            raise unreadable(path, "no safetensors header")
        return head + f.read()


def data_section(data):
    return memoryview(data)[8 + struct.unpack("<Q", data[:8])[0]:]


def digest(tree, data):
    return hashlib.sha256(tree.encode() + bytes(data)).hexdigest()


def unreadable(path, why):
    return CheckpointError(f"{path} is not a readable checkpoint ({why}); use an intact "
                           f"checkpoint-*.safetensors of a run")


def to_tree(value, where, tensors):
    """value as JSON data, its tensors moved to tensors[path] (each its own contiguous CPU
    copy: safetensors stores no views and no shared storage)."""
    if torch.is_tensor(value):
        tensors[where] = value.detach().to("cpu", copy=True).contiguous()
        return {TENSOR: where}
    if isinstance(value, dict):
        if value and all(isinstance(k, int) for k in value):  # e.g. an optimiser's state
            return {INT_KEYS: {str(k): to_tree(v, f"{where}/{k}", tensors)
                               for k, v in value.items()}}
        return {k: to_tree(v, f"{where}/{k}".lstrip("/"), tensors) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_tree(v, f"{where}/{k}", tensors) for k, v in enumerate(value)]
    return value


def from_tree(value, tensors, path):
    if isinstance(value, dict):
        if set(value) == {TENSOR}:
            if value[TENSOR] not in tensors:
                raise unreadable(path, f"no tensor {str(value[TENSOR])[:60]!r}")
            return tensors[value[TENSOR]]
        if set(value) == {INT_KEYS} and isinstance(value[INT_KEYS], dict):
            items = value[INT_KEYS].items()
            if not all(k.isdigit() for k, _ in items):
                raise unreadable(path, "a damaged optimiser state")
            return {int(k): from_tree(v, tensors, path) for k, v in items}
        return {k: from_tree(v, tensors, path) for k, v in value.items()}
    if isinstance(value, list):
        return [from_tree(v, tensors, path) for v in value]
    return value
