"""GraphVAE's structure: which parents each node sees, gates, shapes, and the IS estimator."""
import math
import re

import pytest
import torch

from model import GraphVAE, gaussian
from model.edge_gates import EdgeGates, GateSchedule
from model.metrics import importance_sampled_log_likelihood
from model.objective import negative_elbo
from utils.errors import ConfigError
from utils.settings import check_args

SMALL = dict(input_dim=20, n_nodes=4, node_dim=3, encoder_hidden=[16], feature_dim=8,
             bottom_up_hidden=8, top_down_hidden=8, decoder_hidden=[16])


def small_model(**kwargs):
    return GraphVAE(**{**SMALL, **kwargs})


def binary_batch(n=6, dim=20):
    return torch.bernoulli(torch.full((n, dim), 0.3))


def record_top_down_inputs(top_down):
    """{node: input of TD_node} of the next forward pass."""
    seen = {}
    for i, net in enumerate(top_down.nets):
        net.register_forward_hook(lambda m, inp, out, i=i: seen.__setitem__(i, inp[0].detach()))
    return seen


def with_gates(model, logits):
    with torch.no_grad():
        model.gates.logits.copy_(torch.tensor(logits))
    return model


def test_the_output_keeps_the_model_contract():
    model = small_model()
    x = binary_batch()
    out = model(x)
    assert out["x_params"].shape == (6, 20) and out["z"].shape == (6, 4, 3)
    assert out["kl"].shape == (6, 4) and out["log_px"].shape == out["log_ratio"].shape == (6,)
    assert torch.equal(out["units"], torch.ones(6)) and out["posterior_mean"].shape == (6, 4, 3)
    assert len(model.gates.edges) == 6  # N(N-1)/2
    many = model.eval()(x, n_samples=5)  # rows sample-major, posterior means averaged
    assert many["log_px"].shape == (30,) and many["posterior_mean"].shape == (6, 4, 3)


def test_log_px_is_the_bernoulli_likelihood_of_the_decoder_outputs():
    model = small_model().eval()
    x = binary_batch()
    out = model(x)
    expected = -torch.nn.functional.binary_cross_entropy_with_logits(
        out["x_params"], x, reduction="none").sum(-1)
    assert torch.allclose(out["log_px"], expected, atol=1e-4)


def test_log_ratio_is_log_prior_minus_log_posterior_of_the_sample():
    # With the KL's closed form E_q[log q - log p] = KL: the mean of -log_ratio over many
    # samples of one image matches the summed KL (the posterior parameters given the parents
    # vary from sample to sample, so compare averages).
    model = small_model().eval()
    x = binary_batch(n=1).expand(20000, -1)
    out = model(x)
    assert abs(-out["log_ratio"].mean() - out["kl"].sum(-1).mean()) < 0.05


@pytest.mark.parametrize("structure", ["full", "chain", "none", "noisy_full"])
@pytest.mark.parametrize("shared", [False, True])
def test_both_top_down_networks_see_exactly_the_evaluation_parents(structure, shared):
    model = small_model(structure=structure, share_top_down=shared).eval()
    seen_p = record_top_down_inputs(model.top_down)
    # Without share_top_down TD^p and TD^q are one grouped network: its input is both's.
    seen_q = seen_p if model.top_down_q is None else record_top_down_inputs(model.top_down_q)
    z = model(binary_batch())["z"]
    for i in range(3):
        parents = []
        for j in range(i + 1, 4):
            on = structure in ("full", "noisy_full") or (structure == "chain" and j == i + 1)
            parents.append(z[:, j] if on else torch.zeros_like(z[:, j]))
        assert torch.equal(seen_p[i], torch.cat(parents, dim=1)), (structure, i)
        assert torch.equal(seen_q[i], torch.cat(parents, dim=1)), (structure, i)


def test_the_papers_top_down_has_separate_inference_and_prior_networks():
    separate, shared = small_model(), small_model(share_top_down=True)
    assert shared.top_down_q is None
    td = sum(p.numel() for p in shared.top_down.parameters())
    assert separate.n_parameters() - shared.n_parameters() == td  # one more set, same shape
    # The inference network's estimate is what is fused; the prior is the other network's.
    model = separate.eval()
    mu_hat, logvar_hat = model.bottom_up_estimates(binary_batch())
    z, (mu_q, logvar_q), (mu_p, logvar_p) = model.posterior(mu_hat, logvar_hat, model.gates(6))
    parents = model.gated_parents(2, list(z.unbind(1)), model.gates(6))
    expected_p, estimate = model.top_down_estimates(2, parents)
    expected_q = gaussian.fuse(mu_hat[:, 2], logvar_hat[:, 2], *estimate)
    assert torch.equal(model.top_down(2, parents)[0], expected_p[0])  # the prior alone
    assert torch.allclose(mu_p[:, 2], expected_p[0]) and torch.allclose(logvar_p[:, 2], expected_p[1])
    assert torch.allclose(mu_q[:, 2], expected_q[0]) and torch.allclose(logvar_q[:, 2], expected_q[1])
    assert not torch.allclose(expected_p[0], estimate[0])


