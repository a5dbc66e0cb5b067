"""The gates c_ji of the latent DAG's edges j -> i (j > i), and how they are trained.

Nodes are ordered topologically: node N-1 is the root, the candidate parents of node i are all
nodes j > i. Edges are stored grouped by child (all parents of node 0, then of node 1, ...) so
the gates of one node's parents are a contiguous slice, ordered j = i+1, ..., N-1.
Other edge sets (e.g. the cross-step edges of RecurrentGraphVAE, z_{t-1}^j -> z_t^i for all
j, i) are given as `edges`, a list of (parent, child) grouped by child in the same way.

Structures (docs/method.md §1-2):
  learned     c_ji ~ Bernoulli(sigmoid(alpha_ji)), relaxed in training by a binary-concrete
              sample at temperature tau; discrete 1[sigmoid(alpha) > 0.5] in evaluation and
              once the graph is frozen.
  noisy_full  the gate-noise control: trained with the same binary-concrete samples as
              `learned` at a fixed, non-learned probability (gate_init_prob), the same
              temperature schedule and freeze epoch; every edge kept in evaluation and once
              frozen. It separates "learning the structure" from "training with noisy gates".
  full        every gate fixed to 1 (FC-VAE).
  chain       only i+1 -> i fixed to 1 (Ladder VAE).
  identity    only j -> i with j == i fixed to 1 (cross-step edges: each node from itself).
  none        every gate fixed to 0 (independent nodes).

The gates own their schedule (GateSchedule): the temperature at each epoch, the epoch after
which the graph is frozen, and the learning rate of the logits; and the cost on their edges
(model/structure_prior.py), off by default.

A structure is registered (model/registry.STRUCTURES) as a function of the edges [(j, i)]
that returns their fixed gates (evaluation gates, for noisy_full), or None for `learned`;
a researcher's own fixed graph is one more such function.

An edge whose probability is within UNDECIDED_BAND of 0.5 is reported as undecided: the
evaluation graph still keeps it or drops it by 1[sigmoid(alpha) > 0.5], but nothing was learned.
"""
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

import torch
from torch import nn

from model.registry import STRUCTURES
from model.settings import Positive
from model.structure_prior import StructurePrior

RELAXED = ("learned", "noisy_full")  # structures trained with binary-concrete samples

# Uniform noise is kept inside (EPS, 1 - EPS) so that log(u) - log(1 - u) stays finite.
EPS = 1e-6
TAU_RANGE = "[1e-6, 1e6]"  # the temperatures a gate schedule may reach
UNDECIDED_BAND = 0.05  # |sigmoid(alpha) - 0.5| below this: the edge is reported as undecided


@dataclass(frozen=True)
class GateSchedule:
    """How relaxed gates are trained (config: arch.args.gate_schedule, any of these keys).

    tau(epoch) = max(tau_floor, tau_init * rate^(epoch - 1)), where rate is tau_rate if given
    (the paper: 0.999, made for 2000 epochs) or else the rate that reaches tau_floor at epoch
    anneal_epochs. After freeze_epoch the graph is fixed to its discrete value and the
    networks keep training on it (null: never frozen). lr: the logits' own learning rate
    (null: the optimizer's). The temperature divides float32 logits: it stays far from
    overflow and underflow (TAU_RANGE), and it may only fall.
    """
    tau_init: Annotated[float, TAU_RANGE] = 1.0
    tau_floor: Annotated[float, TAU_RANGE] = 0.05
    anneal_epochs: Annotated[int, "[1, inf)"] | None = 50
    tau_rate: Annotated[float, "(0, 1]"] | None = None
    freeze_epoch: Annotated[int, "[0, inf)"] | None = 50
    lr: Positive | None = None

    def __post_init__(self):
        if self.tau_floor > self.tau_init:
            raise ValueError(f"tau_floor ({self.tau_floor}) must not exceed tau_init "
                             f"({self.tau_init})")
        if self.tau_rate is None and self.anneal_epochs is None:
            raise ValueError("give tau_rate or anneal_epochs")

    def temperature(self, epoch):
        rate = self.tau_rate
        if rate is None:
            if self.anneal_epochs == 1:  # at the floor from the first epoch
                return self.tau_floor
            rate = (self.tau_floor / self.tau_init) ** (1.0 / (self.anneal_epochs - 1))
        return max(self.tau_floor, self.tau_init * rate ** (epoch - 1))

    def frozen_at(self, epoch):
        return self.freeze_epoch is not None and epoch > self.freeze_epoch


