"""Top-down networks: (mu, logvar) of node i from the gated samples of its parents z_{>i}.

Both kinds take the parents multiplied by their gates, shape (B, N-1-i, d), ordered
i+1, ..., N-1, and return (mu, logvar), each (B, d):

  MLPTopDown   one MLP per non-root node (GraphVAE, docs/method.md §1): fc(#parent dims, hidden)-
               BN-ReLU, fc(hidden, d)-ReLU, then the (mean, log-variance) heads fc(d, d) x 2.
               (choice: a ReLU after fc(hidden, d), as in the bottom-up heads; the paper's
               appendix lists none there, which would make the heads a linear composition.)
  LSTMTopDown  one LSTM shared by all nodes (GraphLSTMVAE, docs/method.md §3). For node i it reads
               the gated parents as a short sequence, root first (c_ji * z_j for j = N-1 down
               to i+1), from a fresh zero state; a per-node head maps its last hidden state to
               (mean, log-variance). Nothing flows between nodes except through kept edges:
               with c_ji = 0 the input of that step is zero whatever z_j is.
"""
import torch
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
            nn.Sequential(mlp([(n_nodes - 1 - i) * node_dim, hidden, node_dim]), nn.ReLU(),
                          nn.Linear(node_dim, 2 * node_dim))
            for i in range(n_nodes - 1))

    def forward(self, node, gated_parents):
        return split_params(self.nets[node](gated_parents.flatten(1)))


class LSTMTopDown(nn.Module):
    def __init__(self, n_nodes, node_dim, hidden):
        super().__init__()
        self.lstm = nn.LSTM(node_dim, hidden, batch_first=True)
        bound = hidden ** -0.5
        # Per-node heads: weight (N-1, hidden, 2d), applied to one node at a time.
        self.head_weight = nn.Parameter(
            torch.empty(n_nodes - 1, hidden, 2 * node_dim).uniform_(-bound, bound))
        self.head_bias = nn.Parameter(torch.empty(n_nodes - 1, 2 * node_dim).uniform_(-bound, bound))

    def forward(self, node, gated_parents):
        root_first = gated_parents.flip(1)
        _, (h, _) = self.lstm(root_first)  # a fresh zero state for every node
        return split_params(h[-1] @ self.head_weight[node] + self.head_bias[node])


TOP_DOWN = {"mlp": MLPTopDown, "lstm": LSTMTopDown}
