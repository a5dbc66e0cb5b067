"""The gates c_ji of the latent DAG's edges j -> i (j > i): learned, or fixed for the baselines.

Nodes are ordered topologically: node N-1 is the root, the candidate parents of node i are all
nodes j > i. Edges are stored grouped by child (all parents of node 0, then of node 1, ...) so
the gates of one node's parents are a contiguous slice, ordered j = i+1, ..., N-1.

Other edge sets (e.g. the cross-step edges of RecurrentGraphVAE, z_{t-1}^j -> z_t^i for all
j, i) are given as `edges`, a list of (parent, child) grouped by child in the same way.

Structures (method.md §1-2):
  learned  c_ji ~ Bernoulli(sigmoid(alpha_ji)), relaxed in training by a binary-concrete sample
           at temperature tau; discrete 1[sigmoid(alpha) > 0.5] in evaluation or once frozen.
  full     every gate fixed to 1 (FC-VAE).
  chain    only i+1 -> i fixed to 1 (Ladder VAE).
  identity only j -> i with j == i fixed to 1 (for cross-step edges: each node from itself).
  none     every gate fixed to 0 (independent nodes).
"""
import math

import torch
from torch import nn

STRUCTURES = ("learned", "full", "chain", "identity", "none")

# Uniform noise is kept inside (EPS, 1 - EPS) so that log(u) - log(1 - u) stays finite.
EPS = 1e-6


def candidate_edges(n_nodes):
    """[(parent j, child i)] for every j > i, grouped by child."""
    return [(j, i) for i in range(n_nodes) for j in range(i + 1, n_nodes)]


class EdgeGates(nn.Module):
    def __init__(self, n_nodes, structure="learned", init_prob=0.5, hard=False, edges=None):
        super().__init__()
        if structure not in STRUCTURES:
            raise ValueError(f"structure must be one of {STRUCTURES}, got {structure!r}")
        if not 0.0 < init_prob < 1.0:
            raise ValueError(f"gate init_prob must be in (0, 1), got {init_prob}")
        self.n_nodes = n_nodes
        self.structure = structure
        self.hard = hard
        self.edges = candidate_edges(n_nodes) if edges is None else list(edges)
        # parent_slices[i] = (start, end): the gates of node i's parents (i+1..N-1 by default).
        children = [i for _, i in self.edges]
        if children != sorted(children):
            raise ValueError("edges must be grouped by child node, in increasing order")
        self.parent_slices = [(children.index(i), len(children) - children[::-1].index(i))
                              if i in children else (0, 0) for i in range(n_nodes)]
        self.register_buffer("tau", torch.tensor(1.0))
        self.register_buffer("frozen", torch.tensor(False))  # saved with the checkpoint
        # Its Python copy, what forward() branches on: a branch on a tensor's value would
        # split a torch.compile'd training step into several graphs.
        self.is_frozen = False
        if structure == "learned":
            logit = math.log(init_prob / (1.0 - init_prob))
            self.logits = nn.Parameter(torch.full((len(self.edges),), logit))
        else:
            self.register_buffer("fixed", self._fixed_mask(structure))

    def _fixed_mask(self, structure):
        if structure == "full":
            return torch.ones(len(self.edges))
        if structure in ("chain", "identity"):
            offset = 1 if structure == "chain" else 0
            return torch.tensor([float(j == i + offset) for j, i in self.edges])
        return torch.zeros(len(self.edges))

    @property
    def learned(self):
        return self.structure == "learned"

    def probs(self):
        """sigmoid(alpha) for a learned graph, the fixed gates otherwise."""
        return torch.sigmoid(self.logits) if self.learned else self.fixed

    def discrete(self):
        """The evaluation graph: 1[sigmoid(alpha) > 0.5] (alpha > 0), or the fixed gates."""
        return (self.logits > 0).float() if self.learned else self.fixed

    def set_temperature(self, tau):
        self.tau.fill_(tau)

    def freeze(self):
        """Fix the graph to its discrete value; alpha gets no more gradient."""
        self.frozen.fill_(True)
        self.is_frozen = True

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self.is_frozen = bool(self.frozen)

    def forward(self, batch_size):
        """Gates for a batch, shape (batch_size, n_edges): one relaxed graph per example."""
        if not (self.learned and self.training and not self.is_frozen):
            return self.discrete().expand(batch_size, -1)
        u = torch.rand(batch_size, len(self.edges), device=self.logits.device)
        u = u.clamp(EPS, 1.0 - EPS)
        soft = torch.sigmoid((self.logits + torch.log(u) - torch.log1p(-u)) / self.tau)
        if not self.hard:
            return soft
        # Straight-through: the forward pass sees {0, 1}, the gradient is the relaxed one's.
        return (soft > 0.5).float() + soft - soft.detach()

    def parent_gates(self, gates, node):
        """The gates of node's parents (by default i+1..N-1), shape (batch, n_parents)."""
        start, end = self.parent_slices[node]
        return gates[:, start:end]

    def describe(self, node_dims):
        """The graph as plain data (for logs, graph.json and pictures)."""
        probs, kept = self.probs().tolist(), self.discrete().tolist()
        nodes = [{"id": i, "dims": node_dims, "root": i == self.n_nodes - 1}
                 for i in range(self.n_nodes)]
        edges = [{"src": j, "dst": i, "prob": p, "kept": bool(k)}
                 for (j, i), p, k in zip(self.edges, probs, kept)]
        return {"nodes": nodes, "edges": edges, "structure": self.structure}
