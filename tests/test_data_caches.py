"""Data caches built on first use: one process per machine builds them under torchrun, processes
that build the same cache at once all succeed, and a broken cache is named and built again."""
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

import data_loader.sequence_datasets as sequence_datasets
from data_loader.cache import BrokenCache, cached
from data_loader.image_datasets import (
    DEBIAN_FASHION_MNIST,
    IDX_FILES,
    check_idx,
    load_image_cache,
)
from data_loader.image_sets import load_images
from data_loader.sequence_datasets import load_sequences, load_strokes, write_sequences
from experiment import build_trainer
from tests.conftest import REPO, become_rank
from tests.test_ddp import free_port
from utils import distributed, ranks
from utils.config import ConfigParser
from utils.errors import DataError

IDX_HEADER = b"\0\0\x08\x02" + struct.pack(">2I", 2, 3)  # a 2 x 3 array of bytes follows
CACHES = {  # kind: (load, write a whole cache, write a whole file of the kind holding wrong data)
    "npz": (lambda path: load_sequences(path, 3, "rebuilt", BrokenCache),
            lambda f: write_sequences(f, [np.ones((3, 3), np.float32), np.zeros((2, 3), np.float32)]),
            lambda f: np.savez(f, steps=np.ones((4, 3)), lengths=np.array([3, 2]))),
    "pt": (load_image_cache,
           lambda f: torch.save(torch.zeros(2, 784, dtype=torch.uint8), f),
           lambda f: torch.save(torch.zeros(2, 784), f)),
    "idx": (check_idx, lambda f: f.write(IDX_HEADER + bytes(6)),
            lambda f: f.write(IDX_HEADER + bytes(7))),
}


def damage(path, how, wrong):
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "text":
        path.write_text("not a cache\n")
    else:
        with open(path, "wb") as f:
            wrong(f)


@pytest.mark.parametrize("how", ["truncated", "empty", "text", "wrong data"])
@pytest.mark.parametrize("kind", CACHES)
def test_a_broken_cache_is_named_and_built_again(kind, how, tmp_path, capsys):
    load, write, wrong = CACHES[kind]
    path = tmp_path / "sub" / f"cache.{kind}"
    cached(path, load, write)  # missing: built, and said on stdout (a mistyped data_dir shows)
    first = capsys.readouterr()
    assert first.err == "" and first.out == f"Building {path} (once per data_dir)\n"
    cached(path, load, write)  # whole: loaded without a word
    assert capsys.readouterr() == ("", "")
    damage(path, how, wrong)
    with pytest.raises(BrokenCache):
        load(path)
    cached(path, load, write)
    assert f"warning: {path} is not a whole cache (" in capsys.readouterr().err
    load(path)
    assert list(path.parent.iterdir()) == [path]


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    def failing(f):
        f.write(b"half")
        raise DataError("the source is gone")

    with pytest.raises(DataError, match="the source is gone"):
        cached(tmp_path / "cache.npz", CACHES["npz"][0], failing)
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_strokes_cache_is_built_again(tmp_path, capsys):
    strokes = load_strokes(tmp_path, subsample=25)
    cache = tmp_path / "lasa_strokes_every25.npz"
    cache.write_bytes(cache.read_bytes()[:1000])
    again = load_strokes(tmp_path, subsample=25)
    assert f"warning: {cache} is not a whole cache" in capsys.readouterr().err
    assert len(again) == len(strokes) == 210
    assert all(np.array_equal(a, b) for a, b in zip(again, strokes))


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="needs dataset-fashion-mnist")
def test_a_truncated_fashion_mnist_file_is_decompressed_again(tmp_path, capsys):
    images = load_images("fashion_mnist", tmp_path, train=False)
    images_file = tmp_path / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte"
    os.truncate(images_file, images_file.stat().st_size - 784)
    assert torch.equal(load_images("fashion_mnist", tmp_path, train=False), images)
    assert f"warning: {images_file} is not a whole cache" in capsys.readouterr().err
    assert sorted(p.name for p in images_file.parent.iterdir()) == sorted(IDX_FILES)


def test_a_broken_idx_file_that_cannot_be_rebuilt_is_named(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = b"\0\0\x08\x03" + struct.pack(">3I", 1, 2, 2)  # one 2 x 2 image follows
    for name in IDX_FILES:
        (raw / name).write_bytes(images + bytes(4))
    (raw / IDX_FILES[0]).write_bytes(images + bytes(1))
    with pytest.raises(DataError, match=f"{raw / IDX_FILES[0]} is not an IDX image file "
                                        r"\(17 bytes, its header says 20: truncated or damaged\); "
                                        "delete it"):
        load_images("mnist", tmp_path, train=True)


def build_at_once(data_dir, barrier):
    """Build the strokes cache, writing it only once the other process has built it too."""
    original = sequence_datasets.lasa_strokes

    def built_then_wait(subsample):
        strokes = original(subsample)
        barrier.wait(timeout=120)
        return strokes

    sequence_datasets.lasa_strokes = built_then_wait
    assert len(load_strokes(data_dir, subsample=25)) == 210


def test_two_processes_building_the_same_cache_at_once_both_succeed(tmp_path):
    context = mp.get_context("spawn")
    barrier = context.Barrier(2)
    processes = [context.Process(target=build_at_once, args=(tmp_path, barrier))
                 for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
    assert [p.exitcode for p in processes] == [0, 0]
    cache = tmp_path / "lasa_strokes_every25.npz"
    assert list(tmp_path.iterdir()) == [cache]  # one whole file, no temporary ones
    assert len(load_sequences(cache, 3, "")) == 210


def build_loaders_as_rank(rank, config, out_dir, port):
    """One torchrun-like rank building a run from an empty data folder; notes if it built."""
    become_rank(rank, port)
    original = sequence_datasets.lasa_strokes

    def noted(subsample):
        Path(out_dir, f"built-by-rank{rank}").touch()
        return original(subsample)

    sequence_datasets.lasa_strokes = noted
    try:
        trainer = build_trainer(ConfigParser(config))
        assert ranks.world()[1] == 2
        Path(out_dir, f"rank{rank}").write_text(str(len(trainer.valid_data_loader.sequences)))
    finally:
        distributed.shutdown()


def test_two_ranks_start_from_an_empty_data_folder(tmp_path):
    config = json.loads((REPO / "configs" / "recurrent_graph_vae_strokes.json").read_text())
    config["arch"]["args"].update(rnn_hidden=8, hidden=8, feature_dim=4, node_dim=2)
    config["data_loader"]["args"] = {"data_dir": str(tmp_path / "data"), "subsample": 25}
    config["trainer"].update(save_dir=str(tmp_path / "saved"), tensorboard=False)
    mp.spawn(build_loaders_as_rank, args=(config, str(tmp_path), free_port()), nprocs=2,
             join=True)
    assert (tmp_path / "rank0").read_text() == (tmp_path / "rank1").read_text() == "21"
    assert sorted(p.name for p in tmp_path.glob("built-by-*")) == ["built-by-rank0"]
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["lasa_strokes_every25.npz"]
