"""GraphVAE's structure: which parents each node sees, gates, shapes, and the IS estimator."""
import math

import pytest
import torch

from model import GraphVAE, gaussian
from model.edge_gates import EdgeGates
from model.metrics import importance_sampled_log_likelihood

SMALL = dict(input_dim=20, n_nodes=4, node_dim=3, encoder_hidden=[16], feature_dim=8,
             bottom_up_hidden=8, top_down_hidden=8, decoder_hidden=[16])


def small_model(**kwargs):
    return GraphVAE(**{**SMALL, **kwargs})


def binary_batch(n=6, dim=20):
    return torch.bernoulli(torch.full((n, dim), 0.3))


def record_top_down_inputs(model):
    """{node: input of TD_node} of the next forward pass."""
    seen = {}
    for i, net in enumerate(model.top_down.nets):
        net.register_forward_hook(lambda m, inp, out, i=i: seen.__setitem__(i, inp[0].detach()))
    return seen


def test_shapes():
    model = small_model()
    x = binary_batch()
    out = model(x)
    assert out["x_params"].shape == (6, 20)
    assert out["z"].shape == (6, 4, 3)
    assert out["kl"].shape == (6, 4)
    assert len(model.gates.edges) == 6  # N(N-1)/2


@pytest.mark.parametrize("structure", ["full", "chain", "none"])
def test_top_down_networks_see_exactly_the_fixed_parents(structure):
    model = small_model(structure=structure).eval()
    seen = record_top_down_inputs(model)
    z = model(binary_batch())["z"]
    for i in range(3):
        parents = []
        for j in range(i + 1, 4):
            on = structure == "full" or (structure == "chain" and j == i + 1)
            parents.append(z[:, j] if on else torch.zeros_like(z[:, j]))
        assert torch.equal(seen[i], torch.cat(parents, dim=1)), (structure, i)


def test_with_all_gates_off_every_non_root_prior_is_top_down_of_zeros():
    model = small_model(structure="learned").eval()
    with torch.no_grad():
        model.gates.logits.fill_(-3.0)  # sigmoid < 0.5: every edge dropped in evaluation
    z = model(binary_batch())["z"]
    gates = model.gates.discrete().expand(6, -1)
    z_list = list(z.unbind(1))
    for i in range(3):
        (mu, logvar), _ = model.prior_params(i, z_list, gates)
        zeros = torch.zeros(6, (3 - i) * 3)
        expected_mu, expected_logvar = model.top_down.nets[i](zeros).chunk(2, dim=-1)
        assert torch.allclose(mu, expected_mu) and torch.allclose(logvar, expected_logvar)


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
    gates.set_temperature(1.0)
    sample = gates(1000)
    assert sample.shape == (1000, 6)
    assert ((sample > 0) & (sample < 1)).all()
    assert abs(sample.mean().item() - 0.5) < 0.05
    sample.sum().backward()
    assert gates.logits.grad is not None and (gates.logits.grad != 0).all()


def test_low_temperature_gates_are_nearly_binary_with_the_edge_probability():
    gates = EdgeGates(3, "learned", init_prob=0.8).train()
    gates.set_temperature(0.01)
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


def test_fixed_structures():
    assert EdgeGates(4, "full").discrete().tolist() == [1.0] * 6
    chain = EdgeGates(4, "chain")
    assert [e for e, c in zip(chain.edges, chain.discrete().tolist()) if c] == [(1, 0), (2, 1), (3, 2)]
    assert not hasattr(chain, "logits")


def test_the_vae_baseline_is_one_node_with_a_standard_normal_prior():
    model = small_model(n_nodes=1, node_dim=12, structure="none")
    assert len(model.top_down.nets) == 0 and len(model.gates.edges) == 0
    out = model.eval()(binary_batch())
    mu_hat, logvar_hat = model.bottom_up_estimates(binary_batch())
    assert out["kl"].shape == (6, 1)


def test_invalid_sizes_are_rejected():
    with pytest.raises(ValueError, match="n_nodes"):
        small_model(n_nodes=0)
    with pytest.raises(ValueError, match="structure"):
        small_model(structure="tree")


def test_importance_sampled_log_likelihood_bounds_the_elbo_and_converges():
    model = small_model(structure="learned").eval()
    x = binary_batch(n=8)
    # The ELBO is the expectation of the K=1 estimate; the estimate's expectation increases
    # with K towards log p(x), so with many samples it sits above the ELBO and stops moving.
    elbo = torch.stack([model.log_likelihood(o["x_params"], x) - o["kl"].sum(-1)
                        for o in (model(x) for _ in range(4000))]).mean().item()

    def mean_estimate(k, repeats):
        return sum(importance_sampled_log_likelihood(model, x, k).mean().item()
                   for _ in range(repeats)) / repeats

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
    whole = importance_sampled_log_likelihood(model, x, 300, max_rows=100_000)
    chunked = importance_sampled_log_likelihood(model, x, 300, max_rows=40)
    single = importance_sampled_log_likelihood(model, x, 1)
    assert whole.shape == (4,) and torch.isfinite(whole).all()
    assert torch.allclose(whole, chunked, atol=1e-4)
    assert torch.allclose(whole, single, atol=1e-4)  # logsumexp of K equal terms - log K


def test_prior_samples_use_the_discrete_graph_and_overrides():
    model = small_model().eval()
    x_params, z = model.sample_prior(5, node_overrides={3: torch.ones(3)})
    assert x_params.shape == (5, 20) and z.shape == (5, 4, 3)
    assert torch.equal(z[:, 3], torch.ones(5, 3))
    assert math.isfinite(x_params.sum().item())


def test_kl_warmup_weights_the_objective_but_not_the_reported_elbo():
    from model.loss import negative_elbo
    model = small_model().eval()
    x = binary_batch()
    torch.manual_seed(3)
    output = model(x)
    full, terms, count = negative_elbo(model, output, x)
    half, half_terms, _ = negative_elbo(model, output, x, kl_weight=0.5)
    assert torch.allclose(full, terms["recon"] + terms["kl"])
    assert torch.allclose(half, terms["recon"] + 0.5 * terms["kl"])
    assert torch.equal(half_terms["loss"], terms["loss"]) and count == 6
