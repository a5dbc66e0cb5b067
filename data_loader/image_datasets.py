"""The files of the built-in image data sets (registered in data_loader/image_sets.py), read
offline first: grey 28x28 (MNIST, Fashion-MNIST, Omniglot) or colour 3x32x32 (CIFAR-10), each
as uint8 rows of 8-bit values.

Where the files come from, in order:
  1. files already in data_dir (torchvision's layout, e.g. <data_dir>/FashionMNIST/raw/,
     <data_dir>/cifar-10-batches-py/, Omniglot's extracted PNG folders in
     <data_dir>/omniglot-py/images_background/ and images_evaluation/),
  2. for Fashion-MNIST, Debian's `dataset-fashion-mnist` package: its IDX .gz files are
     decompressed into <data_dir>/FashionMNIST/raw/ (torchvision rejects their checksums as .gz),
  3. torchvision's download, for users with internet.
If all fail, a DataError says what to install or where to put the files. The decompressed IDX
files and Omniglot's resized tensors are caches (data_loader/cache.py: written whole, and
built again if found broken); every image file is checked when it is read (IDX header,
dimensions, size), and one that is not whole and cannot be rebuilt is named with the fix.
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
IDX_IMAGES = b"\x00\x00\x08\x03"  # magic: unsigned bytes, 3 dimensions (n, rows, columns)
FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}  # torchvision's layout
OMNIGLOT_FOLDERS = {True: "images_background", False: "images_evaluation"}  # train, test
MAX_IMAGE_BYTES = 8 * 2**30  # an images file is read whole (MNIST's training images: 47 MB)
MNIST_SIDE = 28


def square_image_shape(width):
    """(channels, height, width) of a flattened square grey image: 784 pixels -> (1, 28, 28)
    (for checkpoints written before they recorded their image shape)."""
    side = math.isqrt(width)
    return (1, side, side)


def load_mnist_like(name, data_dir, train):
    raw = data_dir / FOLDERS[name] / "raw"
    debian = [DEBIAN_FASHION_MNIST / f"{f}.gz" for f in IDX_FILES]
    if name == "fashion_mnist" and all(source.is_file() for source in debian):
        for source, target in zip(debian, IDX_FILES):
            cached(raw / target, check_idx, functools.partial(gunzip, source))
    elif not all((raw / f).is_file() for f in IDX_FILES):
        def torchvision_download():
            import torchvision
            getattr(torchvision.datasets, FOLDERS[name])(data_dir, train=train, download=True)
        hint = ("install Debian's dataset-fashion-mnist (apt-get install "
                "dataset-fashion-mnist) or " if name == "fashion_mnist" else "")
        download(torchvision_download, name, raw,
                 f"{hint}put the IDX files ({', '.join(IDX_FILES)}) in {raw}")
    return read_idx_images(raw / IDX_FILES[0 if train else 2], (MNIST_SIDE, MNIST_SIDE))


def read_idx_images(path, shape):
    """The images of an IDX file as a (n, rows * columns) uint8 tensor, its header checked
    (and its size, before the file is read) and its images of shape (rows, columns): a file
    of other images would train a model that nothing else can draw or evaluate."""
    fix = ("delete it (it is then restored from Debian's dataset package or downloaded) or "
           "replace it with the original file")
    with open(path, "rb") as f:
        header = f.read(16)
    if header[:4] != IDX_IMAGES:
        raise DataError(f"{path} is not an IDX image file (it should start with bytes "
                        f"00 00 08 03); {fix}")
    try:
        check_idx(path)
    except BrokenCache as e:
        raise DataError(f"{path} is not an IDX image file ({e}: truncated or damaged); "
                        f"{fix}") from None
    n, rows, columns = struct.unpack(">3I", header[4:16])
    if n == 0 or (rows, columns) != tuple(shape):
        raise DataError(f"{path} holds {n} images of {rows} x {columns}, not the "
                        f"{shape[0]} x {shape[1]} images of this data set; {fix}")
    if n * rows * columns > MAX_IMAGE_BYTES:
        raise DataError(f"{path} holds {n:,} images ({n * rows * columns / 2**30:.0f} GiB), "
                        f"more than the {MAX_IMAGE_BYTES // 2**30} GiB graphvae loads; {fix}")
    data = path.read_bytes()
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=16).view(n, rows * columns)


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
    """Omniglot's PNGs, read straight from its extracted folders
    <data_dir>/omniglot-py/images_{background,evaluation}/<alphabet>/<character>/*.png in
    sorted order, so a user's folders load offline (torchvision's own Omniglot class
    requires the downloaded zip and its MD5 sum), resized to 28x28 with ink as 255."""
    import torchvision
    folder = data_dir / "omniglot-py" / OMNIGLOT_FOLDERS[train]
    if not folder.is_dir():
        download(lambda: torchvision.datasets.Omniglot(data_dir, background=train,
                                                       download=True), name, folder,
                 f"put Omniglot's extracted folders (images_background/, images_evaluation/, "
                 f"each <alphabet>/<character>/*.png) in {folder.parent}")
    paths = sorted(folder.glob("*/*/*.png"))
    if not paths:
        raise DataError(f"{folder} holds no <alphabet>/<character>/*.png images; put "
                        f"Omniglot's extracted {folder.name}/ folder there")
    return torch.stack([omniglot_image(path) for path in paths])


def omniglot_image(path):
    """One Omniglot PNG as 28 * 28 bytes, ink 255 and background 0 (the files draw ink
    black on white)."""
    import torchvision.transforms.functional as TF
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as image:
            grey = TF.pil_to_tensor(image.convert("L"))
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DataError(f"{path} is not a readable PNG image ({type(e).__name__}); replace it "
                        f"with Omniglot's original file") from None
    small = TF.resize(grey, [28, 28], antialias=True)
    return (255 - small.reshape(-1)).to(torch.uint8)