def test_with_all_gates_off_every_non_root_prior_is_top_down_of_zeros():
    model = with_gates(small_model(structure="learned"), [-3.0] * 6).eval()  # all dropped
    z = model(binary_batch())["z"]
    gates = model.gates.discrete().expand(6, -1)
    z_list = list(z.unbind(1))
    for i in range(3):
        mu, logvar = model.top_down(i, model.gated_parents(i, z_list, gates))
        zeros = torch.zeros(6, (3 - i) * 3)
        prior_group = model.top_down.nets[i](zeros)[0]  # group 0 of the grouped network
        expected_mu, expected_logvar = prior_group.chunk(2, dim=-1)
        assert torch.allclose(mu, expected_mu) and torch.allclose(logvar, expected_logvar)


@pytest.mark.parametrize("shared", [False, True])
def test_a_dropped_edge_makes_prior_and_posterior_exactly_independent_of_that_parent(shared):
    # Drop z3 -> z0 only; redraw z3: node 0's prior and inference estimate do not change.
    model = small_model(share_top_down=shared).eval()
    edge = model.gates.edges.index((3, 0))
    logits = [3.0] * 6
    logits[edge] = -3.0
    with_gates(model, logits)
    gates = model.gates.discrete().expand(6, -1)
    z = list(torch.randn(6, 4, 3).unbind(1))
    estimates = lambda: model.top_down_estimates(0, model.gated_parents(0, z, gates))  # noqa: E731
    before_p, before_q = estimates()
    z[3] = z[3] + 10.0
    after_p, after_q = estimates()
    assert all(torch.equal(a, b) for a, b in zip(before_p, after_p))
    assert all(torch.equal(a, b) for a, b in zip(before_q, after_q))
    z_1 = z[1]  # a kept edge does matter (one way or the other: small nets have dead ReLUs)
    changed = []
    for shift in (10.0, -10.0):
        z[1] = z_1 + shift
        changed.append(not torch.equal(before_p[0], estimates()[0][0]))
    assert any(changed)


def test_root_posterior_is_the_bottom_up_estimate_and_its_kl_is_against_standard_normal():
    model = small_model().eval()
    x = binary_batch()
    mu_hat, logvar_hat = model.bottom_up_estimates(x)
    z, (mu_q, logvar_q), (mu_p, logvar_p) = model.posterior(mu_hat, logvar_hat,
                                                             model.gates(6))
    assert torch.equal(mu_q[:, -1], mu_hat[:, -1]) and torch.equal(logvar_q[:, -1], logvar_hat[:, -1])
    assert torch.equal(mu_p[:, -1], torch.zeros_like(mu_p[:, -1]))
    assert torch.equal(logvar_p[:, -1], torch.zeros_like(logvar_p[:, -1]))


def test_training_gates_are_relaxed_samples_with_gradient_to_the_logits():
    gates = EdgeGates(4, "learned").train()
    gates.start_epoch(1)
    sample = gates(1000)
    assert sample.shape == (1000, 6)
    assert ((sample > 0) & (sample < 1)).all()
    assert abs(sample.mean().item() - 0.5) < 0.05
    sample.sum().backward()
    assert gates.logits.grad is not None and (gates.logits.grad != 0).all()


def test_low_temperature_gates_are_nearly_binary_with_the_edge_probability():
    gates = EdgeGates(3, "learned", init_prob=0.8).train()
    gates.tau.fill_(0.01)
    sample = gates(20000)
    assert ((sample < 0.01) | (sample > 0.99)).float().mean() > 0.95
    assert abs((sample > 0.5).float().mean().item() - 0.8) < 0.02


def test_hard_gates_are_binary_in_the_forward_pass_and_pass_gradients():
    gates = EdgeGates(3, "learned", hard=True).train()
    sample = gates(100)
    # 1 + soft - soft is 1 up to rounding
    assert torch.allclose(sample, sample.round(), atol=1e-6)
    sample.sum().backward()
    assert gates.logits.grad is not None


