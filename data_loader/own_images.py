"""A researcher's own images as data sets, read from data_loader.args.path:

  npz     an .npz file: `x`, the images, (n, H, W) grey, (n, H, W, C) or (n, C, H, W) with C
          1 or 3, uint8 (0..255) or floats in [0, 1]; optional `y`, one label per image
          (checked, kept for the user's own analysis: no model reads labels). Every array's
          header is checked before it is read (data_loader/npz_arrays.py): no pickle, no
          size beyond what the file holds.
  folder  every .png, .jpg and .jpeg file under a folder (subfolders included), in sorted
          order, decoded by torchvision.io; all of one size; grey when every file is grey,
          else RGB.

Neither has a test set of its own: a fixed tenth of the images (a permutation drawn from
TEST_SEED, the same for every run, so that test results are paired) is the test set, the rest
the training set, from which validation_size images are the validation set as for every data
set. What the images are is then checked as every data set's (data_loader/image_sets.py).
"""
from pathlib import Path

import numpy as np
import torch

from data_loader.image_sets import IMAGE_DATASETS
from data_loader.npz_arrays import check_npz
from utils.errors import DataError

TEST_SEED = 0
TEST_SHARE = 10  # one image in TEST_SHARE is a test image
SUFFIXES = (".png", ".jpg", ".jpeg")
NPZ_FIX = "give an .npz with an 'x' array of images (data_loader.args.path)"


def name_of(path, dataset):
    """What a run on the user's file is named after: the file's or folder's name."""
    name = Path(path).stem
    return name if name and name.isprintable() and not name.startswith(("~", ".")) else dataset


def held_out(images, train, path):
    """The training images or the test tenth of the user's images."""
    if len(images) < 2:
        raise DataError(f"{path} holds {len(images)} image(s); a data set needs at least 2 "
                        f"(a tenth of them, at least one, is the test set)")
    n_test = max(1, len(images) // TEST_SHARE)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(TEST_SEED))
    return images[order[n_test:] if train else order[:n_test]]


def existing(path, kind):
    if path is None:
        raise DataError(f"data set {kind!r} reads your images from data_loader.args.path; "
                        f"set it (--set data_loader.args.path=...)")
    path = Path(path)
    if not (path.is_dir() if kind == "folder" else path.is_file()):
        raise DataError(f"data_loader.args.path {path} is not a "
                        f"{'folder' if kind == 'folder' else 'file'}")
    return path


@IMAGE_DATASETS.register()
def npz(data_dir, train, path=None):
    path = existing(path, "npz")
    check_npz(path, ("x",), NPZ_FIX, DataError, kind="an images")
    with np.load(path, allow_pickle=False) as arrays:
        x = arrays["x"]
        if "y" in arrays.files:
            check_npz(path, ("y",), NPZ_FIX, DataError, kind="an images")
            y = arrays["y"]
            if y.ndim != 1 or len(y) != len(x):
                raise DataError(f"{path}: 'y' must hold one label per image ({len(x)}), got "
                                f"shape {y.shape}; {NPZ_FIX}")
    if x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = np.moveaxis(x, -1, 1)  # channels last, as NumPy and PIL keep images
    if x.dtype.kind not in "uifb":
        raise DataError(f"{path}: 'x' holds {x.dtype} values; {NPZ_FIX}")
    return held_out(torch.from_numpy(np.ascontiguousarray(x)), train, path)


@IMAGE_DATASETS.register()
def folder(data_dir, train, path=None):
    from torchvision.io import ImageReadMode, decode_image, read_file
    path = existing(path, "folder")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{path} holds no {', '.join(SUFFIXES)} images")
    images = []
    for file in files:
        try:
            image = decode_image(read_file(str(file)), mode=ImageReadMode.RGB)
        except (RuntimeError, ValueError, OSError) as e:
            raise DataError(f"{file} is not a readable image ({type(e).__name__}); replace or "
                            f"remove it") from None
        if images and image.shape != images[0].shape:
            raise DataError(f"{file} is {image.shape[2]}x{image.shape[1]}, {files[0]} "
                            f"{images[0].shape[2]}x{images[0].shape[1]}: the images of a data "
                            f"set have one size; resize them")
        images.append(image)
    images = torch.stack(images)
    if torch.equal(images[:, :1].expand_as(images), images):  # every file grey
        images = images[:, :1]
    return held_out(images, train, path)
