"""A researcher's own data and networks: the registries, the npz and folder data sets, the conv
networks, --import and the Python API (graphvae.py)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import graphvae
from data_loader.image_loader import ImageDataLoader
from model import GraphVAE
from tests.conftest import REPO, expect_one_line_error, write_config
from utils.errors import ConfigError


@graphvae.ENCODERS.register("test_linear")
def linear_encoder(input_dim, hidden, feature_dim):
    return torch.nn.Linear(input_dim, feature_dim)


@graphvae.IMAGE_DATASETS.register("test_bars")
def bars(data_dir, train):
    """8x8 binary images, each a random set of full rows (bool: a data set may give any of
    the dtypes the door takes)."""
    generator = torch.Generator().manual_seed(0 if train else 1)
    n = 200 if train else 40
    return torch.randint(0, 2, (n, 8, 1), generator=generator).bool().expand(n, 8, 8)


def toy_config(tmp_path, **arch_args):
    return {"n_gpu": 0,
            "arch": {"type": "GraphVAE", "args": {"n_nodes": 2, "node_dim": 2,
                                                  "encoder_hidden": [16], "feature_dim": 8,
                                                  "bottom_up_hidden": 8, "top_down_hidden": 8,
                                                  "decoder_hidden": [16], **arch_args}},
            "data_loader": {"type": "ImageDataLoader",
                            "args": {"dataset": "test_bars", "validation_size": 40,
                                     "batch_size": 40, "data_dir": str(tmp_path)}},
            "trainer": {"epochs": 2, "save_dir": str(tmp_path / "saved"),
                        "tensorboard": False, "edge_values": False}}


def test_own_encoder_and_data_set_train_from_python_and_load_back(tmp_path):
    run_dir, trainer = graphvae.train(toy_config(tmp_path, encoder="test_linear"))
    assert run_dir.parent.name == "GraphVAE_test_bars"  # named after the data set
    assert isinstance(trainer.model.encoder, torch.nn.Linear)
    model = graphvae.load(run_dir / "checkpoint-latest.safetensors")  # rebuilt by name
    x = trainer.data_loader.fixed[:5] if hasattr(trainer.data_loader, "fixed") else \
        torch.bernoulli(trainer.data_loader.intensities[:5])
    trainer.model.eval()
    assert torch.equal(model.encoder(x), trainer.model.encoder(x))
    assert graphvae.sample(model, 4).shape == (4, 64)
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["name"] == "GraphVAE_test_bars" and saved["arch"]["args"]["encoder"] == "test_linear"


def test_a_config_naming_an_unregistered_thing_is_one_line_with_the_registered_names(
        tmp_path, capsys):
    config = toy_config(tmp_path, encoder="my_encoder")
    expect_one_line_error(["-c", str(write_config(tmp_path, config))], capsys,
                          "'arch.args.encoder': unknown encoder 'my_encoder'", "conv")
    config = toy_config(tmp_path)
    config["data_loader"]["args"]["dataset"] = "my_images"
    expect_one_line_error(["-c", str(write_config(tmp_path, config))], capsys,
                          "unknown image data set 'my_images'", "fashion_mnist")


PLUGIN = '''
import torch
from data_loader.image_sets import IMAGE_DATASETS

@IMAGE_DATASETS.register("plugin_dots")
def dots(data_dir, train):
    generator = torch.Generator().manual_seed(int(train))
    return torch.rand(120, 28, 28, generator=generator)  # floats in [0, 1]
'''


def run_script(args, cwd):
    return subprocess.run([sys.executable, str(REPO / "train.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_import_flag_loads_a_user_module_and_a_config_alone_cannot(tmp_path):
    (tmp_path / "my_plugin.py").write_text(PLUGIN)
    config = toy_config(tmp_path)
    config["data_loader"]["args"].update(dataset="plugin_dots", validation_size=20)
    config["trainer"]["epochs"] = 1
    path = write_config(tmp_path, config)
    refused = run_script(["-c", str(path)], tmp_path)
    assert refused.returncode == 2 and "unknown image data set 'plugin_dots'" in refused.stderr
    assert not (tmp_path / "saved").exists()
    trained = run_script(["--import", "my_plugin", "-c", str(path)], tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert list((tmp_path / "saved" / "models" / "GraphVAE_plugin_dots").glob("*/model_best*"))
    missing = run_script(["--import", "not_my_plugin", "-c", str(path)], tmp_path)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "--import not_my_plugin: no module" in missing.stderr


def test_npz_images_train_from_the_command_line(tmp_path, capsys):
    import train
    from utils.errors import run_cli
    pixels = np.random.default_rng(0).integers(0, 256, (100, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "digits.npz", x=pixels, y=np.arange(100))
    args = ["-c", str(write_config(tmp_path, toy_config(tmp_path))), "--set",
            "data_loader.args.dataset=npz", f"data_loader.args.path={tmp_path / 'digits.npz'}",
            "data_loader.args.validation_size=20", "trainer.epochs=1"]
    assert run_cli(lambda: train.main(args)) == 0
    assert list((tmp_path / "saved" / "models" / "GraphVAE_digits").glob("*/model_best*"))
    np.savez(tmp_path / "digits.npz", x=pixels, y=np.arange(99))
    expect_one_line_error(args, capsys, "'y' must hold one label per image (100)")
    np.savez(tmp_path / "digits.npz", x=pixels.astype(np.float32))  # not in [0, 1]
    expect_one_line_error(args, capsys, "values outside [0, 1]")
    np.savez(tmp_path / "digits.npz", images=pixels)
    expect_one_line_error(args, capsys, "is not an images .npz with 'x'")


def all_pixels(**args):
    """Every image of a data set of the user's (training and test), as sorted rows."""
    loaders = [ImageDataLoader(validation_size=1, binarize="none", split=split, **args)
               for split in ("train", "valid", "test")]
    rows = torch.cat([loader.pixels for loader in loaders])
    return rows[np.lexsort(rows.numpy().T[::-1])], loaders[0].image_shape


