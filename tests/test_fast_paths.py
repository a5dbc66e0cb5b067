"""The speed-ups compute what the plain code does: likelihood, fused Adam, batch binarization."""
import copy

import pytest
import torch
import torch.nn.functional as F

from experiment import build_loader, build_model, build_optimizer
from model import GraphVAE, top_down
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


# -- the prior's and the inference network's top-down MLPs as one grouped network -----------
def separate_into_paired(prior, inference, n_nodes):
    """A PairedMLPTopDown's state from two MLPTopDowns' (the layout checkpoints had)."""
    state = {**{f"p.{k}": v for k, v in prior.state_dict().items()},
             **{f"q.{k}": v for k, v in inference.state_dict().items()}}
    return {key[len("x."):]: merge(*(state[old] for old in olds))
            for key, (olds, merge) in separate_sources(n_nodes, "x.", "p.", "q.").items()}


def test_the_grouped_top_down_networks_compute_what_the_two_separate_ones_do():
    """Values and gradients to the parents of every node in a training pass, and the
    BatchNorm statistics it leaves, within float tolerance."""
    from model.top_down import MLPTopDown, PairedMLPTopDown
    torch.manual_seed(0)
    n_nodes, d = 4, 3
    prior, inference = MLPTopDown(n_nodes, d, 8), MLPTopDown(n_nodes, d, 8)
    paired = PairedMLPTopDown(n_nodes, d, 8)
    paired.load_state_dict(separate_into_paired(prior, inference, n_nodes))
    for node in range(n_nodes - 1):
        parents = torch.randn(16, n_nodes - 1 - node, d, requires_grad=True)
        weights = torch.randn(4, 16, d)
        separate = [*prior(node, parents), *inference(node, parents)]
        grouped = [t for estimate in paired.pair(node, parents) for t in estimate]
        for expected, got in zip(separate, grouped):
            assert torch.allclose(expected, got, atol=1e-6), (expected - got).abs().max()
        gradients = [torch.autograd.grad(sum((w * t).sum() for w, t in zip(weights, outputs)),
                                         parents)[0] for outputs in (separate, grouped)]
        assert torch.allclose(*gradients, atol=1e-5)
    statistics = separate_into_paired(prior, inference, n_nodes)
    for key, value in paired.state_dict().items():
        assert torch.allclose(value.float(), statistics[key].float(), atol=1e-6), key


def test_the_grouped_network_starts_from_the_two_separate_ones_draws():
    """A seed gives the weights two MLPTopDowns built one after the other had, and leaves the
    random stream where they left it (later modules start as before too)."""
    from model.top_down import MLPTopDown, PairedMLPTopDown
    torch.manual_seed(3)
    prior, inference = MLPTopDown(4, 3, 8), MLPTopDown(4, 3, 8)
    after_separate = torch.rand(5)
    torch.manual_seed(3)
    paired = PairedMLPTopDown(4, 3, 8)
    assert torch.equal(torch.rand(5), after_separate)
    expected = separate_into_paired(prior, inference, 4)
    for key, value in paired.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_gradients_of_the_grouped_network_are_the_separate_ones_merged():
    from model.top_down import MLPTopDown, PairedMLPTopDown
    torch.manual_seed(1)
    n_nodes, d = 3, 2
    prior, inference = MLPTopDown(n_nodes, d, 5), MLPTopDown(n_nodes, d, 5)
    paired = PairedMLPTopDown(n_nodes, d, 5)
    paired.load_state_dict(separate_into_paired(prior, inference, n_nodes))
    weights = torch.randn(4, 32, d)
    loss = lambda outputs: sum((w * t).sum() for w, t in zip(weights, outputs))  # noqa: E731
    for node in range(n_nodes - 1):
        parents = torch.randn(32, n_nodes - 1 - node, d)
        loss([*prior(node, parents), *inference(node, parents)]).backward()
        loss([t for estimate in paired.pair(node, parents) for t in estimate]).backward()
    as_grads = lambda net: {k: p.grad if p.grad is not None else torch.zeros_like(p)  # noqa: E731
                            for k, p in net.named_parameters()}
    separate = MLPTopDown(n_nodes, d, 5), MLPTopDown(n_nodes, d, 5)
    for net, source in zip(separate, (prior, inference)):
        net.load_state_dict(as_grads(source), strict=False)
    expected = separate_into_paired(*separate, n_nodes)
    for name, p in paired.named_parameters():
        assert torch.allclose(p.grad, expected[name], atol=1e-5), name


def test_the_compile_mode_goes_to_torch_compile_and_a_wrong_one_is_one_line(
        tiny_config, monkeypatch):
    """trainer.compile_mode "reduce-overhead": CUDA graphs on a GPU (run there in
    tests/test_cuda.py); here, that the mode reaches torch.compile."""
    from experiment import build_trainer
    from utils.errors import ConfigError
    modes = []
    monkeypatch.setattr(torch, "compile", lambda function, mode=None: modes.append(mode)
                        or function)
    tiny_config["trainer"]["compile_mode"] = "reduce-overhead"
    trainer = build_trainer(ConfigParser(tiny_config), validate=False)
    assert modes == ["reduce-overhead"] and trainer.compiled and not trainer.cuda_graphs
    tiny_config["trainer"]["compile_mode"] = "fast"
    with pytest.raises(ConfigError, match="trainer.compile_mode' must be 'default' or "):
        ConfigParser(tiny_config)


def separate_sources(n_nodes, paired="top_down.", prior="top_down.", inference="top_down_q."):
    """{key of a PairedMLPTopDown at `paired`: ((its keys in the two separate networks at
    `prior` and `inference`), merge)} for every node's parameters and buffers. A merge applies
    to any tensor of the parameter's shape (weights, and an optimiser's state of them)."""
    sources = {}
    for i in range(n_nodes - 1):
        for new, (old, merge) in top_down.SEPARATE_LAYOUT.items():
            sources[f"{paired}nets.{i}.{new}"] = (
                (f"{prior}nets.{i}.{old}", f"{inference}nets.{i}.{old}"), top_down.MERGES[merge])
    return sources
