"""Top-down networks: the prior of node i from the gated samples of its parents z_{>i}.

Both kinds take the same input, the parents multiplied by their gates, shape (B, N-1-i, d), and
return (mu_p, logvar_p) plus a state carried from node to node (root first):

  MLPTopDown   one MLP per non-root node (GraphVAE, method.md §1): fc(#parent dims, hidden)-
               BN-ReLU, fc(hidden, d)-ReLU, then the (mean, log-variance) heads fc(d, d) x 2.
  LSTMTopDown  one LSTM that walks the nodes root first (GraphLSTMVAE, method.md §3). Its
               input at node i is the gated parents, concatenated and zero-padded to the fixed
               width (max_nodes - 1) * d, so the LSTM's size does not depend on N; a per-node
               head projects its hidden state to (mean, log-variance).
"""
import torch
import torch.nn.functional as F
from torch import nn

from model import gaussian
from model.networks import mlp


def split_params(out):
    """(mean, clamped log-variance) from a head's output, in fp32 (also under bf16 autocast)."""
    mu, logvar = out.float().chunk(2, dim=-1)
    return mu, gaussian.clamp_logvar(logvar)


class MLPTopDown(nn.Module):
    def __init__(self, n_nodes, node_dim, hidden):
        super().__init__()
        self.nets = nn.ModuleList(
            nn.Sequential(mlp([(n_nodes - 1 - i) * node_dim, hidden, node_dim],
                              final_activation=True),
                          nn.Linear(node_dim, 2 * node_dim))
            for i in range(n_nodes - 1))

    def initial_state(self, batch, device):
        return None

    def forward(self, node, gated_parents, state):
        return split_params(self.nets[node](gated_parents.flatten(1))), state


class LSTMTopDown(nn.Module):
    def __init__(self, n_nodes, node_dim, hidden, max_nodes=None):
        super().__init__()
        max_nodes = max_nodes or n_nodes
        if max_nodes < n_nodes:
            raise ValueError(f"max_nodes ({max_nodes}) must be at least n_nodes ({n_nodes})")
        self.input_width = (max_nodes - 1) * node_dim
        self.hidden = hidden
        self.cell = nn.LSTMCell(self.input_width, hidden)
        bound = hidden ** -0.5
        # Per-node heads: weight (N-1, hidden, 2d), applied to one node at a time.
        self.head_weight = nn.Parameter(
            torch.empty(n_nodes - 1, hidden, 2 * node_dim).uniform_(-bound, bound))
        self.head_bias = nn.Parameter(torch.empty(n_nodes - 1, 2 * node_dim).uniform_(-bound, bound))

    def initial_state(self, batch, device):
        zeros = torch.zeros(batch, self.hidden, device=device)
        return zeros, zeros

    def forward(self, node, gated_parents, state):
        flat = gated_parents.flatten(1)
        padded = F.pad(flat, (0, self.input_width - flat.shape[1]))
        h, c = self.cell(padded, state)
        return split_params(h @ self.head_weight[node] + self.head_bias[node]), (h, c)


TOP_DOWN = {"mlp": MLPTopDown, "lstm": LSTMTopDown}
