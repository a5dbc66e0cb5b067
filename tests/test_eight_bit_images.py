"""8-bit images (docs/method.md §6): the dequantising loader, training and bits/dim end to end on real
Fashion-MNIST, the pairing of likelihood and data, and CIFAR-10 (skipped without its files)."""
import json

import pytest
import torch

import test as test_script
import train
from data_loader.image_datasets import channels_first
from experiment import build_loader, build_model
from tests.conftest import (
    DATA_DIR,
    REPO,
    expect_one_line_error,
    metric_before_and_after_training,
    write_config,
)
from tests.test_training import logged, run_dir
from trainer.checkpoint import load_checkpoint
from utils.config import ConfigParser
from utils.errors import run_cli

CIFAR10_FILES = DATA_DIR / "cifar-10-batches-py"
needs_cifar10 = pytest.mark.skipif(not CIFAR10_FILES.is_dir(),
                                   reason=f"CIFAR-10 is not in {CIFAR10_FILES}")


@pytest.fixture
def eight_bit_config(tiny_config):
    """The tiny GraphVAE on 8-bit Fashion-MNIST with the paper's Gaussian."""
    tiny_config["data_loader"]["args"]["binarize"] = "none"
    tiny_config["arch"]["args"]["likelihood"] = "gaussian"
    return tiny_config


def test_dequantisation_is_uniform_within_each_pixel_bin(eight_bit_config):
    config = ConfigParser(eight_bit_config)
    loader = build_loader(config, "train", batch_size=512)
    loader.set_epoch(1)
    x = next(iter(loader))
    pixels = loader.pixels[torch.tensor(list(iter(loader.sampler))[:512])]
    assert x.dtype == torch.float32 and loader.data == "8-bit"
    assert torch.equal(torch.floor(x * 256), pixels.float())  # every x lies in its pixel's bin
    u = (x * 256 - pixels).flatten().double()  # the noise, U(0, 1) for 400k pixels
    assert 0 <= u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.003 and abs(u.var() - 1 / 12) < 0.002
    deciles = torch.quantile(u[:100_000], torch.linspace(0.1, 0.9, 9, dtype=torch.float64))
    assert torch.allclose(deciles, torch.linspace(0.1, 0.9, 9, dtype=torch.float64), atol=0.01)


def test_training_noise_is_fresh_and_reproducible_evaluation_noise_fixed(eight_bit_config):
    def batches(seed, epoch):
        config = ConfigParser({**eight_bit_config, "seed": seed})
        train_loader = build_loader(config, "train")
        train_loader.set_epoch(epoch)
        return (next(iter(train_loader)), next(iter(build_loader(config, "valid"))),
                next(iter(build_loader(config, "test"))))

    first, again, other_epoch, other_seed = batches(0, 1), batches(0, 1), batches(0, 2), \
        batches(1, 1)
    assert all(torch.equal(a, b) for a, b in zip(first, again))  # seeded per batch
    assert not torch.equal(first[0], other_epoch[0]) and not torch.equal(first[0], other_seed[0])
    # validation and test: one dequantisation from split_seed, the same for every run
    assert torch.equal(first[1], other_seed[1]) and torch.equal(first[2], other_seed[2])
    config = ConfigParser(eight_bit_config)
    loader = build_loader(config, "train")
    loader.set_epoch(1)
    order = torch.tensor(list(iter(loader.sampler)))[:64]
    fresh = loader.make_batch(order, loader.batch_generator(1))
    assert not torch.equal(fresh, loader.make_batch(order, loader.batch_generator(0)))
    assert torch.equal(torch.floor(fresh * 256), loader.pixels[order].float())


@pytest.mark.parametrize("likelihood", ["gaussian", "discretized_logistic"])
def test_training_on_8_bit_fashion_mnist_lowers_the_test_loss(eight_bit_config, tmp_path,
                                                              likelihood):
    eight_bit_config["arch"]["args"]["likelihood"] = likelihood
    eight_bit_config["data_loader"]["args"].update(subset=60 * 64)  # 60 steps of batch 64
    eight_bit_config["optimizer"] = {"type": "Adam", "args": {"lr": 1e-3}}
    eight_bit_config["trainer"].update(epochs=1, tensorboard=False)
    before, after = metric_before_and_after_training(eight_bit_config, tmp_path,
                                                     "elbo_bits_per_dim", 500)
    assert after < before - 0.3, (before, after)  # 0.3 bits/dim: 163 nats per image


