"""bench/versus_pythae.py: bad flags are one line; pythae's VAE has the config's layer shapes."""
import pytest
import torch

import bench.versus_pythae as versus
from bench.common import record_matmuls
from model import GraphVAE
from utils.config import ConfigParser
from utils.errors import run_cli


@pytest.mark.parametrize("argv, fragment", [
    (["--rounds", "0"], "argument --rounds: must be an integer >= 1, got 0"),
    (["--warmup", "1"], "argument --warmup: must be an integer >= 2, got 1"),
    (["--steps", "many"], "argument --steps: must be an integer, got 'many'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--set", "arch.type=RecurrentGraphVAE", "--rounds", "1"], "needs a GraphVAE config"),
    (["--set", "arch.args.likelihood=gaussian"], "likelihood 'bernoulli'"),
])
def test_a_bad_flag_or_config_is_one_line(argv, fragment, capsys):
    assert run_cli(lambda: versus.main(argv)) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert fragment in captured.err and not captured.out


def test_pythae_vae_does_the_matmuls_of_the_one_node_graph_vae(tiny_config):
    """'Identical shapes': pythae's VAE multiplies the matrices a GraphVAE of the config's sizes
    with one node of all its latent dimensions does, forward (hooks on every linear layer)."""
    pytest.importorskip("pythae")
    config = ConfigParser(tiny_config)
    args, latent = versus.vae_shapes(config)
    theirs = versus.pythae_vae(config, 784).train()
    ours = GraphVAE(**{**config["arch"]["args"], "n_nodes": 1, "node_dim": latent,
                       "structure": "none", "gate_schedule": None}).train()
    x = torch.bernoulli(torch.full((16, 784), 0.3))
    with torch.no_grad():
        their_products = record_matmuls(theirs, lambda: theirs({"data": x}))
        our_products = record_matmuls(ours, lambda: ours(x))
    assert sorted(their_products) == sorted(our_products)
