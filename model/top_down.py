"""Top-down networks: (mu, logvar) of node i from the gated samples of its parents z_{>i}.

Each kind is registered (model/registry.TOP_DOWN) as a class of (n_nodes, node_dim,
hidden); called as network(node, gated_parents), it takes the parents multiplied by their
gates, shape (B, N-1-i, d), ordered i+1, ..., N-1, and returns (mu, logvar), each (B, d):

  MLPTopDown   one MLP per non-root node (GraphVAE, docs/method.md §1): fc(#parent dims, hidden)-
               BN-ReLU, fc(hidden, d)-ReLU, then the (mean, log-variance) heads fc(d, d) x 2.
               (choice: a ReLU after fc(hidden, d), as in the bottom-up heads; the paper's
               appendix lists none there, which would make the heads a linear composition.)
  PairedMLPTopDown  the prior's and the inference network's MLPTopDown (TD^p_i and TD^q_i)
               as one grouped network per node: the same maths and initialisation, run as
               half as many operators; pair() gives both estimates.
  LSTMTopDown  one LSTM shared by all nodes (GraphLSTMVAE, docs/method.md §3). For node i it reads
               the gated parents as a short sequence, root first (c_ji * z_j for j = N-1 down
               to i+1), from a fresh zero state; a per-node head maps its last hidden state to
               (mean, log-variance). Nothing flows between nodes except through kept edges:
               with c_ji = 0 the input of that step is zero whatever z_j is.
"""
import torch
from torch import nn

from model import gaussian
from model.networks import GroupedLinear, GroupMajor, mlp
from model.registry import TOP_DOWN


def split_params(out):
    """(mean, clamped log-variance) from a head's output, in fp32 (also under bf16 autocast)."""
    mu, logvar = out.float().chunk(2, dim=-1)
    return mu, gaussian.clamp_logvar(logvar)


@TOP_DOWN.register("mlp")
class MLPTopDown(nn.Module):
    def __init__(self, n_nodes, node_dim, hidden):
        super().__init__()
        self.nets = nn.ModuleList(
            nn.Sequential(mlp([(n_nodes - 1 - i) * node_dim, hidden, node_dim]), nn.ReLU(),
                          nn.Linear(node_dim, 2 * node_dim))
            for i in range(n_nodes - 1))

    def forward(self, node, gated_parents):
        return split_params(self.nets[node](gated_parents.flatten(1)))


class PairedMLPTopDown(nn.Module):
    """Two MLPTopDowns, the prior's (group 0) and the inference network's (group 1), as one
    grouped network per node. Both read the same gated parents, so their first layers are one
    fc(#parent dims, 2 * hidden) and their BatchNorms one over the 2 * hidden features (BN is
    per feature: the same as two), the later layers grouped matmuls of two groups."""

    def __init__(self, n_nodes, node_dim, hidden):
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # these initial draws are replaced below
            self.nets = nn.ModuleList(
                nn.Sequential(nn.Linear((n_nodes - 1 - i) * node_dim, 2 * hidden),
                              nn.BatchNorm1d(2 * hidden), nn.ReLU(inplace=True), GroupMajor(2),
                              GroupedLinear(2, hidden, node_dim), nn.ReLU(),
                              GroupedLinear(2, node_dim, 2 * node_dim))
                for i in range(n_nodes - 1))
        # Initialised as the two separate networks were, from the same draws in the same order,
        # so a seed gives the model it gave before the networks were grouped.
        prior, inference = (MLPTopDown(n_nodes, node_dim, hidden) for _ in range(2))
        self.load_separate(prior.nets.state_dict(), inference.nets.state_dict())

    def load_separate(self, prior, inference):
        """Set every node's weights from two MLPTopDowns' nets state dicts (copied in place:
        the entries of state_dict() share the parameters' storage)."""
        own = self.nets.state_dict()
        with torch.no_grad():
            for i in range(len(self.nets)):
                for new, (old, merge) in SEPARATE_LAYOUT.items():
                    own[f"{i}.{new}"].copy_(MERGES[merge](prior[f"{i}.{old}"],
                                                          inference[f"{i}.{old}"]))

    def pair(self, node, gated_parents):
        """((mu_p, logvar_p), (mu_q, logvar_q)) of node: the prior and the inference estimate."""
        mu, logvar = split_params(self.nets[node](gated_parents.flatten(1)))  # (2, B, d) each
        return (mu[0], logvar[0]), (mu[1], logvar[1])

    def forward(self, node, gated_parents):
        """The prior's (mu, logvar) (ancestral sampling)."""
        return self.pair(node, gated_parents)[0]


# How the weights of two MLPTopDowns (TD^p, TD^q) map onto one PairedMLPTopDown: key in
# PairedMLPTopDown.nets[i] -> (key in each MLPTopDown.nets[i], how the two merge).
SEPARATE_LAYOUT = {
    "0.weight": ("0.0.weight", "cat"), "0.bias": ("0.0.bias", "cat"),
    "1.weight": ("0.1.weight", "cat"), "1.bias": ("0.1.bias", "cat"),
    "1.running_mean": ("0.1.running_mean", "cat"), "1.running_var": ("0.1.running_var", "cat"),
    "1.num_batches_tracked": ("0.1.num_batches_tracked", "first"),  # equal: counted together
    "4.weight": ("0.3.weight", "stack_transposed"), "4.bias": ("0.3.bias", "stack"),
    "6.weight": ("2.weight", "stack_transposed"), "6.bias": ("2.bias", "stack"),
}
MERGES = {"cat": lambda p, q: torch.cat([p, q]), "stack": lambda p, q: torch.stack([p, q]),
          "stack_transposed": lambda p, q: torch.stack([p.T, q.T]), "first": lambda p, q: p}


@TOP_DOWN.register("lstm")
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

