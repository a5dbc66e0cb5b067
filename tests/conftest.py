"""Shared fixtures: real Fashion-MNIST (offline, from Debian's package) and small configs."""
import copy
import json
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# Tests read the data where training does, so it is decompressed once for both.
DATA_DIR = Path(os.environ.get("GRAPHVAE_DATA_DIR", REPO / "data"))


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture
def tiny_config(tmp_path):
    """A small GraphVAE config on a subset of real Fashion-MNIST, writing under tmp_path."""
    config = json.loads((REPO / "configs" / "tiny.json").read_text())
    config["data_loader"]["args"].update(data_dir=str(DATA_DIR), subset=512)
    config["trainer"]["save_dir"] = str(tmp_path / "saved")
    return copy.deepcopy(config)


def write_config(tmp_path, config, name="config.json"):
    path = tmp_path / name
    path.write_text(json.dumps(config))
    return path


def expect_one_line_error(argv, capsys, *fragments):
    """train.py with argv stops with exit status 2 and one line naming every fragment."""
    import train
    from utils.cli import run_cli
    capsys.readouterr()  # drop what earlier steps printed
    status = run_cli(lambda: train.main(argv))
    err = capsys.readouterr().err.split("\r")[-1]  # after any progress bar redraws
    assert status == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err
