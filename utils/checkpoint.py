"""Saving and loading checkpoints safely.

A checkpoint file is torch.save's zip archive followed by a 48-byte trailer: a marker and the
SHA-256 of the archive. Loading checks the digest first, so a flipped byte anywhere in the
file is reported in one line instead of being loaded; the archive itself is then read with
torch.load(weights_only=True): a checkpoint holds tensors and plain data only (the config is a
dict), so a shared checkpoint can never execute code when it is opened. (torch.load reads
the file directly too: zip readers ignore the trailer.) A file without the trailer (written
before it existed, or by torch.save) cannot be told from a damaged one, so it is refused
unless the user accepts it (--allow-unverified).

Before a byte is read whole, the file's size and its zip structure are checked; after it is
unpickled, its contents are checked against plain-data bounds (depth, size, shared parts:
utils/plain_data.py), field types and ranges, and its weights for non-finite values.

Saving is atomic (utils/files.atomic_write): the bytes go to a temporary file in the same
directory, are flushed to disk (fsync) and read back and compared, and only then is the file
renamed over the target, so a crash or a full disk at any moment leaves either the old file or
the new one, never a torn one.
"""
import hashlib
import io
import math
import os
import pickle
import re
from pathlib import Path

import torch

from utils import plain_data
from utils.config import shorten
from utils.errors import CheckpointError
from utils.files import atomic_write

MARKER = b"graphvae-sha256:"  # then the 32-byte digest of everything before the marker
TRAILER = len(MARKER) + 32
ZIP_END = b"PK\x05\x06"  # a zip archive's last record (22 bytes, no comment): no trailer
# Keys every checkpoint has, and the types of those it may have.
REQUIRED_KEYS = ("arch", "epoch", "state_dict", "config", "input_dim")
FIELD_TYPES = {"arch": str, "epoch": int, "state_dict": dict, "config": dict, "input_dim": int,
               "batches_done": int, "nonfinite_steps": int, "not_improved_count": int,
               "history": list, "optimizer": dict, "rng": (list, dict),
               "monitor_best": (int, float), "partial_sums": (dict, type(None)),
               "lr_scheduler": (dict, type(None)), "structure_optimizer": (dict, type(None))}
UNREADABLE = ("is not a readable checkpoint (truncated, damaged or another kind of file{}); "
              "use an intact checkpoint-*.pth")
# Far above any checkpoint of a model this program builds (utils/model_size.py bounds them).
MAX_BYTES = 4 * 2**30
MAX_COUNT = 2**53  # epochs, batches, steps: counters far above any run's


