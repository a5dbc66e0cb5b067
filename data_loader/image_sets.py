"""Image data sets, registered by name (IMAGE_DATASETS; data_loader.args.dataset names one):
MNIST, Fashion-MNIST, Omniglot, CIFAR-10 (their files: data_loader/image_datasets.py); the
synthetic ground-truth DAG images, generated in memory (data_loader/synthetic_dag.py); a
researcher's own images, "npz" and "folder" (data_loader/own_images.py).

A data set is a function (data_dir, train) -> its train or test images, (n, H, W) or
(n, C, H, W) with C 1 or 3, uint8 or floats in [0, 1] (a tensor or an array); one that reads
a file the config names also takes path=. image_set checks what it gives (the door for every
data set, the user's included) and turns it into one uint8 tensor (n, C*H*W), channel-major.
"""
import inspect

import torch

from data_loader.data_dir import data_directory
from data_loader.image_datasets import MNIST_SIDE, load_cifar10, load_mnist_like, load_omniglot
from data_loader.synthetic_dag import SyntheticDAG
from model.registry import Registry
from utils.errors import ConfigError, DataError

IMAGE_DATASETS = Registry("image data set")


def load_images(name, data_dir, train, **options):
    """The train or test split as a (n, C*H*W) uint8 tensor."""
    return image_set(name, data_dir, train, **options)[0]


def image_set(name, data_dir, train, **options):
    """(the train or test images as a (n, C*H*W) uint8 tensor, their (C, H, W)). options
    (path=, dag=): settings only some data sets take; one given to another is one line."""
    load = IMAGE_DATASETS[name]
    takes = inspect.signature(load).parameters
    given = {key: value for key, value in options.items() if value is not None}
    for key in given.keys() - takes.keys():
        takers = [other for other in IMAGE_DATASETS.names()
                  if key in inspect.signature(IMAGE_DATASETS[other]).parameters]
        raise ConfigError(f"data set {name!r} takes no {key}: leave data_loader.args.{key} "
                          f"out, or use a data set that takes it ({', '.join(takers)})")
    images = load(data_directory(data_dir), train, **given)
    return as_pixels(images, f"data set {name!r}")


def as_pixels(images, source):
    """(images as (n, C*H*W) uint8, (C, H, W)) from (n, H, W) or (n, C, H, W) images of
    uint8, bool, or floats in [0, 1] (pixel value round(255 x)); a DataError otherwise."""
    images = torch.as_tensor(images)
    shape = tuple(images.shape)
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4 or images.shape[1] not in (1, 3) or 0 in images.shape:
        raise DataError(f"{source} gives images of shape {shape}; images are (n, H, W) or "
                        f"(n, C, H, W) with C 1 or 3, and n, H, W at least 1")
    if images.dtype == torch.bool:
        images = images.to(torch.uint8) * 255
    elif images.is_floating_point():
        values = images.float()
        if not bool(((values >= 0) & (values <= 1)).all()):  # NaN fails too
            raise DataError(f"{source} gives float images with values outside [0, 1]; give "
                            f"floats in [0, 1] or uint8 pixel values 0..255")
        images = values.mul_(255).round_().to(torch.uint8)
    elif images.dtype != torch.uint8:
        raise DataError(f"{source} gives {images.dtype} images; give uint8 pixel values "
                        f"0..255 or floats in [0, 1]")
    return images.reshape(len(images), -1).contiguous(), tuple(images.shape[1:])


@IMAGE_DATASETS.register()
def mnist(data_dir, train):
    return load_mnist_like("mnist", data_dir, train).view(-1, MNIST_SIDE, MNIST_SIDE)


@IMAGE_DATASETS.register()
def fashion_mnist(data_dir, train):
    return load_mnist_like("fashion_mnist", data_dir, train).view(-1, MNIST_SIDE, MNIST_SIDE)


@IMAGE_DATASETS.register()
def omniglot(data_dir, train):
    return load_omniglot("omniglot", data_dir, train).view(-1, MNIST_SIDE, MNIST_SIDE)


@IMAGE_DATASETS.register()
def cifar10(data_dir, train):
    return load_cifar10("cifar10", data_dir, train).view(-1, 3, 32, 32)


@IMAGE_DATASETS.register()
def synthetic_dag(data_dir, train, dag=None):
    """Generated in memory from the ground-truth DAG (data_loader.args.dag; none: the
    committed chain)."""
    spec = SyntheticDAG.of(dag)
    return spec.images(train)[0].view(-1, *spec.image_shape)
