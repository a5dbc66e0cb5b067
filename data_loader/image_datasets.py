"""Grey-scale image datasets as one uint8 tensor (n, 28*28) of intensities, loaded offline first.

Where the files come from, in order:
  1. files already in data_dir (torchvision's layout, e.g. <data_dir>/FashionMNIST/raw/),
  2. for Fashion-MNIST, Debian's `dataset-fashion-mnist` package: its IDX .gz files are
     decompressed into <data_dir>/FashionMNIST/raw/ (torchvision rejects their checksums as .gz),
  3. torchvision's download, for users with internet.
If all fail, a DataError says what to install or where to put the files. The decompressed IDX
files and Omniglot's resized tensors are caches (data_loader/cache.py: written whole, and
built again if found broken); an IDX file that is not whole and cannot be rebuilt is named.
"""
import functools
import gzip
import math
import pickle
import shutil
import struct
from pathlib import Path

import torch

from data_loader.cache import BrokenCache, cached
from utils.errors import DataError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def square_image_shape(width):
    """(channels, height, width) of a flattened square grey image: 784 pixels -> (1, 28, 28)."""
    side = math.isqrt(width)
    return (1, side, side)


def load_images(name, data_dir, train):
    """Intensities of the train (60k-style) or test split as a (n, 784) uint8 tensor."""
    loaders = {"mnist": load_mnist_like, "fashion_mnist": load_mnist_like,
               "omniglot": load_omniglot}
    if name not in loaders:
        raise DataError(f"unknown dataset '{name}' (choices: {', '.join(loaders)})")
    return loaders[name](name, Path(data_dir), train)


def load_mnist_like(name, data_dir, train):
    import torchvision
    cls = {"mnist": torchvision.datasets.MNIST,
           "fashion_mnist": torchvision.datasets.FashionMNIST}[name]
    raw = data_dir / cls.__name__ / "raw"
    debian = [DEBIAN_FASHION_MNIST / f"{f}.gz" for f in IDX_FILES]
    if name == "fashion_mnist" and all(source.is_file() for source in debian):
        for source, target in zip(debian, IDX_FILES):
            cached(raw / target, check_idx, functools.partial(gunzip, source))
    else:
        if not all((raw / f).is_file() for f in IDX_FILES):
            download(lambda: cls(data_dir, train=train, download=True), name, raw)
        for f in IDX_FILES:
            try:
                check_idx(raw / f)
            except BrokenCache as e:
                raise DataError(f"{raw / f} is not a whole IDX file ({e}); delete it to download "
                                f"it again, or put an intact copy there") from None
    dataset = cls(data_dir, train=train, download=False)
    return dataset.data.reshape(len(dataset.data), -1).contiguous()


def gunzip(source, file):
    with gzip.open(source, "rb") as src:
        shutil.copyfileobj(src, file)


def check_idx(path):
    """path, if it is a whole IDX file of bytes: as long as its header's dimensions say."""
    with open(path, "rb") as f:
        magic = f.read(4)
        ndim = magic[3] if len(magic) == 4 and magic[:3] == b"\0\0\x08" else 0
        dims = f.read(4 * ndim)
    if ndim == 0 or len(dims) < 4 * ndim:
        raise BrokenCache("no whole IDX header of unsigned bytes")
    expected = 4 + 4 * ndim + math.prod(struct.unpack(f">{ndim}I", dims))
    size = path.stat().st_size
    if size != expected:
        raise BrokenCache(f"{size} bytes, its header says {expected}")
    return path


def download(make_dataset, name, raw):
    try:
        make_dataset()
    except Exception as e:  # network errors come in many types; all mean the same here
        hint = ("install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or "
                if name == "fashion_mnist" else "")
        raise DataError(f"{name} files not found in {raw} and the download failed "
                        f"({type(e).__name__}); {hint}put the IDX files "
                        f"({', '.join(IDX_FILES)}) in {raw}") from None


def load_omniglot(name, data_dir, train):
    """Omniglot resized to 28x28, strokes as intensity 1.

    Split (choice): torchvision's `background` set (964 characters) is the training set and
    its `evaluation` set (659 characters) the test set. Resized once and cached as a tensor.
    """
    cache = data_dir / f"omniglot28_{'train' if train else 'test'}.pt"
    return cached(cache, load_image_cache,
                  lambda f: torch.save(resized_omniglot(name, data_dir, train), f))


def load_image_cache(path):
    """The (n, 784) uint8 images saved at path, or BrokenCache if it is not whole."""
    try:
        images = torch.load(path, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as e:
        raise BrokenCache(f"{type(e).__name__}") from None
    if not (isinstance(images, torch.Tensor) and images.dtype == torch.uint8
            and images.ndim == 2 and images.shape[1] == 28 * 28):
        raise BrokenCache("not a (n, 784) tensor of bytes")
    return images


def resized_omniglot(name, data_dir, train):
    import torchvision
    import torchvision.transforms.functional as TF
    root = data_dir / "omniglot-py"
    try:
        dataset = torchvision.datasets.Omniglot(data_dir, background=train, download=False)
    except RuntimeError:
        download(lambda: torchvision.datasets.Omniglot(data_dir, background=train,
                                                       download=True), name, root)
        dataset = torchvision.datasets.Omniglot(data_dir, background=train, download=False)
    images = []
    for image, _ in dataset:
        small = TF.resize(TF.pil_to_tensor(image.convert("L")), [28, 28], antialias=True)
        images.append(255 - small.reshape(-1))  # paper-style: ink is 1, background 0
    return torch.stack(images).to(torch.uint8)
