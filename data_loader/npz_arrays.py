"""The headers of the arrays in an .npz file (sequences, images), checked before any array is read.

np.load allocates what an array's header declares: a header that says (1e11, 3) takes
terabytes before a byte of data is read. Every array is checked first: pickle-free (an object
array is a pickle, which is never loaded), and its declared size within what the file holds
and within MAX_BYTES.
"""
import math
import zipfile

import numpy as np

MAX_BYTES = 8 * 2**30  # far above any sequence data set (the strokes of IAM-OnDB: 30 MB)
PICKLED = ("is not a pickle-free NumPy file (pickles are never loaded: that could run "
           "code)")


def check_npz(path, names, fix, error, kind="a sequences"):
    """path is an .npz (of `kind`) holding the arrays `names`, each pickle-free and of a size
    that the file holds and memory can take; otherwise error (a DataError class) naming path
    and fix."""
    not_npz = error(f"{path} is not {kind} .npz with {' and '.join(map(repr, names))} "
                    f"arrays; {fix}")
    try:
        if not zipfile.is_zipfile(path):
            with open(path, "rb") as f:
                check_header(path, "array", f, path.stat().st_size, fix, error)
            raise not_npz  # a plain .npy, pickle-free: not the file sequences come in
        with zipfile.ZipFile(path) as archive:
            for name in names:
                info = archive.getinfo(f"{name}.npy")
                with archive.open(info) as f:
                    check_header(path, name, f, info.file_size, fix, error)
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile):
        raise not_npz from None


def check_header(path, name, f, size, fix, error):
    """The .npy header at the start of f (a file of size bytes) declares a pickle-free array
    that fits in the file and in MAX_BYTES."""
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) \
        else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(f)
    if dtype.hasobject:
        raise error(f"{path} {PICKLED}; {fix}")
    declared = math.prod(shape) * dtype.itemsize
    held = size - f.tell()
    if declared > held or declared > MAX_BYTES:
        raise error(f"{path}: the header of '{name}' declares a {dtype} array of shape "
                    f"{shape} ({declared:,} bytes), "
                    + (f"but the file holds {held:,}: truncated or damaged" if declared > held
                       else f"more than the {MAX_BYTES // 2**30} GiB graphvae loads")
                    + f"; {fix}")
