"""A cost on the learned graph's edges, added to the training objective (docs/method.md §7).

Without it the ELBO rewards every edge the networks can use even slightly (the full graph's
family contains every subgraph), so the gate logits only learn "keep everything". Two costs,
each off by default (the paper's objective), in nats per unit of data (an image, or a step of a
sequence, like the objective):

  edge_penalty  lambda * sum_e sigma(alpha_e): lambda nats for each expected edge;
  edge_prior    a Bernoulli prior pi on every edge, weighted by prior_weight:
                prior_weight * sum_e KL(Bern(sigma(alpha_e)) || Bern(pi)).

(choice) Both are charged per unit of data. A prior on the graph counted once per data set
would add ~1/60000 nats per image to the per-image objective, nothing next to the edges' ELBO
gradients; weighting it per unit is a modelling decision, not a Bayesian prior, and its weight
is chosen like any other hyperparameter (on validation).

The reported losses stay the true ELBO; the cost is reported on its own.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from model.settings import NonNegative, Probability


@dataclass(frozen=True)
class StructurePrior:
    """config: arch.args.structure_prior; edge_prior null: no Bernoulli prior."""
    edge_penalty: NonNegative = 0.0
    edge_prior: Probability | None = None
    prior_weight: NonNegative = 1.0

    @property
    def active(self):
        return self.edge_penalty > 0 or (self.edge_prior is not None and self.prior_weight > 0)

    def cost(self, logits):
        """The cost of edges with logits alpha, in nats per unit (a 0-dim tensor)."""
        probs = torch.sigmoid(logits)
        cost = self.edge_penalty * probs.sum()
        if self.edge_prior is not None and self.prior_weight > 0:
            cost = cost + self.prior_weight * bernoulli_kl(logits, self.edge_prior).sum()
        return cost


def bernoulli_kl(logits, prior):
    """KL(Bern(sigmoid(logits)) || Bern(prior)) per edge, from the logits (stable at any alpha):
    q log(q / pi) + (1 - q) log((1 - q) / (1 - pi)), with log q = logsigmoid(alpha)."""
    q = torch.sigmoid(logits)
    return q * (F.logsigmoid(logits) - math.log(prior)) \
        + (1 - q) * (F.logsigmoid(-logits) - math.log(1 - prior))
