"""Learning a structure (docs/method.md §7): the structure cost, the logits' own optimiser,
edge values, the block decoder and the synthetic data set with a known DAG."""
import copy
import dataclasses
import json
import math
import re

import pytest
import torch

import reproduce
import test as test_script
import train
from data_loader import synthetic_dag
from experiment import build_model
from model import GraphVAE, RecurrentGraphVAE
from model.objective import negative_elbo
from model.structure_prior import StructurePrior, bernoulli_kl
from reproduction import statistics
from tests.conftest import REPO, write_config
from trainer.checkpoint import load_checkpoint
from trainer.edge_values import edge_values
from utils.config import ConfigParser
from utils.errors import ConfigError, run_cli

SMALL = dict(input_dim=20, n_nodes=3, node_dim=2, encoder_hidden=[16], feature_dim=8,
             bottom_up_hidden=8, top_down_hidden=8, decoder_hidden=[16])


def small_model(**kwargs):
    return GraphVAE(**{**SMALL, **kwargs})


def set_logits(model, values, gates="gates"):
    with torch.no_grad():
        getattr(model, gates).logits.copy_(torch.tensor(values))
    return model


# -- the structure cost --------------------------------------------------------------------
@pytest.mark.parametrize("prior", [{"edge_penalty": 0.3},
                                   {"edge_prior": 0.2, "prior_weight": 0.7},
                                   {"edge_penalty": 0.1, "edge_prior": 0.6}])
def test_the_cost_and_its_gradient_on_the_logits_are_the_closed_forms(prior):
    alpha = torch.tensor([-2.0, -0.3, 0.0, 0.4, 3.0], requires_grad=True)
    cost = StructurePrior(**(prior or {})).cost(alpha)
    cost.backward()
    lam, pi = prior.get("edge_penalty", 0.0), prior.get("edge_prior")
    weight = prior.get("prior_weight", 1.0)
    q = torch.sigmoid(alpha.detach())
    value = lam * q.sum()
    # d/dalpha [lam q] = lam q (1 - q); d/dalpha KL(Bern(q) || Bern(pi)) = (alpha - logit pi) q (1 - q)
    gradient = lam * q * (1 - q)
    if pi is not None:
        kl = q * torch.log(q / pi) + (1 - q) * torch.log((1 - q) / (1 - pi))
        value = value + weight * kl.sum()
        gradient = gradient + weight * (alpha.detach() - math.log(pi / (1 - pi))) * q * (1 - q)
    assert torch.allclose(cost.detach(), value, atol=1e-6)
    assert torch.allclose(alpha.grad, gradient, atol=1e-6)


def test_the_bernoulli_kl_is_zero_at_the_prior_and_finite_at_extreme_logits():
    logits = torch.tensor([math.log(0.3 / 0.7), -80.0, 80.0])
    kl = bernoulli_kl(logits, 0.3)
    assert abs(float(kl[0])) < 1e-6 and torch.isfinite(kl).all()


def test_the_reported_elbo_is_unchanged_by_the_cost_which_only_the_objective_carries():
    x = torch.bernoulli(torch.full((8, 20), 0.4))
    plain = small_model()
    costly = small_model(structure_prior={"edge_penalty": 0.5, "edge_prior": 0.1})
    costly.load_state_dict(plain.state_dict())
    torch.manual_seed(1)
    objective, terms, _ = negative_elbo(plain(x))
    torch.manual_seed(1)
    costly_objective, costly_terms, _ = negative_elbo(costly(x))
    cost = costly.structure_cost().detach()
    assert torch.equal(terms["loss"], costly_terms["loss"])
    assert "structure_cost" not in terms and torch.equal(costly_terms["structure_cost"], cost)
    assert torch.allclose(costly_objective, objective + cost)
    assert float(cost) == pytest.approx(0.5 * 1.5 + 3 * float(bernoulli_kl(torch.zeros(1), 0.1)))


def test_a_frozen_graph_keeps_its_cost_in_the_log_but_gives_the_logits_no_gradient():
    model = small_model(structure_prior={"edge_penalty": 1.0})
    model.gates.freeze()
    cost = model.structure_cost()
    assert float(cost) == pytest.approx(1.5) and not cost.requires_grad


