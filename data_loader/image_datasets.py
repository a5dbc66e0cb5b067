"""Image datasets as one uint8 tensor (n, C*H*W) of 8-bit values, channel-major, loaded
offline first: grey 28x28 (MNIST, Fashion-MNIST, Omniglot) or colour 3x32x32 (CIFAR-10).

Where the files come from, in order:
  1. files already in data_dir (torchvision's layout, e.g. <data_dir>/FashionMNIST/raw/,
     <data_dir>/cifar-10-batches-py/),
  2. for Fashion-MNIST, Debian's `dataset-fashion-mnist` package: its IDX .gz files are
     decompressed into <data_dir>/FashionMNIST/raw/ (torchvision rejects their checksums as .gz),
  3. torchvision's download, for users with internet.
If all fail, a DataError says what to install or where to put the files.
"""
import gzip
import math
import shutil
from pathlib import Path

import torch

from utils.errors import DataError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


IMAGE_SHAPES = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "omniglot": (1, 28, 28),
                "cifar10": (3, 32, 32)}  # (channels, height, width) of each dataset's images


def square_image_shape(width):
    """(channels, height, width) of a flattened square grey image: 784 pixels -> (1, 28, 28)
    (for checkpoints written before they recorded their image shape)."""
    side = math.isqrt(width)
    return (1, side, side)


def load_images(name, data_dir, train):
    """The train or test split as a (n, C*H*W) uint8 tensor."""
    loaders = {"mnist": load_mnist_like, "fashion_mnist": load_mnist_like,
               "omniglot": load_omniglot, "cifar10": load_cifar10}
    if name not in loaders:
        raise DataError(f"unknown dataset '{name}' (choices: {', '.join(loaders)})")
    return loaders[name](name, Path(data_dir), train)


def load_mnist_like(name, data_dir, train):
    import torchvision
    cls = {"mnist": torchvision.datasets.MNIST,
           "fashion_mnist": torchvision.datasets.FashionMNIST}[name]
    raw = data_dir / cls.__name__ / "raw"
    if name == "fashion_mnist" and not has_idx_files(raw):
        copy_debian_fashion_mnist(raw)
    if not has_idx_files(raw):
        hint = ("install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) "
                "or " if name == "fashion_mnist" else "")
        download(lambda: cls(data_dir, train=train, download=True), name, raw,
                 f"{hint}put the IDX files ({', '.join(IDX_FILES)}) in {raw}")
    dataset = cls(data_dir, train=train, download=False)
    return dataset.data.reshape(len(dataset.data), -1).contiguous()


def has_idx_files(raw):
    return all((raw / f).is_file() for f in IDX_FILES)


def copy_debian_fashion_mnist(raw):
    """Decompress Debian's Fashion-MNIST IDX files into raw/, if the package is installed."""
    sources = [DEBIAN_FASHION_MNIST / f"{f}.gz" for f in IDX_FILES]
    if not all(s.is_file() for s in sources):
        return
    raw.mkdir(parents=True, exist_ok=True)
    for source, target in zip(sources, IDX_FILES):
        partial = raw / f".{target}.part"
        with gzip.open(source, "rb") as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst)
        partial.replace(raw / target)


def download(make_dataset, name, where, remedy):
    """make_dataset() (a torchvision download), or a one-line DataError ending in remedy."""
    try:
        make_dataset()
    except Exception as e:  # network errors come in many types; all mean the same here
        raise DataError(f"{name} files not found in {where} and the download failed "
                        f"({type(e).__name__}); {remedy}") from None


def load_cifar10(name, data_dir, train):
    """CIFAR-10 through torchvision, which checks every file's MD5 sum before it reads any
    (the batches are Python pickles: only the published files are opened)."""
    import torchvision
    where = data_dir / torchvision.datasets.CIFAR10.base_folder
    try:
        dataset = torchvision.datasets.CIFAR10(data_dir, train=train, download=False)
    except RuntimeError:  # missing, or failed the integrity check
        download(lambda: torchvision.datasets.CIFAR10(data_dir, train=train, download=True),
                 name, where, f"download {torchvision.datasets.CIFAR10.url} and extract it in "
                 f"{data_dir} (it unpacks to {where}/)")
        dataset = torchvision.datasets.CIFAR10(data_dir, train=train, download=False)
    return channels_first(torch.from_numpy(dataset.data))


def channels_first(images):
    """(n, H, W, C) images (torchvision's CIFAR layout) as (n, C*H*W) rows, channel-major:
    the layout of (C, H, W) image tensors."""
    return images.permute(0, 3, 1, 2).reshape(len(images), -1).contiguous()


def load_omniglot(name, data_dir, train):
    """Omniglot resized to 28x28, strokes as intensity 1.

    Split (choice): torchvision's `background` set (964 characters) is the training set and
    its `evaluation` set (659 characters) the test set. Resized once and cached as a tensor.
    """
    cache = data_dir / f"omniglot28_{'train' if train else 'test'}.pt"
    if cache.is_file():
        return torch.load(cache, weights_only=True)
    import torchvision
    import torchvision.transforms.functional as TF
    root = data_dir / "omniglot-py"
    try:
        dataset = torchvision.datasets.Omniglot(data_dir, background=train, download=False)
    except RuntimeError:
        download(lambda: torchvision.datasets.Omniglot(data_dir, background=train,
                                                       download=True), name, root,
                 f"put torchvision's Omniglot folders (images_background/, "
                 f"images_evaluation/) in {root}")
        dataset = torchvision.datasets.Omniglot(data_dir, background=train, download=False)
    images = []
    for image, _ in dataset:
        small = TF.resize(TF.pil_to_tensor(image.convert("L")), [28, 28], antialias=True)
        images.append(255 - small.reshape(-1))  # paper-style: ink is 1, background 0
    images = torch.stack(images).to(torch.uint8)
    torch.save(images, cache)
    return images
