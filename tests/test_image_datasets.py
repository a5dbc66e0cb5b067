"""Every image data set the README offers, read from small files of its real on-disk format
written here: MNIST and Fashion-MNIST IDX files, Omniglot's PNG folders and CIFAR-10's
pickled batches. (synthetic_dag is generated in memory: tests/test_structure.py.)"""
import hashlib
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from data_loader.image_loader import ImageDataLoader
from data_loader.image_datasets import IDX_FILES
from data_loader.image_sets import load_images
from utils.errors import DataError


def idx_images(images):
    """uint8 (n, rows, columns) as an IDX file: magic 00 00 08 03, the sizes, the bytes."""
    return b"\0\0\x08\x03" + struct.pack(">3I", *images.shape) + images.tobytes()


def idx_labels(n):
    return b"\0\0\x08\x01" + struct.pack(">I", n) + bytes(n)


@pytest.mark.parametrize("dataset, folder", [("mnist", "MNIST"),
                                             ("fashion_mnist", "FashionMNIST")])
def test_mnist_and_fashion_mnist_read_their_idx_files(tmp_path, dataset, folder):
    rng = np.random.default_rng(0)
    train, test = (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for n in (6, 3))
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    for name, data in zip(IDX_FILES, (idx_images(train), idx_labels(6), idx_images(test),
                                      idx_labels(3))):
        (raw / name).write_bytes(data)
    assert torch.equal(load_images(dataset, tmp_path, train=False),
                       torch.from_numpy(test.reshape(3, -1)))
    loader = ImageDataLoader(data_dir=str(tmp_path), dataset=dataset, split="valid",
                             validation_size=2, binarize="none")
    assert loader.n_items == 2 and loader.image_shape == (1, 28, 28)
    rows = {bytes(image) for image in train.reshape(6, -1)}
    assert all(bytes(image.numpy()) in rows for image in loader.pixels)  # training images


def write_png(path, ink_corner):
    """A 105 x 105 Omniglot-style 1-bit PNG: white, with a black stroke in one corner."""
    pixels = np.ones((105, 105), dtype=bool)
    rows, columns = (slice(0, 40), slice(0, 40)) if ink_corner == "top left" else \
        (slice(65, 105), slice(65, 105))
    pixels[rows, columns] = False
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def test_omniglot_reads_the_extracted_png_folders_without_the_zip(tmp_path):
    root = tmp_path / "omniglot-py"
    write_png(root / "images_background" / "Latin" / "character02" / "0102_01.png", "bottom right")
    write_png(root / "images_background" / "Greek" / "character01" / "0201_01.png", "top left")
    write_png(root / "images_background" / "Greek" / "character01" / "0201_02.png", "bottom right")
    write_png(root / "images_evaluation" / "Atlantean" / "character01" / "0901_01.png", "top left")
    train = load_images("omniglot", tmp_path, train=True)
    assert train.shape == (3, 784) and train.dtype == torch.uint8
    ink = [image.view(28, 28)[:8, :8].float().mean() for image in train]  # top-left corner
    assert ink[0] > 250 and ink[1] == 0 and ink[2] == 0  # sorted: Greek 01, 02, then Latin
    assert train[0].view(28, 28)[20:, 20:].max() == 0  # the background is 0
    assert load_images("omniglot", tmp_path, train=False).shape == (1, 784)
    assert (tmp_path / "omniglot28_train.pt").is_file()  # resized once, then cached
    loader = ImageDataLoader(data_dir=str(tmp_path), dataset="omniglot", split="test")
    assert loader.n_items == 1 and loader.input_dim == 784


def test_missing_omniglot_says_where_its_folders_go(tmp_path, monkeypatch):
    import torchvision

    def no_network(self):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.datasets.Omniglot, "download", no_network)
    with pytest.raises(DataError, match=f"put Omniglot's extracted folders .* in "
                                        f"{tmp_path / 'omniglot-py'}"):
        load_images("omniglot", tmp_path, train=True)


def test_cifar10_reads_its_pickled_batches(tmp_path, monkeypatch):
    """torchvision opens CIFAR-10's pickles only if their MD5 sums are the published files';
    here they are set to those of the files written, so torchvision's own reader runs on them."""
    import torchvision
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    batches = {name: rng.integers(0, 256, (n, 3072), dtype=np.uint8) for name, n in
               [(f"data_batch_{k}", 2) for k in range(1, 6)] + [("test_batch", 3)]}

    def write(name, content):
        (folder / name).write_bytes(pickle.dumps(content))
        return [name, hashlib.md5((folder / name).read_bytes()).hexdigest()]

    listed = {name: write(name, {"data": data, "labels": [0] * len(data)})
              for name, data in batches.items()}
    meta = write("batches.meta", {"label_names": [f"class{k}" for k in range(10)]})
    cifar = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cifar, "train_list", [listed[f"data_batch_{k}"] for k in range(1, 6)])
    monkeypatch.setattr(cifar, "test_list", [listed["test_batch"]])
    monkeypatch.setattr(cifar, "meta", {"filename": "batches.meta", "key": "label_names",
                                        "md5": meta[1]})
    # Rows of a batch are channel-major (1024 red, 1024 green, 1024 blue): the loader's layout.
    assert torch.equal(load_images("cifar10", tmp_path, train=False),
                       torch.from_numpy(batches["test_batch"]))
    train = load_images("cifar10", tmp_path, train=True)
    assert torch.equal(train, torch.from_numpy(np.concatenate(
        [batches[f"data_batch_{k}"] for k in range(1, 6)])))
    loader = ImageDataLoader(data_dir=str(tmp_path), dataset="cifar10", split="test",
                             binarize="none")
    assert loader.image_shape == (3, 32, 32) and loader.input_dim == 3072
