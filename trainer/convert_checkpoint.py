"""Convert a checkpoint of an earlier graphvae (a .pth: torch.save's zip archive) to the
safetensors format this version reads:

    python -m trainer.convert_checkpoint old/checkpoint-latest.pth [new.safetensors]

A one-off command for a file you trust: the archive is read with torch.load(weights_only=True),
which builds tensors and plain data only, and the new file is checked like any checkpoint
before it is written (the default: beside the old one, .safetensors).
"""
import argparse
import io
import math
import sys
from pathlib import Path

import torch

from trainer.checkpoint import FORMAT, decode, encode
from trainer.checkpoint_schema import check_state
from utils.errors import CheckpointError, run_cli
from utils.files import write_file

TRAILER = len(b"graphvae-sha256:") + 32  # the digest earlier versions appended


def converted(old):
    """The state this version saves, from an earlier version's checkpoint dict."""
    state = dict(old)
    state["model"] = state.pop("state_dict")
    best = state.get("monitor_best")
    state["monitor_best"] = best if isinstance(best, (int, float)) and math.isfinite(best) \
        else None
    for key, default in (("batches_done", 0), ("nonfinite_steps", 0), ("not_improved_count", 0),
                         ("history", []), ("partial_sums", None), ("lr_scheduler", None),
                         ("structure_optimizer", None), ("image_shape", None), ("rng", [])):
        state.setdefault(key, default)
    if isinstance(state["rng"], dict):
        state["rng"] = [state["rng"]]
    return state


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", help="the .pth checkpoint of an earlier graphvae")
    parser.add_argument("new", nargs="?", help="where to write (default: beside it)")
    args = parser.parse_args(argv)
    old, new = Path(args.old), Path(args.new or Path(args.old).with_suffix(".safetensors"))
    data = old.read_bytes() if old.is_file() else None
    if data is None:
        raise CheckpointError(f"checkpoint not found: {old}")
    archive = data[:-TRAILER] if data[-TRAILER:-32] == b"graphvae-sha256:" else data
    try:
        state = converted(torch.load(io.BytesIO(archive), map_location="cpu", weights_only=True))
    except Exception as e:  # whatever a file that is not an earlier checkpoint makes it raise
        raise CheckpointError(f"{old} is not a checkpoint of an earlier graphvae "
                              f"({type(e).__name__}); nothing was written") from None
    encoded = encode(state)
    check_state(decode(encoded, new), new)
    write_file(new, encoded)
    print(f"{old} -> {new} ({FORMAT})")


if __name__ == "__main__":
    sys.exit(run_cli(main))
