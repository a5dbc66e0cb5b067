"""Image data sets as batches of binary or dequantised 8-bit pixels, made where the images
live (a GPU's memory when training there)."""
from typing import Literal

import torch

from data_loader import own_images
from data_loader.base_data_loader import BaseDataLoader
from data_loader.image_sets import IMAGE_DATASETS, image_set
from data_loader.synthetic_dag import SyntheticDAG
from model.registry import one_of
from utils.config import Count, SplitSeed
from utils.settings import FilePath


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
