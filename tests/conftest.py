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
    """A small GraphVAE config on a subset of real Fashion-MNIST, writing under tmp_path, on
    the CPU also on a GPU machine (n_gpu 0: the default would train on a visible GPU; the
    GPU tests, tests/test_cuda.py, choose theirs)."""
    config = json.loads((REPO / "configs" / "tiny.json").read_text())
    config["n_gpu"] = 0
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
    from utils.errors import run_cli
    capsys.readouterr()  # drop what earlier steps printed
    status = run_cli(lambda: train.main(argv))
    err = capsys.readouterr().err.split("\r")[-1]  # after any progress bar redraws
    assert status == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err


def become_rank(rank, port, world_size=2):
    """Make this (spawned) process one torchrun-like rank of a gloo job on this machine."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)


def metric_before_and_after_training(config_dict, tmp_path, metric, test_images):
    """A test-set metric of the untrained model and of the one train.py leaves (model_best),
    for a config whose save_dir is tmp_path / "saved"."""
    import train
    from experiment import build_loader, build_model
    from trainer.checkpoint import load_checkpoint
    from trainer.evaluation import evaluate
    from utils.config import ConfigParser
    from utils.errors import run_cli
    config = ConfigParser(copy.deepcopy(config_dict))
    loader = build_loader(config, "test", batch_size=500, subset=test_images)
    measure = lambda model: evaluate(model, loader, torch.device("cpu"))[metric]  # noqa: E731
    torch.manual_seed(0)
    before = measure(build_model(config, loader.input_dim))
    assert run_cli(lambda: train.main(["-c", str(write_config(tmp_path, config_dict))])) == 0
    (best,) = (tmp_path / "saved" / "models").glob("*/*/model_best.safetensors")
    model = build_model(config, loader.input_dim)
    model.load_state_dict(load_checkpoint(best)["model"])
    return before, measure(model)


@pytest.fixture(scope="session")
def _slurm_cluster(tmp_path_factory):
    from tests.slurm_cluster import CannotStart, start_cluster
    try:
        cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    except CannotStart as e:
        if os.environ.get("GRAPHVAE_REQUIRE_SLURM"):  # CI installed it: it must start
            pytest.fail(f"the Slurm test cluster did not start: {e}")
        pytest.skip(f"no Slurm test cluster: {e}")
    yield cluster
    cluster.stop()


@pytest.fixture
def slurm(_slurm_cluster, monkeypatch):
    """A running one-node Slurm cluster (tests/slurm_cluster.py) that this test's Slurm
    commands reach; the test skips where Slurm cannot start."""
    for name, value in _slurm_cluster.env.items():
        monkeypatch.setenv(name, value)
    return _slurm_cluster
