"""GraphLSTMVAE: GraphVAE's gates and fusion with one LSTM as the top-down network, whose
gates stay the structure (docs/method.md §3)."""
import pytest
import torch

from model import GraphLSTMVAE, GraphVAE
from model.objective import negative_elbo
from tests.test_graph_vae import SMALL, binary_batch, with_gates


def lstm_model(**kwargs):
    return GraphLSTMVAE(**{**SMALL, **kwargs})


def test_shapes_and_a_finite_loss_with_gradients_to_the_gate_logits():
    model = lstm_model()
    out = model(binary_batch())
    assert out["x_params"].shape == (6, 20) and out["kl"].shape == (6, 4)
    loss, _, _ = negative_elbo(out)
    loss.backward()
    assert torch.isfinite(loss) and model.gates.logits.grad is not None


def test_each_node_reads_its_own_gated_parents_root_first_from_a_fresh_state():
    model = lstm_model(structure="full").eval()
    seen = []
    model.top_down.lstm.register_forward_hook(
        lambda m, inp, out: seen.append((inp[0].detach(), inp[1] if len(inp) > 1 else None)))
    z = model(binary_batch())["z"]
    assert len(seen) == 3  # nodes 2, 1, 0
    for step, node in enumerate((2, 1, 0)):
        sequence, state = seen[step]
        assert state is None  # a fresh zero state for every node
        assert torch.equal(sequence, z[:, node + 1:].flip(1)), node  # root first


@pytest.mark.parametrize("shared", [False, True])
def test_a_dropped_edge_makes_the_prior_exactly_independent_of_that_parent(shared):
    # Fix z1, drop z2 -> z0, redraw z2: the prior (and inference estimate) of z0 is unchanged.
    # (An LSTM carrying its state from node to node would change it.)
    model = lstm_model(share_top_down=shared).eval()
    logits = [3.0] * 6
    logits[model.gates.edges.index((2, 0))] = -3.0
    with_gates(model, logits)
    gates = model.gates.discrete().expand(6, -1)
    z = list(torch.randn(6, 4, 3).unbind(1))
    networks = [model.top_down] + ([] if shared else [model.top_down_q])
    before = [net(0, model.gated_parents(0, z, gates)) for net in networks]
    z[2] = torch.randn(6, 3) * 5
    after = [net(0, model.gated_parents(0, z, gates)) for net in networks]
    for (mu_a, logvar_a), (mu_b, logvar_b) in zip(before, after):
        assert torch.equal(mu_a, mu_b) and torch.equal(logvar_a, logvar_b)
    z[3] = torch.randn(6, 3) * 5  # a kept edge matters
    assert not torch.equal(before[0][0], model.top_down(0, model.gated_parents(0, z, gates))[0])


def test_top_down_parameters_do_not_grow_with_n_beyond_the_per_node_heads():
    def top_down_counts(n_nodes):
        top_down = lstm_model(n_nodes=n_nodes, top_down_hidden=8).top_down
        lstm = sum(p.numel() for p in top_down.lstm.parameters())
        heads = top_down.head_weight.numel() + top_down.head_bias.numel()
        return lstm, heads, sum(p.numel() for p in top_down.parameters())

    small, large = top_down_counts(4), top_down_counts(10)
    assert small[0] == large[0]  # the shared LSTM
    head = 8 * 2 * 3 + 2 * 3  # one node's head: hidden x 2d weights + 2d biases
    assert large[1] - small[1] == 6 * head
    assert large[2] - small[2] == 6 * head  # nothing else in the top-down network grows
    mlp_growth = (sum(p.numel() for p in GraphVAE(**{**SMALL, "n_nodes": 10}).top_down.parameters())
                  - sum(p.numel() for p in GraphVAE(**SMALL).top_down.parameters()))
    assert mlp_growth > large[2] - small[2]  # unlike one MLP per node


def test_prior_samples_and_overrides():
    model = lstm_model().eval()
    x_params, z = model.sample_prior(5, node_overrides={1: torch.zeros(3)})
    assert x_params.shape == (5, 20) and torch.equal(z[:, 1], torch.zeros(5, 3))