def encode(state):
    """The bytes of a checkpoint file holding state: torch.save's archive, then its digest."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    archive = buffer.getvalue()
    return archive + MARKER + hashlib.sha256(archive).digest()


def verified_archive(data, path):
    """The torch archive inside a checkpoint file's bytes, once its digest matches (a zip
    archive without a digest is returned whole: load_checkpoint decides on it)."""
    if data[-TRAILER:-32] == MARKER:
        archive = memoryview(data)[:-TRAILER]
        if hashlib.sha256(archive).digest() != data[-32:]:
            raise CheckpointError(f"{path} is damaged: its contents do not match the SHA-256 "
                                  f"saved with them (bytes changed on disk or in a copy); use "
                                  f"another checkpoint of the run (checkpoint-epochK.pth, "
                                  f"model_best.pth) or copy it again")
        return archive
    if data[-22:-18] == ZIP_END:  # no digest: written by torch.save or an older graphvae
        return memoryview(data)
    raise CheckpointError(f"{path} " + UNREADABLE.format(""))


def unverified_error(path):
    return CheckpointError(f"{path} carries no SHA-256 digest (written by torch.save or "
                           f"before graphvae saved one), so a damaged copy cannot be told "
                           f"from an intact one; if you trust it, pass --allow-unverified")


def read_checked(path):
    """The bytes of a checkpoint file, after its size and the end of its zip structure are
    checked: a file of 100 GB, or one that is not a checkpoint, is never read whole."""
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise CheckpointError(f"{path} is {size / 2**30:.1f} GiB, larger than any graphvae "
                              f"checkpoint (at most {MAX_BYTES / 2**30:.0f} GiB); it was not "
                              f"read; use a checkpoint-*.pth of a run")
    with open(path, "rb") as f:
        f.seek(max(0, size - TRAILER - 22))
        tail = f.read()
    if tail[-TRAILER:-32] != MARKER and tail[-22:-18] != ZIP_END:
        raise CheckpointError(f"{path} " + UNREADABLE.format(""))
    return path.read_bytes()


def write_atomically(data, path):
    """Write a checkpoint's bytes so that path is always the old file or the complete new
    one, read back and compared before it replaces the old."""
    def reads_back(written):
        if written.read_bytes() != data:
            raise OSError(f"{written} does not read back as written")

    with atomic_write(path, check=reads_back) as f:
        f.write(data)


def atomic_save(state, path):
    """Save state as a checkpoint at path, atomically."""
    write_atomically(encode(state), path)


def load_checkpoint(path, allow_unverified=False):
    """The checkpoint at path as plain data on the CPU, or a one-line CheckpointError.
    A checkpoint without a digest is refused unless allow_unverified."""
    path = Path(path)
    if not path.is_file():
        several = int(os.environ.get("WORLD_SIZE", "1")) > 1  # under torchrun
        raise CheckpointError(f"checkpoint not found: {path}" + (
            f" on this machine (rank {os.environ.get('RANK', '?')}): every process reads it, "
            f"so it must be at this path on every machine (a shared file system, or a copy)"
            if several else ""))
    try:
        data = read_checked(path)
        archive = verified_archive(data, path)
        checkpoint = torch.load(io.BytesIO(archive), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: (\S+ \S+)", str(e))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(f"{path} holds objects other than tensors and plain data{what}; "
                              f"it was not loaded, since loading it could run code") from None
    except CheckpointError:
        raise
    except Exception as e:  # whatever a malformed archive makes torch.load raise
        raise CheckpointError(f"{path} " + UNREADABLE.format(f": {type(e).__name__}")) from None
    # The weights-only load ran nothing; unverified bytes are refused only now, so that a
    # crafted file is named as what it is.
    if len(archive) == len(data) and not allow_unverified:
        raise unverified_error(path)
    check_fields(checkpoint, path)
    return checkpoint


def check_fields(checkpoint, path):
    """The checkpoint's structure within plain-data bounds, its fields of the right types and
    in range, its image shape one that its data width holds."""
    found = plain_data.problem(checkpoint)
    if found:
        raise CheckpointError(f"{path} {found}; it is not a checkpoint graphvae wrote; use "
                              f"a checkpoint-*.pth of a run")
    if not isinstance(checkpoint, dict) or not all(k in checkpoint for k in REQUIRED_KEYS):
        raise CheckpointError(f"{path} is not a graphvae checkpoint (missing "
                              f"{', '.join(REQUIRED_KEYS)})")
    for key, types in FIELD_TYPES.items():
        value = checkpoint.get(key)
        if key in checkpoint and (isinstance(value, bool) or not isinstance(value, types)):
            raise CheckpointError(f"{path} is not a valid checkpoint: its '{key}' is a "
                                  f"{type(value).__name__}; use another checkpoint")
    check_ranges(checkpoint, path)


def invalid(path, what):
    return CheckpointError(f"{path} is not a valid checkpoint: {what}; use another "
                           f"checkpoint of the run")


def check_ranges(checkpoint, path):
    """Counters in range, the best-so-far a number, the image shape whole."""
    lowest = {"epoch": 0, "batches_done": 0, "nonfinite_steps": 0, "not_improved_count": 0,
              "input_dim": 1}
    for key, low in lowest.items():
        value = checkpoint.get(key, low)
        if not low <= value <= MAX_COUNT:
            raise invalid(path, f"its '{key}' is {value} (it counts from {low})")
    best = checkpoint.get("monitor_best", 0)
    if math.isnan(best):
        raise invalid(path, "its 'monitor_best' is NaN")
    shape = checkpoint.get("image_shape")
    if shape is not None and not (
            isinstance(shape, (list, tuple)) and len(shape) == 3
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)
            and math.prod(shape) == checkpoint["input_dim"]):
        raise invalid(path, f"its image_shape {shorten(shape)} is not the (C, H, W) "
                            f"of its {checkpoint['input_dim']} input values")
    history = checkpoint.get("history", [])
    if not all(isinstance(entry, dict) for entry in history):
        raise invalid(path, "its 'history' is not a list of epoch logs")


def restore_model(model, checkpoint, path):
    """Load the checkpoint's weights into model, or say why they do not fit."""
    if checkpoint["arch"] != type(model).__name__:
        raise CheckpointError(f"{path} holds a {checkpoint['arch']}, but the config builds "
                              f"a {type(model).__name__}")
    check_finite_weights(checkpoint["state_dict"], path)
    check_shapes(model, checkpoint["state_dict"], path)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as e:
        lines = str(e).strip().splitlines()
        raise architecture_error(path, lines[1].strip() if len(lines) > 1 else lines[0]) \
            from None


def check_shapes(model, state_dict, path):
    """Every weight the checkpoint and the model both have is of the model's shape (checked
    without loading anything; keys only one of them has are load_state_dict's to judge)."""
    for key, value in model.state_dict().items():
        saved = state_dict.get(key)
        if torch.is_tensor(saved) and saved.shape != value.shape:
            raise architecture_error(path, f"size mismatch for {key}: the checkpoint's "
                                           f"{tuple(saved.shape)}, the model's "
                                           f"{tuple(value.shape)}")


def architecture_error(path, detail):
    if len(detail) > 160:
        detail = detail[:160] + "..."
    hint = ("; a checkpoint from before the separate inference and prior top-down networks "
            "needs --set arch.args.share_top_down=true") if "top_down" in detail else ""
    return CheckpointError(f"{path} does not fit the configured architecture (resume with "
                           f"the checkpoint's own config): {detail}{hint}")


def check_finite_weights(state_dict, path):
    """Every floating-point weight and buffer finite: a model with a NaN or an infinity only
    ever computes NaN, whether it is evaluated or trained on."""
    for key, value in state_dict.items():
        if torch.is_tensor(value) and value.is_floating_point() \
                and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{path} holds non-finite weights ({key} has a NaN or an "
                                  f"infinity); use an earlier checkpoint of the run "
                                  f"(checkpoint-epochK.pth, model_best.pth)")
