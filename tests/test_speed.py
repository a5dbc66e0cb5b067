"""The fast paths compute what the plain one does: bf16 autocast, torch.compile, batched IS."""
import math

import pytest
import torch

from model import GraphVAE, gaussian
from model.metrics import importance_sampled_log_likelihood
from model.objective import negative_elbo
from tests.test_graph_vae import SMALL, binary_batch

PAPER_SIZED = dict(input_dim=784, n_nodes=5, node_dim=16)


def loss_of(model, x, seed, amp=False, forward=None):
    torch.manual_seed(seed)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        loss, _, _ = negative_elbo((model if forward is None else forward)(x))
    return loss


def test_bf16_autocast_loss_matches_the_fp32_loss_closely():
    model = GraphVAE(**PAPER_SIZED).train()
    x = torch.bernoulli(torch.full((64, 784), 0.3))
    fp32, bf16 = loss_of(model, x, 0), loss_of(model, x, 0, amp=True)
    assert bf16.dtype == torch.float32  # the loss itself is accumulated in fp32
    assert abs(bf16.item() - fp32.item()) / fp32.item() < 0.01, (fp32, bf16)
    bf16.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_compiled_forward_matches_eager():
    model = GraphVAE(**SMALL).train()
    # Compiled kernels draw random numbers their own way unless told to use eager's. (An
    # option, not monkeypatch.setattr: undoing that deletes the key from Inductor's config.)
    compiled = torch.compile(model, options={"fallback_random": True})
    x = binary_batch(n=16)
    eager, fast = loss_of(model, x, 1), loss_of(model, x, 1, forward=compiled)
    assert torch.allclose(eager, fast, rtol=1e-4, atol=1e-4), (eager, fast)
    fast.backward()
    assert model.gates.logits.grad is not None


def test_the_training_objective_compiles_to_one_graph(tiny_config):
    """torch.compile sees the whole forward pass and loss: a graph break (e.g. a branch on a
    tensor's value) would split the step and cost speed."""
    from experiment import build_trainer
    from utils.config import ConfigParser
    tiny_config["trainer"]["free_bits"] = 0.5
    trainer = build_trainer(ConfigParser(tiny_config), validate=False)
    trainer.begin_epoch(1)
    explanation = torch._dynamo.explain(trainer._objective)(next(iter(trainer.data_loader)),
                                                             torch.tensor(1.0))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("structure", ["learned", "chain"])
def test_batched_importance_sampling_equals_the_unbatched_definition(monkeypatch, structure):
    """With the same random numbers, the batched, chunked estimator gives the same values as
    the sample-by-sample definition."""
    model = GraphVAE(**{**SMALL, "structure": structure}).eval()
    x = binary_batch(n=3)
    n_samples = 7
    # One fixed noise table for every node and sample, indexed the same way by both paths.
    noise = torch.randn(n_samples, 3, model.n_nodes, model.node_dim)
    calls = {"node": 0}

    def table_sample(mu, logvar):
        node = model.n_nodes - 1 - calls["node"] % model.n_nodes
        calls["node"] += 1
        rows = mu.shape[0]
        eps = noise[:, :, node].reshape(n_samples * 3, -1) if rows == n_samples * 3 \
            else noise[table_sample.k, table_sample.i, node].unsqueeze(0)
        return mu + torch.exp(0.5 * logvar) * eps

    monkeypatch.setattr(gaussian, "sample", table_sample)
    batched, _ = importance_sampled_log_likelihood(model, x, n_samples)
    estimates = []
    for i in range(3):
        weights = []
        for k in range(n_samples):
            table_sample.i, table_sample.k = i, k
            weights.append(unbatched_log_likelihood_single(model, x[i:i + 1]))
        estimates.append(torch.logsumexp(torch.tensor(weights), 0).item() - math.log(n_samples))
    assert torch.allclose(batched, torch.tensor(estimates), atol=1e-4), (batched, estimates)


def unbatched_log_likelihood_single(model, image):
    """log p(x, z) - log q(z|x) for one image and one sample: the definition, unbatched."""
    mu_hat, logvar_hat = model.bottom_up_estimates(image)
    z, q, p = model.posterior(mu_hat, logvar_hat, model.gates(1))
    log_px = model.likelihood(model.decode(z), image)
    log_pz, log_qz = gaussian.log_density(z, *p).sum(-1), gaussian.log_density(z, *q).sum(-1)
    return (log_px + log_pz - log_qz).item()
