"""The speed-ups compute what the plain code does: likelihood, fused Adam, batch binarization."""
import copy

import pytest
import torch
import torch.nn.functional as F

from experiment import build_loader, build_model, build_optimizer
from model import GraphVAE
from model.likelihoods import BernoulliLogProb
from tests.test_graph_vae import SMALL
from utils.config import ConfigParser

bernoulli_log_prob = BernoulliLogProb.apply


def reference_log_prob(logits, x):
    return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits),
                                               reduction="none").sum(-1)


@pytest.mark.parametrize("scale", [1.0, 8.0, 60.0])
def test_bernoulli_log_prob_equals_bce_with_logits_values_and_gradients(scale):
    logits = (torch.randn(64, 784) * scale).requires_grad_()
    x = torch.bernoulli(torch.full((64, 784), 0.3))
    fast, slow = bernoulli_log_prob(logits, x), reference_log_prob(logits, x)
    assert torch.allclose(fast, slow, rtol=1e-5, atol=1e-3), (fast - slow).abs().max()
    weights = torch.randn(64)
    grad_fast, = torch.autograd.grad((fast * weights).sum(), logits)
    grad_slow, = torch.autograd.grad((slow * weights).sum(), logits)
    assert torch.allclose(grad_fast, grad_slow, atol=1e-6)


def test_bernoulli_log_prob_broadcasts_data_over_samples_with_exact_gradients():
    logits = torch.randn(3, 4, 7, dtype=torch.double, requires_grad=True)
    x = torch.rand(4, 7, dtype=torch.double, requires_grad=True)  # broadcast over 3 samples
    assert bernoulli_log_prob(logits, x).shape == (3, 4)
    assert torch.autograd.gradcheck(bernoulli_log_prob, (logits, x))
    with torch.no_grad():
        assert torch.allclose(bernoulli_log_prob(logits, x.round()),
                              reference_log_prob(logits, x.round()))


def adam_config(**args):
    return ConfigParser({"name": "t", "arch": {"type": "GraphVAE", "args": {}},
                         "data_loader": {"type": "ImageDataLoader", "args": {}},
                         "optimizer": {"type": "Adam", "args": {"lr": 1e-3, **args}}})


def test_adam_is_fused_by_default_and_the_config_can_choose():
    model = GraphVAE(**SMALL)
    assert build_optimizer(adam_config(), model)[0].defaults["fused"] is True
    assert not build_optimizer(adam_config(fused=False), model)[0].defaults["fused"]
    foreach = build_optimizer(adam_config(foreach=True), model)[0].defaults
    assert foreach["foreach"] is True and not foreach["fused"]


def test_fused_adam_steps_like_the_for_loop_adam():
    # Gradients of a fixed size (biases followed by BatchNorm have a gradient of pure rounding
    # noise, which Adam turns into +-lr steps of arbitrary sign in either implementation).
    torch.manual_seed(0)
    model = GraphVAE(**SMALL)
    twin = copy.deepcopy(model)
    optimizers = [build_optimizer(adam_config(), model)[0],
                  build_optimizer(adam_config(fused=False, foreach=False), twin)[0]]
    for step in range(5):
        grads = [torch.randn_like(p) for p in model.parameters()]
        for net, optimizer in zip((model, twin), optimizers):
            for p, g in zip(net.parameters(), grads):
                p.grad = g.clone()
            optimizer.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()


def test_dynamic_binarization_is_bernoulli_of_the_intensities(tiny_config):
    config = ConfigParser(tiny_config)
    loader = build_loader(config, "train", batch_size=512)
    loader.set_epoch(1)
    batch = next(iter(loader))
    assert batch.dtype == torch.float32 and set(batch.unique().tolist()) <= {0.0, 1.0}
    intensities = loader.intensities[torch.tensor(loader.epoch_order()[:512])]
    # E[x] = p: the mean over 400k pixels is within a few standard errors of the intensities'
    assert abs(batch.mean().item() - intensities.mean().item()) < 0.005
    assert torch.equal(batch, next(iter(loader)))  # the same draws for the same epoch, batch
    assert build_model(config, loader.input_dim)(batch)["x_params"].shape == batch.shape