def test_evaluation_and_frozen_graphs_are_discrete():
    gates = EdgeGates(3, "learned")
    with torch.no_grad():
        gates.logits.copy_(torch.tensor([2.0, -1.0, 0.5]))
    expected = torch.tensor([1.0, 0.0, 1.0])
    assert torch.equal(gates.eval()(2), expected.expand(2, -1))
    gates.train().freeze()
    assert torch.equal(gates(2), expected.expand(2, -1))
    # A frozen graph stays frozen through a checkpoint.
    restored = EdgeGates(3, "learned").train()
    restored.load_state_dict(gates.state_dict())
    assert restored.is_frozen and torch.equal(restored(2), expected.expand(2, -1))


@pytest.mark.parametrize("tau", [1.0, 0.3])
def test_the_gate_noise_control_trains_with_binary_concrete_gates_at_the_fixed_probability(tau):
    # Binary concrete: P(c > 1/2) = sigmoid(alpha) at any tau, and
    # P(c <= y) = sigmoid(tau * logit(y) - alpha) (Maddison et al., 2017).
    gates = EdgeGates(3, "noisy_full", init_prob=0.7).train()
    assert not list(gates.parameters())  # nothing learned
    gates.tau.fill_(tau)
    sample = gates(40000)
    alpha = math.log(0.7 / 0.3)
    for y in (0.1, 0.5, 0.9):
        expected = 1 / (1 + math.exp(-(tau * math.log(y / (1 - y)) - alpha)))
        assert abs((sample <= y).float().mean().item() - expected) < 0.01, (tau, y)
    # Evaluation and a frozen graph keep every edge.
    assert torch.equal(gates.eval()(2), torch.ones(2, 3))
    gates.train().freeze()
    assert torch.equal(gates(2), torch.ones(2, 3))


def test_the_gate_schedule_anneals_to_its_floor_then_freezes():
    schedule = GateSchedule(tau_init=1.0, tau_floor=0.05, anneal_epochs=10, freeze_epoch=12)
    assert schedule.temperature(1) == 1.0 and abs(schedule.temperature(10) - 0.05) < 1e-12
    assert all(schedule.temperature(e) > schedule.temperature(e + 1) for e in range(1, 10))
    assert schedule.temperature(30) == 0.05
    paper = GateSchedule(tau_rate=0.999, freeze_epoch=None)
    assert abs(paper.temperature(201) - 0.999 ** 200) < 1e-12 and not paper.frozen_at(2000)
    gates = EdgeGates(3, "learned", schedule=schedule)
    messages = [gates.start_epoch(e) for e in range(1, 15)]
    assert [e for e, m in zip(range(1, 15), messages) if m] == [13] and gates.is_frozen
    assert gates.describe(2)["entropy_at_freeze"] == pytest.approx(3 * math.log(2), abs=1e-4)
    for bad in ({"tau_init": 0}, {"tau_floor": 2.0}, {"anneal_epochs": 0}, {"freeze_epoch": -1},
                {"lr": -1.0}, {"anneal_epochs": None}, {"rate": 0.9}):
        with pytest.raises(ConfigError, match="gate_schedule"):
            check_args(GraphVAE, {"gate_schedule": bad}, "arch.args.", ("input_dim",))


def test_the_structure_logits_get_their_own_learning_rate():
    model = small_model(gate_schedule={"lr": 0.01})
    network, structure = model.parameter_groups()
    assert structure == {"params": [model.gates.logits], "lr": 0.01}
    assert len(network["params"]) == len(list(model.parameters())) - 1 and "lr" not in network
    assert len(small_model().parameter_groups()) == 1


def test_fixed_structures():
    assert EdgeGates(4, "full").discrete().tolist() == [1.0] * 6
    chain = EdgeGates(4, "chain")
    assert [e for e, c in zip(chain.edges, chain.discrete().tolist()) if c] == [(1, 0), (2, 1), (3, 2)]
    assert not hasattr(chain, "logits") and chain.names[0] == "z1->z0"


def test_the_vae_baseline_is_one_node_with_a_standard_normal_prior():
    model = small_model(n_nodes=1, node_dim=12, structure="none")
    assert len(model.top_down.nets) == 0 and len(model.gates.edges) == 0
    out = model.eval()(binary_batch())
    mu_hat, logvar_hat = model.bottom_up_estimates(binary_batch())
    assert out["kl"].shape == (6, 1)


