"""Saving and loading checkpoints safely.

A checkpoint file is torch.save's zip archive followed by a 48-byte trailer: a marker and the
SHA-256 of the archive. Loading checks the digest first, so a flipped byte anywhere in the
file is reported in one line instead of being loaded; the archive itself is then read with
torch.load(weights_only=True): a checkpoint holds tensors and plain data only (the config is a
dict), so a shared checkpoint can never execute code when it is opened. (torch.load reads
the file directly too: zip readers ignore the trailer.) Files written before the trailer
existed have no digest; they are loaded the same way, without that check.

Saving is atomic (utils/files.atomic_write): the bytes go to a temporary file in the same
directory, are flushed to disk (fsync) and read back and compared, and only then is the file
renamed over the target, so a crash or a full disk at any moment leaves either the old file or
the new one, never a torn one.
"""
import hashlib
import io
import os
import pickle
import re
from pathlib import Path

import torch

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


def encode(state):
    """The bytes of a checkpoint file holding state: torch.save's archive, then its digest."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    archive = buffer.getvalue()
    return archive + MARKER + hashlib.sha256(archive).digest()


def verified_archive(data, path):
    """The torch archive inside a checkpoint file's bytes, once its digest matches."""
    if data[-TRAILER:-32] == MARKER:
        archive = memoryview(data)[:-TRAILER]
        if hashlib.sha256(archive).digest() != data[-32:]:
            raise CheckpointError(f"{path} is damaged: its contents do not match the SHA-256 "
                                  f"saved with them (bytes changed on disk or in a copy); use "
                                  f"another checkpoint of the run (checkpoint-epochK.pth, "
                                  f"model_best.pth) or copy it again")
        return archive
    if data[-22:-18] == ZIP_END:  # written before checkpoints carried a digest
        return memoryview(data)
    raise CheckpointError(f"{path} " + UNREADABLE.format(""))


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


def load_checkpoint(path):
    """The checkpoint at path as plain data on the CPU, or a one-line CheckpointError."""
    path = Path(path)
    if not path.is_file():
        several = int(os.environ.get("WORLD_SIZE", "1")) > 1  # under torchrun
        raise CheckpointError(f"checkpoint not found: {path}" + (
            f" on this machine (rank {os.environ.get('RANK', '?')}): every process reads it, "
            f"so it must be at this path on every machine (a shared file system, or a copy)"
            if several else ""))
    try:
        archive = verified_archive(path.read_bytes(), path)
        checkpoint = torch.load(io.BytesIO(archive), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: (\S+ \S+)", str(e))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(f"{path} holds objects other than tensors and plain data{what}; "
                              f"it was not loaded, since loading it could run code") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} " + UNREADABLE.format(f": {type(e).__name__}")) from None
    check_fields(checkpoint, path)
    return checkpoint


def check_fields(checkpoint, path):
    if not isinstance(checkpoint, dict) or not all(k in checkpoint for k in REQUIRED_KEYS):
        raise CheckpointError(f"{path} is not a graphvae checkpoint (missing "
                              f"{', '.join(REQUIRED_KEYS)})")
    for key, types in FIELD_TYPES.items():
        value = checkpoint.get(key)
        if key in checkpoint and (isinstance(value, bool) or not isinstance(value, types)):
            raise CheckpointError(f"{path} is not a valid checkpoint: its '{key}' is a "
                                  f"{type(value).__name__}; use another checkpoint")


def restore_model(model, checkpoint, path):
    """Load the checkpoint's weights into model, or say why they do not fit."""
    if checkpoint["arch"] != type(model).__name__:
        raise CheckpointError(f"{path} holds a {checkpoint['arch']}, but the config builds "
                              f"a {type(model).__name__}")
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as e:
        lines = str(e).strip().splitlines()
        detail = lines[1].strip() if len(lines) > 1 else lines[0]
        if len(detail) > 160:
            detail = detail[:160] + "..."
        hint = ("; a checkpoint from before the separate inference and prior top-down networks "
                "needs --set arch.args.share_top_down=true") if "top_down" in detail else ""
        raise CheckpointError(f"{path} does not fit the configured architecture (resume with "
                              f"the checkpoint's own config): {detail}{hint}") from None