def test_the_cost_covers_both_edge_sets_of_the_recurrent_model():
    model = RecurrentGraphVAE(n_nodes=2, node_dim=2, rnn_hidden=8, hidden=8, feature_dim=4,
                              structure_prior={"edge_penalty": 1.0})
    assert float(model.structure_cost().detach()) == pytest.approx(0.5 * (1 + 4))  # 1 within, 4 cross


# -- edge values ---------------------------------------------------------------------------
def test_edge_values_are_the_elbo_differences_computed_by_hand():
    """RecurrentGraphVAE has no BatchNorm: a value is exactly the difference of two ELBOs on
    the same sequences with the same noise."""
    torch.manual_seed(0)
    model = RecurrentGraphVAE(n_nodes=2, node_dim=2, rnn_hidden=8, hidden=8, feature_dim=4,
                              cross_structure="none")
    set_logits(model, [2.0])  # z1 -> z0 kept
    x = torch.randn(6, 5, 3)
    x[..., 0] = (x[..., 0] > 0).float()
    batches = [{"x": x, "mask": torch.ones(6, 5, dtype=torch.bool)}]

    @torch.no_grad()
    def elbo(logit):
        other = set_logits(copy.deepcopy(model), [logit]).eval()
        torch.manual_seed(0)
        output = other(batches[0])
        return float((output["log_px"] - output["kl"].sum(-1)).sum() / output["units"].sum())

    values = edge_values(model, batches, torch.device("cpu"))
    assert values["z1->z0"] == pytest.approx(elbo(2.0) - elbo(-2.0), abs=1e-5)
    set_logits(model, [-2.0])  # dropped: the value of adding it, same sign convention
    assert edge_values(model, batches, torch.device("cpu"))["z1->z0"] == pytest.approx(
        elbo(2.0) - elbo(-2.0), abs=1e-5)


def test_an_edge_the_networks_ignore_is_worth_exactly_nothing_and_the_model_is_left_as_it_was():
    torch.manual_seed(0)
    model = set_logits(small_model(), [2.0, 2.0, -2.0])  # z1->z0, z2->z0 kept; z2->z1 dropped
    with torch.no_grad():  # node 0's top-down networks (grouped: TD^p and TD^q in one first
        model.top_down.nets[0][0].weight[:, 2:] = 0  # layer) ignore parent z2 (columns 2..3)
    batches = [torch.bernoulli(torch.full((16, 20), 0.4)) for _ in range(3)]
    model.train()
    before = copy.deepcopy(model.state_dict())
    rng = torch.get_rng_state()
    values = edge_values(model, batches, torch.device("cpu"))
    assert values["z2->z0"] == 0.0
    assert values["z1->z0"] != 0.0 and values["z2->z1"] != 0.0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and torch.equal(torch.get_rng_state(), rng)


def test_an_edge_near_one_half_is_reported_as_undecided():
    graph = set_logits(small_model(), [0.1, -0.1, 1.0]).describe_graph()
    assert [e["status"] for e in graph["edges"]] == ["undecided", "undecided", "kept"]
    assert [e["kept"] for e in graph["edges"]] == [True, False, True]  # the evaluation graph
    fixed = small_model(structure="full").describe_graph()
    assert {e["status"] for e in fixed["edges"]} == {"kept"}


# -- the block decoder ---------------------------------------------------------------------
def test_the_block_decoder_ties_each_node_to_its_own_block_of_outputs():
    model = small_model(input_dim=21, decoder="block").eval()
    z = torch.randn(5, 3, 2)
    out = model.decode(z)
    for node in range(3):
        moved = z.clone()
        moved[:, node] += 1.0
        changed = (model.decode(moved) != out).any(0)
        assert changed[node * 7:(node + 1) * 7].all() and changed.sum() == 7, node


@pytest.mark.parametrize("arguments, message", [
    (dict(input_dim=20, decoder="block"), "divid"),
    (dict(decoder="block", likelihood="gaussian"), "needs likelihood 'bernoulli'"),
    (dict(decoder="tree"), "'arch.args.decoder': unknown decoder 'tree'; registered decoders: mlp, block, conv"),
    (dict(structure_prior={"edge_penalty": -1}), "'arch.args.structure_prior.edge_penalty' must"),
    (dict(structure_prior={"edge_prior": 1.0}), "'arch.args.structure_prior.edge_prior' must "),
    (dict(structure_prior={"lambda": 0.1}), "unknown key 'arch.args.structure_prior.lambda'"),
    (dict(structure_prior=0.1), "'arch.args.structure_prior' must be StructurePrior or null"),
])
def test_bad_structure_settings_are_named(arguments, message):
    """Ranges and kinds at the door (the model's signature), relations by the model itself."""
    arguments = dict(arguments)
    input_dim = arguments.pop("input_dim", 21)
    args = {**{k: v for k, v in SMALL.items() if k != "input_dim"}, **arguments}
    config = {"name": "x", "arch": {"type": "GraphVAE", "args": args},
              "data_loader": {"type": "ImageDataLoader"}}
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_model(ConfigParser(config), input_dim, device="meta")