def test_invalid_sizes_are_rejected_by_the_signature():
    """A model's settings are checked against its own signature (type and range)."""
    for bad, message in (({"n_nodes": 0}, "'arch.args.n_nodes' must be in [1, 32], got 0"),
                         ({"structure": "tree"},
                          "'arch.args.structure': unknown structure 'tree'; registered"),
                         ({"encoder_hidden": [16, 0]}, "'arch.args.encoder_hidden' must be in")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            check_args(GraphVAE, bad, "arch.args.", ("input_dim",))


def test_importance_sampled_log_likelihood_bounds_the_elbo_and_converges():
    model = small_model(structure="learned").eval()
    x = binary_batch(n=8)
    # The ELBO is the expectation of the K=1 estimate; the estimate's expectation increases
    # with K towards log p(x), so with many samples it sits above the ELBO and stops moving.
    with torch.no_grad():  # 4000 ELBO samples per image, as one batch
        output = model(x, n_samples=4000)
    elbo = (output["log_px"] - output["kl"].sum(-1)).mean().item()

    def mean_estimate(k, repeats):  # the mean of `repeats` K-sample estimates, as one batch
        copies = x.repeat(repeats, 1)
        return importance_sampled_log_likelihood(model, copies, k, max_rows=40_000)[0].mean().item()

    estimates = {k: mean_estimate(k, repeats=4000 // k) for k in (1, 10, 100, 1000)}
    assert abs(estimates[1] - elbo) < 0.3
    assert elbo < estimates[10] < estimates[100] < estimates[1000]
    assert estimates[1000] - estimates[100] < estimates[100] - estimates[10]
    assert abs(mean_estimate(4000, 1) - estimates[1000]) < 0.3


def test_importance_weights_chunking_does_not_change_the_estimate(monkeypatch):
    # With the noise switched off (z = posterior mean) every sample is the same, so the
    # chunked and unchunked estimates must agree to rounding: only the bookkeeping differs.
    monkeypatch.setattr(gaussian, "sample", lambda mu, logvar: mu)
    model = small_model().eval()
    x = binary_batch(n=4)
    whole = importance_sampled_log_likelihood(model, x, 300, max_rows=100_000)[0]
    chunked = importance_sampled_log_likelihood(model, x, 300, max_rows=40)[0]
    single = importance_sampled_log_likelihood(model, x, 1)[0]
    assert whole.shape == (4,) and torch.isfinite(whole).all()
    assert torch.allclose(whole, chunked, atol=1e-4)
    assert torch.allclose(whole, single, atol=1e-4)  # logsumexp of K equal terms - log K


def test_prior_samples_use_the_discrete_graph_and_overrides():
    model = small_model().eval()
    x_params, z = model.sample_prior(5, node_overrides={3: torch.ones(3)})
    assert x_params.shape == (5, 20) and z.shape == (5, 4, 3)
    assert torch.equal(z[:, 3], torch.ones(5, 3))
    assert math.isfinite(x_params.sum().item())


def test_kl_warmup_and_free_bits_change_the_objective_but_not_the_reported_elbo():
    model = small_model().eval()
    output = model(binary_batch())
    full, terms, count = negative_elbo(output)
    kl_nodes = output["kl"].mean(0)
    assert torch.allclose(terms["kl_per_node"], kl_nodes) and count == 6
    assert torch.allclose(terms["loss"], -(output["log_px"] - output["kl"].sum(-1)).mean())
    assert torch.allclose(full, terms["recon"] + terms["kl"])
    half, half_terms, _ = negative_elbo(output, kl_weight=0.5)
    assert torch.allclose(half, terms["recon"] + 0.5 * terms["kl"])
    assert torch.equal(half_terms["loss"], terms["loss"])
    floor = float(kl_nodes.detach().median())  # some nodes below it, some above
    free, free_terms, _ = negative_elbo(output, free_bits=floor)
    assert torch.allclose(free, terms["recon"] + kl_nodes.clamp_min(floor).sum())
    assert torch.equal(free_terms["loss"], terms["loss"])


def test_active_units_follow_burdas_criterion():
    from model.metrics import active_units, moment_sums
    means = torch.zeros(1000, 2, 3)
    means[:, 0, 0] = torch.randn(1000)  # variance ~1: active
    means[:, 1, 2] = 0.05 * torch.randn(1000)  # variance ~0.0025: not active
    means[:, 1, 1] = 5.0  # constant: not active
    sums = moment_sums(means)
    assert active_units(**sums) == [1, 0]

