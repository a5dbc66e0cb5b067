"""Convert a strokes.npy into the pickle-free .npz that StrokesDataLoader reads:

    python -m data_loader.convert_strokes strokes.npy strokes.npz

A strokes.npy (the IAM-OnDB preprocessing of many handwriting-RNN projects) is an object array
of (T, 3) arrays (pen_lift, dx, dy), stored as a pickle. np.load(allow_pickle=True) would let
the file call any function it names; this command reads the pickle with an unpickler that can
build NumPy arrays and nothing else (the pickle module's "restricting globals"), so a file
that names anything else is refused with one line and no code from it runs. The .npz it
writes (all steps concatenated, plus each sequence's length) is plain data; set
data_loader.args.source to it. It is the project's one reader of pickles, and the loaders
never call it.
"""
import codecs
import pickle
import sys
from pathlib import Path

import numpy as np
from numpy._core.multiarray import _reconstruct  # what NumPy's pickles of arrays call

from data_loader.sequence_datasets import (PEN_LIFT, STROKE_WIDTH, check_sequences,
                                           save_sequences)
from utils.errors import DataError, run_cli
from utils.help_format import parser as help_parser


def latin1_bytes(text, encoding):
    """What protocol-2 pickles of arrays call to turn their data back into bytes, limited to
    the one codec they name (codecs.encode would look up any codec the file named)."""
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"it asks for the {encoding!r} codec, not latin1; "
                                     f"nothing in it was run")
    return codecs.encode(text, "latin1")


# Everything a pickled object array of float arrays names: the array and dtype constructors,
# and (in Python 3's protocol-2 pickles) the codec that turns its data back into bytes.
ARRAY_GLOBALS = {("numpy._core.multiarray", "_reconstruct"): _reconstruct,
                 ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # NumPy < 2's name
                 ("numpy", "ndarray"): np.ndarray,
                 ("numpy", "dtype"): np.dtype,
                 ("_codecs", "encode"): latin1_bytes}


class ArrayUnpickler(pickle.Unpickler):
    """Builds NumPy arrays and nothing else: any other global the file names is refused
    before it is looked up, so the file cannot call anything."""

    def find_class(self, module, name):
        try:
            return ARRAY_GLOBALS[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"it names {module}.{name}, not a NumPy array; "
                                         f"nothing in it was run") from None


def read_object_array(source):
    """The object array a strokes.npy holds, read without running anything from the file."""
    with open(source, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(f)
        if dtype != np.dtype(object):
            raise DataError(f"{source} holds a {dtype} array of shape {shape}, not the object "
                            f"array of (T, 3) sequences a strokes.npy is")
        return ArrayUnpickler(f, encoding="latin1").load()


def convert(source, target):
    """Write the sequences of the object array in source to target; their number."""
    try:
        strokes = read_object_array(source)
    except (OSError, ValueError, EOFError, TypeError, AttributeError, IndexError, MemoryError,
            pickle.UnpicklingError) as e:  # a damaged pickle can raise any of these
        raise DataError(f"cannot read {source} as an object array of NumPy arrays: {e}") from None
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
                    STROKE_WIDTH, "fix that sequence first", flags=PEN_LIFT)
    save_sequences(target, sequences, fix="choose a writable output path")
    return len(sequences)


def main(argv=None):
    parser = help_parser(__doc__)
    parser.add_argument("source", type=Path,
                        help="the strokes.npy to convert: an object array of (T, 3) arrays "
                             "(pen_lift, dx, dy)")
    parser.add_argument("target", type=Path,
                        help="the .npz to write (then: --set data_loader.args.source=TARGET)")
    args = parser.parse_args(argv)
    if args.target.suffix != ".npz":
        raise DataError(f"the output must end in .npz, got {args.target}")
    n = convert(args.source, args.target)
    print(f"{n} sequences written to {args.target}; use it with "
          f"--set data_loader.args.source={args.target}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