# -- the synthetic data set ------------------------------------------------------------------
def test_the_synthetic_data_is_reproducible_from_its_seed_and_exposes_its_true_dag():
    images, factors = synthetic_dag.DEFAULT.images(train=False)
    again, _ = synthetic_dag.SyntheticDAG(true_edges=[[3, 1], [1, 0]]).images(train=False)
    other, _ = dataclasses.replace(synthetic_dag.DEFAULT, generator_seed=1).images(train=False)
    train_images, _ = synthetic_dag.DEFAULT.images(train=True)
    assert torch.equal(images, again) and not torch.equal(images, other)
    assert images.shape == (5000, 256) and images.dtype == torch.uint8
    assert not torch.equal(images[:100], train_images[:100])
    assert synthetic_dag.DEFAULT.true_dag() == ["z3->z1", "z1->z0"]
    # The factors follow the DAG: z1 and z3, z0 and z1 (and so z0 and z3) depend; z2 on none.
    z = factors.double()
    dependence = lambda a, b: torch.linalg.svdvals(  # noqa: E731
        (z[:, a] - z[:, a].mean(0)).T @ (z[:, b] - z[:, b].mean(0)) / len(z)).max()
    assert dependence(1, 3) > 0.8 and dependence(0, 1) > 0.8 and dependence(0, 3) > 0.6
    assert max(dependence(2, k) for k in (0, 1, 3)) < 0.05


@pytest.mark.parametrize("layout", [{}, {"n_factors": 5, "block_rows": 2, "width": 8,
                                         "true_edges": [[4, 0], [2, 0]]}])
def test_each_factor_renders_only_its_own_block(layout):
    spec = synthetic_dag.SyntheticDAG.of(layout or None)
    rotations, weights, biases = spec.parameters()
    factors = spec.sample_factors(50, rotations, spec.mixing(rotations),
                                  torch.Generator().manual_seed(0))
    base = synthetic_dag.render(factors, weights, biases)
    block = spec.block_rows * spec.width
    assert base.shape[1] == math.prod(spec.image_shape) == spec.n_factors * block
    for k in range(spec.n_factors):
        moved = factors.clone()
        moved[:, k] += 2.0
        changed = (synthetic_dag.render(moved, weights, biases) != base).any(0)
        assert not changed[:block * k].any() and not changed[block * (k + 1):].any()
        assert changed[block * k:block * (k + 1)].sum() > block // 2


def test_recovery_scores_against_the_true_dag():
    true = ["z3->z1", "z1->z0"]
    assert statistics.recovery(["z3->z1", "z1->z0"], true) == {
        "precision": 1.0, "recall": 1.0, "shd": 0, "undecided": 0, "exact": True}
    assert statistics.recovery(["z3->z1", "z3->z0", "z2->z0"], true) == {
        "precision": 1 / 3, "recall": 0.5, "shd": 3, "undecided": 0, "exact": False}
    assert statistics.recovery([], true)["precision"] is None


def test_reproduce_does_not_count_an_undecided_edge_as_recovered():
    """sigma(alpha) = 0.484 is undecided (the graph figure draws it dotted): not a clean
    recovery, even where rounding at 0.5 would give the true DAG."""
    record = {"history": [{"edge_probs": {"z3->z1": 0.97, "z1->z0": 0.9, "z3->z0": 0.484}}]}
    kept, undecided = statistics.final_graph(record)
    assert kept == {"z3->z1", "z1->z0"} and undecided == {"z3->z0"}
    cells = statistics.structure_cells([(kept, undecided)], ["z3->z1", "z1->z0"])
    assert cells["true DAG found"] == "0 of 1" and cells["undecided"] == "1.0"
    decided = statistics.final_graph({"history": [{"edge_probs": {"z3->z1": 0.97, "z1->z0": 0.9,
                                                                   "z3->z0": 0.3}}]})
    assert statistics.structure_cells([decided], ["z3->z1", "z1->z0"])["true DAG found"] == \
        "1 of 1"


