"""Convert a strokes.npy you trust into the pickle-free .npz that StrokesDataLoader reads:

    python -m data_loader.convert_strokes strokes.npy strokes.npz

A strokes.npy (the IAM-OnDB preprocessing of many handwriting-RNN projects) is an object array
of (T, 3) arrays (pen_lift, dx, dy); reading it unpickles it, and unpickling can run code
stored in the file. This command is the project's one reader of pickles: run it only on a file
you trust. The .npz it writes (all steps concatenated, plus each sequence's length) is plain
data; set data_loader.args.source to it.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from data_loader.sequence_datasets import STROKE_WIDTH, check_sequences, save_sequences
from utils.cli import run_cli
from utils.errors import DataError


def convert(source, target):
    """Write the sequences of the object array in source (trusted) to target; their number."""
    try:
        strokes = np.load(source, allow_pickle=True, encoding="latin1")
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"cannot read {source} as a NumPy array: {e}") from None
    sequences = []
    for k, stroke in enumerate(strokes):
        try:
            steps = np.asarray(stroke, dtype=np.float32)
        except (TypeError, ValueError):
            steps = None
        if steps is None or steps.ndim != 2 or steps.shape[1] != STROKE_WIDTH or not len(steps):
            raise DataError(f"{source}: sequence {k} is not a (T, {STROKE_WIDTH}) array of "
                            f"numbers with T >= 1")
        sequences.append(steps)
    if not sequences:
        raise DataError(f"{source} holds no sequences")
    check_sequences(source, np.concatenate(sequences), np.array([len(s) for s in sequences]),
                    STROKE_WIDTH, "fix that sequence first")
    save_sequences(target, sequences, fix="choose a writable output path")
    return len(sequences)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="the strokes.npy (object array) to convert")
    parser.add_argument("target", type=Path, help="the .npz to write")
    args = parser.parse_args(argv)
    if args.target.suffix != ".npz":
        raise DataError(f"the output must end in .npz, got {args.target}")
    n = convert(args.source, args.target)
    print(f"{n} sequences written to {args.target}; use it with "
          f"--set data_loader.args.source={args.target}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