@STRUCTURES.register()
def learned(edges):
    return None  # the gates are parameters


@STRUCTURES.register()
def noisy_full(edges):
    return [1.0] * len(edges)


@STRUCTURES.register()
def full(edges):
    return [1.0] * len(edges)


@STRUCTURES.register()
def chain(edges):
    return [float(j == i + 1) for j, i in edges]


@STRUCTURES.register()
def identity(edges):
    return [float(j == i) for j, i in edges]


@STRUCTURES.register()
def none(edges):
    return [0.0] * len(edges)


def candidate_edges(n_nodes):
    """[(parent j, child i)] for every j > i, grouped by child."""
    return [(j, i) for i in range(n_nodes) for j in range(i + 1, n_nodes)]


def edge_status(prob, kept, learned):
    if learned and abs(prob - 0.5) < UNDECIDED_BAND:
        return "undecided"
    return "kept" if kept else "dropped"


def bernoulli_entropy(probs):
    """Entropy in nats of independent Bernoulli(probs), summed."""
    p = probs.clamp(EPS, 1 - EPS)
    return float(-(p * p.log() + (1 - p) * (1 - p).log()).sum())


class EdgeGates(nn.Module):
    def __init__(self, n_nodes, structure="learned", init_prob=0.5, hard=False, edges=None,
                 schedule=None, name_format="z{j}->z{i}", prior=None):
        super().__init__()
        self.n_nodes, self.structure, self.hard = n_nodes, structure, hard
        self.schedule = schedule or GateSchedule()
        self.prior = prior or StructurePrior()
        self.forced = None  # a graph that replaces the gates for a while (forcing_graph)
        self.edges = candidate_edges(n_nodes) if edges is None else list(edges)
        self.names = [name_format.format(j=j, i=i) for j, i in self.edges]
        # parent_slices[i] = (start, end): the gates of node i's parents (i+1..N-1 by default).
        children = [i for _, i in self.edges]
        if children != sorted(children):
            raise ValueError("edges must be grouped by child node, in increasing order")
        self.parent_slices = [(children.index(i), len(children) - children[::-1].index(i))
                              if i in children else (0, 0) for i in range(n_nodes)]
        self.register_buffer("tau", torch.tensor(self.schedule.temperature(1)))
        self.register_buffer("frozen", torch.tensor(False))  # saved with the checkpoint
        # The edge entropy when the graph was frozen: how undecided the structure still was
        # (-1 until then).
        self.register_buffer("entropy_at_freeze", torch.tensor(-1.0))
        # Each edge's value (nats, trainer/edge_values.py) measured when the graph froze,
        # before the networks adapted to it (once values_measured).
        self.register_buffer("values_at_freeze", torch.zeros(len(self.edges)))
        self.register_buffer("values_measured", torch.tensor(False))
        # Its Python copy, what forward() branches on: a branch on a tensor's value would
        # split a torch.compile'd training step into several graphs.
        self.is_frozen = False
        logits = torch.full((len(self.edges),), math.log(init_prob / (1.0 - init_prob)))
        if structure == "learned":
            self.logits = nn.Parameter(logits)
        elif structure == "noisy_full":
            self.register_buffer("logits", logits)  # fixed: not learned
        if structure != "learned":
            fixed = STRUCTURES[structure](self.edges)
            if fixed is None or len(fixed) != len(self.edges):
                raise ValueError(f"structure {structure!r} gives no fixed gate for each of the "
                                 f"{len(self.edges)} edges")
            self.register_buffer("fixed", torch.tensor(fixed, dtype=torch.float32).reshape(-1))

    @property
    def learned(self):
        return self.structure == "learned"

    @property
    def relaxed(self):
        """Whether training uses binary-concrete samples (until the graph is frozen)."""
        return self.structure in RELAXED

    def probs(self):
        """sigmoid(alpha) of a learned graph, the fixed gates otherwise."""
        return torch.sigmoid(self.logits) if self.learned else self.fixed

    def discrete(self):
        """The evaluation graph: 1[sigmoid(alpha) > 0.5] (alpha > 0), or the fixed gates."""
        return (self.logits > 0).float() if self.learned else self.fixed

    def named_probs(self):
        return dict(zip(self.names, self.probs().tolist()))

    # -- the schedule -------------------------------------------------------------------------
    def start_epoch(self, epoch):
        """Set tau for `epoch`; freeze the graph once past the freeze epoch. Returns a message
        when it freezes now, else None."""
        self.tau.fill_(self.schedule.temperature(epoch))
        if self.relaxed and not self.is_frozen and self.schedule.frozen_at(epoch):
            self.freeze()
            return f"graph frozen to its discrete value from epoch {epoch} on"
        return None

    def freeze(self):
        """Fix the graph to its discrete value; alpha gets no more gradient."""
        if self.learned:
            self.entropy_at_freeze.fill_(bernoulli_entropy(self.probs().detach()))
        self.frozen.fill_(True)
        self.is_frozen = True

    def structure_parameters(self):
        return [self.logits] if self.learned else []

    def structure_cost(self):
        """The structure prior's cost of this graph, nats per unit (0-dim). Once the graph is
        frozen it is reported but gives no gradient: the logits must stay where they froze."""
        if not self.learned:
            return torch.zeros((), device=self.tau.device)
        cost = self.prior.cost(self.logits)
        return cost.detach() if self.is_frozen else cost

    def record_values_at_freeze(self, values):
        """Keep {edge name: value} measured at the freeze (saved with the checkpoint)."""
        self.values_at_freeze.copy_(torch.tensor([values[name] for name in self.names]))
        self.values_measured.fill_(True)

    def measured_values_at_freeze(self):
        """{edge name: value} measured at the freeze, {} before."""
        if not self.values_measured:
            return {}
        return dict(zip(self.names, self.values_at_freeze.tolist()))

    @contextmanager
    def forcing_graph(self, graph):
        """Within the block, `graph` (n_edges,) of 0/1 replaces the gates in training and in
        evaluation mode (for edge values: the same networks with one edge more or less)."""
        previous, self.forced = self.forced, graph.to(self.tau.device, torch.float32)
        try:
            yield
        finally:
            self.forced = previous

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.is_frozen = bool(self.frozen)

    # -- the gates ----------------------------------------------------------------------------
    def forward(self, batch_size):
        """Gates for a batch, shape (batch_size, n_edges): one relaxed graph per example."""
        if self.forced is not None:
            return self.forced.expand(batch_size, -1)
        if not (self.relaxed and self.training and not self.is_frozen):
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
        """The graph as plain data (for logs, graph.json and pictures). An edge's status is
        kept, dropped or (learned graphs only) undecided; `kept` is its evaluation gate."""
        probs, kept = self.probs().tolist(), self.discrete().tolist()
        nodes = [{"id": i, "dims": node_dims, "root": i == self.n_nodes - 1}
                 for i in range(self.n_nodes)]
        edges = [{"src": j, "dst": i, "name": name, "prob": p, "kept": bool(k),
                  "status": edge_status(p, k, self.learned)}
                 for (j, i), name, p, k in zip(self.edges, self.names, probs, kept)]
        values = self.measured_values_at_freeze()
        for edge in edges:
            if edge["name"] in values:
                edge["value_at_freeze"] = values[edge["name"]]
        graph = {"nodes": nodes, "edges": edges, "structure": self.structure,
                 "edges_dropped": sum(not k for k in kept)}
        if self.learned:
            entropy = float(self.entropy_at_freeze)
            graph["entropy_at_freeze"] = round(entropy, 4) if entropy >= 0 else None
        return graph