# -- training with a structure cost, its own optimiser, edge values --------------------------
def synthetic_config(tmp_path, **trainer):
    config = json.loads((REPO / "configs" / "graph_vae_synthetic_dag.json").read_text())
    config["arch"]["args"].update(encoder_hidden=[32], feature_dim=16, bottom_up_hidden=8,
                                  top_down_hidden=8, decoder_hidden=[16],
                                  gate_schedule={"anneal_epochs": 1, "freeze_epoch": 1},
                                  structure_prior={"edge_penalty": 0.1})
    config["data_loader"]["args"].update(subset=600, validation_size=2000, batch_size=100)
    config["trainer"] = {"epochs": 2, "save_dir": str(tmp_path / "saved"), "save_period": 1,
                         **trainer}
    config["structure_optimizer"] = {"type": "SGD", "args": {"lr": 5.0, "momentum": 0.5}}
    return config


def train_run(tmp_path, config, *extra):
    assert run_cli(lambda: train.main(["-c", str(write_config(tmp_path, config)), *extra])) == 0
    return max((tmp_path / "saved" / "models").glob("*/*"), key=lambda p: p.stat().st_mtime)


def test_sgd_moves_each_logit_by_its_own_gradient(tmp_path):
    config = synthetic_config(tmp_path)
    config["trainer"]["epochs"] = 1
    config["data_loader"]["args"]["subset"] = 100  # one step
    run = train_run(tmp_path, config)
    checkpoint = load_checkpoint(run / "checkpoint-latest.safetensors")
    assert checkpoint["structure_optimizer"]["param_groups"][0]["lr"] == 5.0
    # Adam's first step moves every parameter by about its rate, whatever the gradient: six
    # logits from 0 would take at most two values. SGD moves each by its own gradient.
    logits = checkpoint["model"]["gates.logits"]
    assert len(set(logits.tolist())) == 6
    from experiment import build_model
    from utils.config import ConfigParser
    n_tensors = len(list(build_model(ConfigParser(config), 256).parameters()))
    assert len(checkpoint["optimizer"]["param_groups"][0]["params"]) == n_tensors - 1
    assert len(checkpoint["structure_optimizer"]["param_groups"][0]["params"]) == 1


def test_a_run_with_its_own_logit_optimiser_and_edge_values_resumes_exactly(tmp_path):
    config = synthetic_config(tmp_path)
    whole = train_run(tmp_path, config, "--run-id", "whole")
    config["trainer"]["epochs"] = 1
    half = train_run(tmp_path, config, "--run-id", "half")
    assert run_cli(lambda: train.main(["--resume", str(half / "checkpoint-latest.safetensors"),
                                       "--epochs", "2"])) == 0
    a = load_checkpoint(whole / "checkpoint-latest.safetensors")
    b = load_checkpoint(half / "checkpoint-latest.safetensors")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    momentum = [c["structure_optimizer"]["state"][0]["momentum_buffer"] for c in (a, b)]
    assert torch.equal(*momentum) and momentum[0].abs().sum() > 0
    history = a["history"]
    assert set(history[1]["edge_values_at_freeze"]) == set(history[1]["edge_probs"])
    assert set(history[1]["edge_values"]) == set(history[1]["edge_probs"])
    assert history[1]["edge_values_at_freeze"] == b["history"][1]["edge_values_at_freeze"]
    assert history[0]["structure_cost"] > 0 and "structure_cost" not in history[0]["edge_probs"]
    assert a["model"]["gates.values_measured"]


def test_measuring_edge_values_changes_nothing_in_training(tmp_path):
    config = synthetic_config(tmp_path)
    measured = train_run(tmp_path, config, "--run-id", "measured")
    config["trainer"]["edge_values"] = False
    plain = train_run(tmp_path, config, "--run-id", "plain")
    a = load_checkpoint(measured / "checkpoint-latest.safetensors")["model"]
    b = load_checkpoint(plain / "checkpoint-latest.safetensors")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a if "values_" not in k)
    assert a["gates.values_measured"] and not b["gates.values_measured"]