def test_npz_layouts_and_dtypes_give_the_same_pixels(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (30, 3, 32, 32), dtype=np.uint8)
    forms = {"uint8_channels_first": pixels,
             "float_channels_last": np.moveaxis(pixels, 1, -1).astype(np.float64) / 255}
    results = []
    for name, x in forms.items():
        np.savez(tmp_path / f"{name}.npz", x=x)
        results.append(all_pixels(dataset="npz", path=str(tmp_path / f"{name}.npz")))
    assert results[0][1] == results[1][1] == (3, 32, 32)
    assert torch.equal(results[0][0], results[1][0])
    expected = torch.from_numpy(pixels.reshape(30, -1))
    assert torch.equal(results[0][0], expected[np.lexsort(expected.numpy().T[::-1])])


def test_a_folder_of_png_images_reads_their_pixels(tmp_path):
    from torchvision.io import write_png
    grey = torch.arange(12, dtype=torch.uint8).mul(20).view(12, 1, 1, 1).expand(12, 1, 6, 5)
    for i, image in enumerate(grey):
        (tmp_path / "pngs" / f"class{i % 2}").mkdir(parents=True, exist_ok=True)
        write_png(image.contiguous(), str(tmp_path / "pngs" / f"class{i % 2}" / f"{i}.png"))
    rows, shape = all_pixels(dataset="folder", path=str(tmp_path / "pngs"))
    assert shape == (1, 6, 5)  # grey files stay one channel
    assert torch.equal(rows, grey.reshape(12, -1))
    write_png(torch.zeros(1, 7, 5, dtype=torch.uint8), str(tmp_path / "pngs" / "odd.png"))
    with pytest.raises(Exception, match="odd.png is 5x7.*one size"):
        ImageDataLoader(dataset="folder", path=str(tmp_path / "pngs"), validation_size=1)


@pytest.mark.parametrize("input_dim,likelihood", [(784, "bernoulli"), (3072, "gaussian"),
                                                  (3072, "discretized_logistic")])
def test_conv_networks_fit_28_and_32_pixel_images(input_dim, likelihood):
    model = GraphVAE(input_dim=input_dim, n_nodes=3, node_dim=4, encoder="conv",
                     decoder="conv", likelihood=likelihood, encoder_hidden=(),
                     decoder_hidden=())
    x = torch.rand(4, input_dim)
    output = model(x, n_samples=2)
    assert output["x_params"].shape == (8, model.likelihood.n_params)
    assert torch.isfinite(output["log_px"]).all()
    model.eval()  # each image is encoded on its own: no example leaks into another's features
    assert torch.allclose(model.encoder(x)[1:], model.encoder(x[1:]), atol=1e-5)


def test_conv_networks_refuse_other_image_sizes_in_one_line(tmp_path):
    from experiment import build_model
    from utils.config import ConfigParser
    config = ConfigParser(toy_config(tmp_path, encoder="conv"))
    with pytest.raises(ConfigError, match="28x28 or 32x32 images .* not 64 values"):
        build_model(config, 64)


@pytest.mark.parametrize("example", ["own_dataset.py", "own_decoder.py"])
def test_the_examples_train_evaluate_and_say_where_the_run_went(example, tmp_path):
    from tests.conftest import DATA_DIR
    flags = ["--data-dir", str(DATA_DIR)] if example == "own_decoder.py" else []
    done = subprocess.run([sys.executable, str(REPO / "examples" / example), "--epochs", "1",
                           "--save-dir", str(tmp_path), *flags], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    run_dir = done.stdout.strip().splitlines()[-1].split("the run: ")[1]
    assert "test ELBO" in done.stdout and (Path(run_dir) / "model_best.safetensors").is_file()
