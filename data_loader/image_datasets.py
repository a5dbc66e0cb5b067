"""Grey-scale image datasets as one uint8 tensor (n, 28*28) of intensities, loaded offline first.

Where the files come from, in order:
  1. files already in data_dir (torchvision's layout, e.g. <data_dir>/FashionMNIST/raw/),
  2. for Fashion-MNIST, Debian's `dataset-fashion-mnist` package: its IDX .gz files are
     decompressed into <data_dir>/FashionMNIST/raw/ (torchvision rejects their checksums as .gz),
  3. torchvision's download, for users with internet.
If all fail, a DataError says what to install or where to put the files. Every image file is
checked when it is read (IDX header, dimensions, size): a damaged one is named with the fix.
"""
import gzip
import math
import shutil
import struct
from pathlib import Path

import torch

from data_loader.files import data_directory, writing_data
from utils.errors import DataError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
IDX_IMAGES = b"\x00\x00\x08\x03"  # magic: unsigned bytes, 3 dimensions (n, rows, columns)
FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}  # torchvision's layout


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
    return loaders[name](name, data_directory(data_dir), train)


def load_mnist_like(name, data_dir, train):
    raw = data_dir / FOLDERS[name] / "raw"
    if name == "fashion_mnist" and not has_idx_files(raw):
        copy_debian_fashion_mnist(raw)
    if not has_idx_files(raw):
        def torchvision_download():
            import torchvision
            dataset = getattr(torchvision.datasets, FOLDERS[name])
            dataset(data_dir, train=train, download=True)
        download(torchvision_download, name, raw)
    return read_idx_images(raw / IDX_FILES[0 if train else 2])


def read_idx_images(path):
    """The images of an IDX file as a (n, rows * columns) uint8 tensor, its header checked."""
    data = path.read_bytes()
    fix = (f"delete it (it is then restored from Debian's dataset package or downloaded) or "
           f"replace it with the original file")
    if len(data) < 16 or data[:4] != IDX_IMAGES:
        raise DataError(f"{path} is not an IDX image file (it should start with bytes "
                        f"00 00 08 03); {fix}")
    n, rows, columns = struct.unpack(">3I", data[4:16])
    if n == 0 or rows == 0 or rows != columns or len(data) != 16 + n * rows * columns:
        raise DataError(f"{path} has {len(data) - 16} bytes of images, but its header says "
                        f"{n} square images of {rows} x {columns} (truncated or damaged); {fix}")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=16).view(n, rows * columns)


def has_idx_files(raw):
    return all((raw / f).is_file() for f in IDX_FILES)


def copy_debian_fashion_mnist(raw):
    """Decompress Debian's Fashion-MNIST IDX files into raw/, if the package is installed."""
    sources = [DEBIAN_FASHION_MNIST / f"{f}.gz" for f in IDX_FILES]
    if not all(s.is_file() for s in sources):
        return
    with writing_data(raw):
        raw.mkdir(parents=True, exist_ok=True)
        for source, target in zip(sources, IDX_FILES):
            partial = raw / f".{target}.part"
            with gzip.open(source, "rb") as src, open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst)
            partial.replace(raw / target)


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
    if cache.is_file():
        return load_omniglot_cache(cache)
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
    images = torch.stack(images).to(torch.uint8)
    with writing_data(cache):
        torch.save(images, cache)
    return images


def load_omniglot_cache(cache):
    try:
        images = torch.load(cache, weights_only=True)
    except Exception as e:  # any failure to read it means the same: rebuild it
        raise DataError(f"{cache} is not a readable image cache ({type(e).__name__}); delete "
                        f"it to rebuild it") from None
    if not (torch.is_tensor(images) and images.dtype == torch.uint8 and images.dim() == 2
            and images.shape[1] == 28 * 28 and len(images)):
        raise DataError(f"{cache} does not hold 28 x 28 uint8 images; delete it to rebuild it")
    return images