def test_test_py_reports_edge_values_and_the_cost_and_tensorboard_has_them(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    config = synthetic_config(tmp_path, tensorboard=True)
    run = train_run(tmp_path, config)
    capsys.readouterr()
    checkpoint = run / "checkpoint-latest.safetensors"
    assert run_cli(lambda: test_script.main(["--resume", str(checkpoint), "-k", "2",
                                             "--limit", "50"])) == 0
    out = capsys.readouterr().out
    assert "structure cost" in out and "at freeze" in out
    results = json.loads(checkpoint.with_name("checkpoint-latest-test.json").read_text())
    assert results["structure_cost"] > 0
    edges = results["graph"]["edges"]
    assert len(edges) == 6 and all(isinstance(e["value"], float) for e in edges)
    assert all("value_at_freeze" in e and e["status"] in ("kept", "dropped", "undecided")
               for e in edges)
    tags = {tag for events in (tmp_path / "saved" / "log").glob("*/*/events.out.tfevents.*")
            for tag in EventAccumulator(str(events)).Reload().Tags()["scalars"]}
    assert "structure_cost/train" in tags
    assert {f"edge_value_at_freeze/{e['name']}" for e in edges} <= set(tags)
    assert {f"edge_value/{e['name']}" for e in edges} <= set(tags)


@pytest.mark.parametrize("change, message", [
    ({"structure_optimizer": {"type": "StepLR"}}, "unknown structure_optimizer.type 'StepLR'"),
    ({"structure_optimizer": {"type": "SGD", "args": {"lr": -1.0}}}, "structure_optimizer.args: Invalid learning rate"),
    ({"arch_gate_lr": 0.01}, "both set the structure logits' rate"),
])
def test_bad_logit_optimiser_settings_are_one_line(tmp_path, capsys, change, message):
    from tests.conftest import expect_one_line_error
    config = synthetic_config(tmp_path)
    if "arch_gate_lr" in change:
        config["arch"]["args"]["gate_schedule"]["lr"] = change["arch_gate_lr"]
    else:
        config.update(change)
    expect_one_line_error(["-c", str(write_config(tmp_path, config))], capsys, message)
    assert not (tmp_path / "saved").exists()


def test_resuming_without_the_logit_optimiser_it_was_trained_with_is_one_line(tmp_path, capsys):
    from tests.conftest import expect_one_line_error
    config = synthetic_config(tmp_path)
    config["trainer"]["epochs"] = 1
    run = train_run(tmp_path, config)
    expect_one_line_error(["--resume", str(run / "checkpoint-latest.safetensors"), "--epochs", "2",
                           "--set", "structure_optimizer=null"], capsys,
                          "was trained with a structure_optimizer")


def test_a_sweep_on_the_synthetic_dag_tabulates_recovery_and_edge_values(tmp_path):
    argv = ["--dataset", "synthetic_dag", "--epochs", "2", "--seeds", "0", "-k", "2",
            "--test-limit", "50", "--out", str(tmp_path / "out"),
            "--results", str(tmp_path / "results"),
            "--set", "data_loader.args.subset=300", "arch.args.encoder_hidden=[32]",
            "arch.args.decoder_hidden=[16]",
            'arch.args.gate_schedule={"anneal_epochs": 1, "freeze_epoch": 1}',
            "--sweep", "arch.args.decoder=mlp,block", "arch.args.structure_prior.edge_penalty=0,1",
            "--jobs", "2"]
    assert run_cli(lambda: reproduce.main(argv)) == 0
    results = tmp_path / "results"
    runs = sorted(p.name for p in (results / "runs").glob("*.json"))
    assert runs == ["graph_vae-decoder_block-edge_penalty_0_seed0.json",
                    "graph_vae-decoder_block-edge_penalty_1_seed0.json",
                    "graph_vae-decoder_mlp-edge_penalty_0_seed0.json",
                    "graph_vae-decoder_mlp-edge_penalty_1_seed0.json"]
    summary = json.loads((results / "results.json").read_text())
    names = [row["Model"] for row in summary["rows"]]
    assert names[0] == "GraphVAE (decoder=mlp, edge_penalty=0)" and len(names) == 4
    assert all({"precision", "recall", "shd", "edges kept"} <= set(row) for row in summary["rows"])
    assert len(summary["edge_values"]) == 4 * 6
    assert (results / "sparsity.png").is_file()
    record = json.loads((results / "runs" / runs[0]).read_text())
    assert "arch.args.decoder=block" in record["settings"]["overrides"]
