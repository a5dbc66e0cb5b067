"""Saving and loading checkpoints safely.

Saving is atomic (utils.files.atomic_write): the checkpoint is written to a temporary file in
the same directory, flushed to disk (fsync), then renamed over the target, so a crash at any
moment leaves either the old file or the new one, never a torn one.

Loading uses torch.load(weights_only=True): a checkpoint holds tensors and plain data only
(the config is a dict), so a shared checkpoint can never execute code when it is opened.
"""
import pickle
import re
import zipfile
from pathlib import Path

import torch

from utils.errors import CheckpointError
from utils.files import atomic_write

REQUIRED_KEYS = ("arch", "epoch", "state_dict", "config", "input_dim")


def atomic_save(obj, path):
    """torch.save(obj, path) so that path is always either the old or the complete new file."""
    with atomic_write(path) as f:
        torch.save(obj, f)


def load_checkpoint(path):
    """The checkpoint at path as plain data on the CPU, or a one-line CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):  # torch.save writes zip archives; anything else is not one
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or another kind "
                              f"of file); resume from an intact checkpoint-*.pth")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: (\S+ \S+)", str(e))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(f"{path} holds objects other than tensors and plain data{what}; "
                              f"it was not loaded, since loading it could run code") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or another "
                              f"kind of file: {type(e).__name__}); resume from an intact "
                              f"checkpoint-*.pth") from None
    if not isinstance(checkpoint, dict) or not all(k in checkpoint for k in REQUIRED_KEYS):
        raise CheckpointError(f"{path} is not a graphvae checkpoint (missing "
                              f"{', '.join(REQUIRED_KEYS)})")
    return checkpoint


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
        raise CheckpointError(f"{path} does not fit the configured architecture (resume with "
                              f"the checkpoint's own config): {detail}") from None
