"""GraphLSTMVAE: GraphVAE's gates and fusion with one LSTM as the top-down network."""
import torch

from model import GraphLSTMVAE, GraphVAE
from tests.test_graph_vae import SMALL, binary_batch


def lstm_model(**kwargs):
    return GraphLSTMVAE(**{**SMALL, **kwargs})


def record_lstm_inputs(model):
    seen = []
    model.top_down.cell.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    return seen


def test_shapes_and_a_finite_loss_with_gradients_to_the_gate_logits():
    model = lstm_model()
    x = binary_batch()
    out = model(x)
    assert out["x_params"].shape == (6, 20) and out["kl"].shape == (6, 4)
    loss = (out["kl"].sum(-1) - model.log_likelihood(out["x_params"], x)).mean()
    loss.backward()
    assert torch.isfinite(loss) and model.gates.logits.grad is not None


def test_the_lstm_walks_the_nodes_root_first_on_gated_zero_padded_parents():
    model = lstm_model(structure="full").eval()
    seen = record_lstm_inputs(model)
    z = model(binary_batch())["z"]
    assert len(seen) == 3  # nodes 2, 1, 0
    for step, node in enumerate((2, 1, 0)):
        parents = z[:, node + 1:].flatten(1)
        expected = torch.cat([parents, torch.zeros(6, 9 - parents.shape[1])], dim=1)
        assert torch.equal(seen[step], expected), node


def test_with_all_gates_off_the_prior_depends_only_on_the_lstm_state():
    model = lstm_model(structure="none").eval()
    seen = record_lstm_inputs(model)
    mu_hat, logvar_hat = model.bottom_up_estimates(binary_batch())
    _, _, (mu_p_a, logvar_p_a) = model.posterior(mu_hat, logvar_hat, model.gates(6))
    assert all(torch.equal(inp, torch.zeros_like(inp)) for inp in seen)
    # Different posterior samples of the parents do not change any prior: the LSTM sees zeros,
    # so every prior is a function of its state alone (the same for every example).
    _, _, (mu_p_b, _) = model.posterior(mu_hat + 5.0, logvar_hat, model.gates(6))
    assert torch.equal(mu_p_a, mu_p_b)
    assert torch.equal(mu_p_a[:, :3], mu_p_a[:1, :3].expand(6, -1, -1))


def test_top_down_parameters_do_not_grow_with_n_beyond_the_per_node_heads():
    def top_down_counts(n_nodes):
        model = lstm_model(n_nodes=n_nodes, max_nodes=12, top_down_hidden=8)
        lstm = sum(p.numel() for p in model.top_down.cell.parameters())
        heads = model.top_down.head_weight.numel() + model.top_down.head_bias.numel()
        total = sum(p.numel() for p in model.top_down.parameters())
        return lstm, heads, total

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
