"""The search over graphs after joint training (trainer/graph_search.py, search_graph.py)."""
import json
import math

import pytest
import torch

import search_graph
import train
from model import GraphVAE
from tests.conftest import write_config
from tests.test_synthetic_dag import synthetic_run_config
from trainer import graph_search
from trainer.checkpoint import load_checkpoint
from utils.errors import run_cli


@pytest.fixture
def quick_fits(monkeypatch):
    monkeypatch.setattr(graph_search, "EPOCHS", 8)
    monkeypatch.setattr(graph_search, "BATCH", 512)


def collider_samples(n, k, generator):
    """(n, k, 3, 2) samples of z2, z1 independent and z0 from both, with weights (n, k)."""
    z = torch.randn(n, k, 3, 2, generator=generator)
    rotation = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
    z[:, :, 0] = 0.6 * z[:, :, 2] @ rotation.T + 0.6 * z[:, :, 1] + 0.5 * z[:, :, 0]
    return z, torch.full((n, k), 1.0 / k)


def test_the_search_keeps_a_colliders_two_parents_and_nothing_else(quick_fits):
    generator = torch.Generator().manual_seed(0)
    train_set, valid_set = (collider_samples(n, 1, generator) for n in (6000, 2000))
    densities = graph_search.prior_log_densities(train_set, valid_set)
    graph_free = torch.zeros(2000, 1)  # K = 1: the bound is the mean log-density
    choice = graph_search.best_graph(graph_free, densities, 3, edge_cost=0.03)
    assert choice == ((1, 2), ())
    # Each parent is worth what it carries given the other: 1/2 log(1 + 0.36 / 0.25) per dim.
    expected = math.log(1 + 0.36 / 0.25)
    for parent in (1, 2):
        value, se = graph_search.refitted_value(graph_free, densities, choice, parent, 0)
        assert value == pytest.approx(expected, abs=0.1) and se < 0.05
    spurious, _ = graph_search.refitted_value(graph_free, densities, choice, 2, 1)
    assert abs(spurious) < 0.02


def test_posterior_draws_weigh_samples_by_the_models_own_joint():
    torch.manual_seed(0)
    model = GraphVAE(input_dim=20, n_nodes=3, node_dim=2, encoder_hidden=[16], feature_dim=8,
                     bottom_up_hidden=8, top_down_hidden=8, decoder_hidden=[16]).eval()
    x = torch.bernoulli(torch.full((10, 20), 0.4))
    torch.manual_seed(1)
    z, graph_free, weights = graph_search.posterior_draws(model, [x], "cpu", n_samples=5)
    torch.manual_seed(1)
    with torch.no_grad():
        output = model(x, n_samples=5)
    log_w = (output["log_px"] + output["log_ratio"]).view(5, 10).T
    assert z.shape == (10, 5, 3, 2)
    assert torch.allclose(z, output["z"].view(5, 10, 3, 2).transpose(0, 1))
    assert torch.allclose(weights, torch.softmax(log_w, 1), atol=1e-6)
    assert torch.allclose(weights.sum(1), torch.ones(10))
    # The graph-free part holds the likelihood, -log q and the root's prior, not the others'.
    assert not torch.allclose(graph_free, log_w)


def test_training_continues_on_the_searched_graph(tmp_path, quick_fits, monkeypatch):
    monkeypatch.setattr(graph_search, "FIT_IMAGES", 200)
    config = synthetic_run_config(tmp_path, {"true_edges": [[3, 0], [1, 0]],
                                             "train_size": 600, "test_size": 10})
    config["data_loader"]["args"].update(subset=400, validation_size=200)
    config["arch"]["args"]["gate_schedule"] = {"anneal_epochs": 1, "freeze_epoch": 1}
    assert run_cli(lambda: train.main(["-c", str(write_config(tmp_path, config))])) == 0
    run = next((tmp_path / "saved" / "models").glob("*/*"))
    latest = run / "checkpoint-latest.safetensors"
    assert run_cli(lambda: search_graph.main(["--resume", str(latest), "-k", "2"])) == 0
    found = json.loads((run / "checkpoint-latest-search.json").read_text())
    assert len(found["graph"]) == 6 and set(found["refitted_values"]) == set(found["refitted_se"])
    searched = run / "checkpoint-latest-searched.safetensors"
    assert run_cli(lambda: train.main(["--resume", str(searched), "--epochs", "2"])) == 0
    final = load_checkpoint(run / "checkpoint-latest.safetensors")
    assert final["epoch"] == 2 and bool(final["model"]["gates.frozen"])
    logits = final["model"]["gates.logits"]
    assert torch.equal((logits > 0).float(), torch.tensor(found["graph"]))
    assert torch.equal(logits.abs(), torch.full((6,), search_graph.GRAPH_LOGIT))
    assert final["history"][-1]["edge_probs"] == pytest.approx(
        {name: float(name in found["kept"]) for name in final["history"][-1]["edge_probs"]},
        abs=1e-4)


def test_a_checkpoint_without_a_learned_graph_is_one_line(tmp_path, capsys):
    config = synthetic_run_config(tmp_path, {"true_edges": [[3, 1], [1, 0]], "train_size": 300,
                                              "test_size": 10})
    config["arch"]["args"]["structure"] = "full"
    assert run_cli(lambda: train.main(["-c", str(write_config(tmp_path, config))])) == 0
    latest = next((tmp_path / "saved" / "models").glob("*/*")) / "checkpoint-latest.safetensors"
    capsys.readouterr()
    assert run_cli(lambda: search_graph.main(["--resume", str(latest)])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no GraphVAE with a learned graph" in err