def test_test_script_reports_bits_per_dim_and_tensorboard_has_them(eight_bit_config, tmp_path,
                                                                   capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    eight_bit_config["trainer"].update(epochs=1)
    assert run_cli(lambda: train.main(["-c", str(write_config(tmp_path, eight_bit_config))])) == 0
    assert len(logged(tmp_path / "saved", "val_elbo_bits_per_dim")) == 1
    (log_dir,) = (tmp_path / "saved" / "log").glob("*/*")
    events = EventAccumulator(str(log_dir))
    events.Reload()
    assert "bits_per_dim/valid" in events.Tags()["scalars"]

    checkpoint = run_dir(tmp_path / "saved") / "model_best.safetensors"
    assert load_checkpoint(checkpoint)["image_shape"] == [1, 28, 28]
    capsys.readouterr()
    assert run_cli(lambda: test_script.main(["--resume", str(checkpoint), "-k", "10",
                                             "--limit", "100"])) == 0
    out = capsys.readouterr().out
    assert "-ELBO (bits/dim)" in out and "-log p(x) (bits/dim), IS K=10" in out
    results = json.loads(checkpoint.with_name("model_best-test.json").read_text())
    d = 784  # bits/dim = -(log p - D log 256) / (D ln 2) for the Gaussian's density
    expected = -(results["elbo"] - d * torch.log(torch.tensor(256.0))) / (d * torch.log(
        torch.tensor(2.0)))
    assert results["elbo_bits_per_dim"] == pytest.approx(expected.item(), rel=1e-5)
    assert results["log_likelihood_bits_per_dim"] <= results["elbo_bits_per_dim"] + 0.01
    assert 0 < results["log_likelihood_bits_per_dim"] < 12


@pytest.mark.parametrize("likelihood, binarize, fragments", [
    ("bernoulli", "none", ("'bernoulli' models binary data", "gives 8-bit data",
                           "'gaussian' or 'discretized_logistic'", "binarize 'dynamic'")),
    ("gaussian", "dynamic", ("'gaussian' models 8-bit data", "gives binary data",
                             "use likelihood 'bernoulli'", "binarize 'none'"))])
def test_a_likelihood_for_other_data_is_a_one_line_error(tiny_config, tmp_path, capsys,
                                                         likelihood, binarize, fragments):
    tiny_config["arch"]["args"]["likelihood"] = likelihood
    tiny_config["data_loader"]["args"]["binarize"] = binarize
    expect_one_line_error(["-c", str(write_config(tmp_path, tiny_config))], capsys, *fragments)
    assert not (tmp_path / "saved").exists()


def test_colour_images_are_flattened_channel_major():
    hwc = torch.arange(2 * 4 * 5 * 3).view(2, 4, 5, 3)  # (n, H, W, C), torchvision's CIFAR
    rows = channels_first(hwc)
    assert rows.shape == (2, 60)
    assert torch.equal(rows[1].view(3, 4, 5), hwc[1].permute(2, 0, 1))  # (C, H, W) images


def test_missing_cifar10_says_where_to_put_it(tmp_path, capsys, monkeypatch):
    import torchvision

    def no_network(self):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", no_network)
    config = json.loads((REPO / "configs" / "graph_vae_cifar10.json").read_text())
    config["data_loader"]["args"]["data_dir"] = str(tmp_path / "nodata")
    config["trainer"] = {"save_dir": str(tmp_path / "saved")}
    expect_one_line_error(["-c", str(write_config(tmp_path, config))], capsys,
                          "cifar10 files not found", f"{tmp_path / 'nodata'}/cifar-10-batches-py/",
                          "cifar-10-python.tar.gz")
    assert not (tmp_path / "saved").exists()


def test_cifar10_configs_have_the_papers_sizes_and_the_vae_matches_parameters():
    def model(name):
        config = ConfigParser(json.loads((REPO / "configs" / name).read_text()))
        assert config["data_loader"]["args"] == {"dataset": "cifar10", "binarize": "none"}
        return build_model(config, 3 * 32 * 32)

    graph_vae = model("graph_vae_cifar10.json")
    assert graph_vae.likelihood.name == "gaussian" and graph_vae.n_nodes * graph_vae.node_dim == 80
    for name in ("fc_vae_cifar10.json", "ladder_vae_cifar10.json"):  # fixed: no edge logits
        assert model(name).n_parameters() == graph_vae.n_parameters() - 10
    vae = model("vae_cifar10.json")
    assert vae.n_nodes == 1
    assert abs(vae.n_parameters() / graph_vae.n_parameters() - 1) < 0.001


class FakeCIFAR10:
    """torchvision's CIFAR10 as the loader sees it, with random images (n, H, W, C)."""
    base_folder, url = "cifar-10-batches-py", "https://example.invalid/cifar-10-python.tar.gz"

    def __init__(self, root, train=True, download=False):
        generator = torch.Generator().manual_seed(int(train))
        self.data = torch.randint(0, 256, (300 if train else 100, 32, 32, 3), dtype=torch.uint8,
                                  generator=generator).numpy()


def test_the_cifar10_configs_train_and_sample_colour_images(tmp_path, monkeypatch):
    """The CIFAR-10 path end to end on random images of its shape (the real files are not
    here): train.py with configs/graph_vae_cifar10.json, then sample.py draws colour images."""
    import torchvision
    from PIL import Image

    import sample
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    config = json.loads((REPO / "configs" / "graph_vae_cifar10.json").read_text())
    config["data_loader"]["args"].update(validation_size=100, subset=128, batch_size=64)
    config["trainer"] = {"save_dir": str(tmp_path / "saved"), "epochs": 1, "tensorboard": False}
    assert run_cli(lambda: train.main(["-c", str(write_config(tmp_path, config))])) == 0
    checkpoint = run_dir(tmp_path / "saved") / "checkpoint-latest.safetensors"
    recorded = load_checkpoint(checkpoint)
    assert recorded["input_dim"] == 3072 and recorded["image_shape"] == [3, 32, 32]
    assert len(logged(tmp_path / "saved", "val_elbo_bits_per_dim")) == 1
    out = tmp_path / "samples.png"
    assert run_cli(lambda: sample.main(["--resume", str(checkpoint), "-n", "4",
                                        "--out", str(out)])) == 0
    image = Image.open(out)
    assert image.mode == "RGB" and image.size == (2 + 2 * 34, 2 + 2 * 34)


@needs_cifar10
def test_cifar10_loads_as_colour_8_bit_images(tmp_path):
    config = json.loads((REPO / "configs" / "graph_vae_cifar10.json").read_text())
    config["data_loader"]["args"].update(data_dir=str(DATA_DIR), subset=64)
    parsed = ConfigParser(config)
    loader = build_loader(parsed, "test")
    x = next(iter(loader))
    assert loader.image_shape == (3, 32, 32) and x.shape == (64, 3072)
    assert 0 <= x.min() and x.max() < 1
    model = build_model(parsed, loader.input_dim)
    assert torch.isfinite(model(x)["log_px"]).all()


def test_reproduce_tabulates_bits_per_dim_for_8_bit_images():
    import numpy as np

    from reproduction import report

    def run(seed, bits):
        test = {"log_likelihood": -700.0, "elbo": -720.0, "kl": 20.0, "active_units": [3, 2],
                "params": 1000, "log_likelihood_bits_per_dim": bits,
                "elbo_bits_per_dim": bits + 0.1}
        return {"seed": seed, "test": test, "seconds": 10.0, "epochs": 1,
                "per_example": {"log_likelihood": np.zeros(3)}}

    row = report.test_row("graph_vae", [run(0, 4.0), run(1, 4.2)], [], "GraphVAE")
    assert row["-log p(x) bits/dim"] == "4.100 ± 0.141"
    assert row["-ELBO bits/dim"] == "4.200 ± 0.141"
    binary = {k: v for k, v in run(0, 4.0)["test"].items() if "bits" not in k}
    assert not any("bits" in column for column in report.test_row(
        "graph_vae", [{**run(0, 4.0), "test": binary}], [], "GraphVAE"))
