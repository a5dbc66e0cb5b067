"""The contract every model keeps, so that one objective and one evaluation loop serve them all.

`model(batch, n_samples=1, posterior_means=True)` draws n_samples latent samples for every
example and returns a dict of tensors with one row per (sample, example), sample-major (row
s * B + b):

  log_px          (R,)       log p(x | z) of the sampled z
  kl              (R, N)     the KL of every node, in closed form given its sampled parents
  log_ratio       (R,)       log p(z) - log q(z | x) of the sampled z (importance weights)
  units           (R,)       what the example's numbers are per: 1 for an image, its number
                             of valid steps for a sequence
  posterior_mean  (P, N, d)  E_q[z | x] of every data point (image or valid step), averaged
                             over the n_samples draws of the parents (active units); only
                             with posterior_means (training leaves it out: for sequences
                             picking the valid steps is a data-dependent shape, i.e. a host
                             sync and a break in a compiled graph)
  x_params        the decoder's output (the likelihood's parameters) of the sampled z, for
                             reconstructions: (R, D) for images; (B, T, params) for sequences,
                             only with posterior_means and one sample (n_samples rows of every
                             step would outweigh the rest of an importance-sampled pass)
  structure_cost  ()         only with a structure prior (model/structure_prior.py): its cost
                             in nats per unit, added to the training objective, not the ELBO

The ELBO of a row is log_px - kl.sum(-1) (model/objective.py); the importance-sampled
log-likelihood uses log_px + log_ratio (model/metrics.py).

Models with learned structure hold EdgeGates modules; the gates own their schedule, so the
trainer only calls start_epoch(epoch) and optimises parameter_groups() (or the network groups
and structure_parameters() with an optimiser of their own).
"""
import torch
from torch import nn

from model.edge_gates import EdgeGates


class BaseModel(nn.Module):
    def forward(self, batch, n_samples=1, posterior_means=True):
        raise NotImplementedError

    def derived_settings(self):
        """{setting: value} of the constructor's settings that a config may leave to be derived
        from others (null), as this model uses them: a run's saved config states them
        (experiment.build_model)."""
        return {}

    def gate_sets(self):
        """{name: EdgeGates} of every set of edge gates in the model."""
        return {name: m for name, m in self.named_modules() if isinstance(m, EdgeGates)}

    def start_epoch(self, epoch):
        """Set every gate set's temperature for `epoch` (and freeze it when its schedule says
        so); returns what changed, as messages for the log."""
        messages = []
        for name, gates in self.gate_sets().items():
            message = gates.start_epoch(epoch)
            if message:
                messages.append(f"{name}: {message}")
        return messages

    def parameter_groups(self, without_structure=False):
        """The network weights, and the structure logits with their own rate where the gate
        schedule gives one (torch.optim parameter groups; the first takes the optimiser's).
        without_structure: the network weights only (the logits have an optimiser of their own)."""
        groups, structure = [], {id(p) for p in self.structure_parameters()}
        for gates in self.gate_sets().values():
            if gates.schedule.lr is not None and gates.structure_parameters():
                groups.append({"params": gates.structure_parameters(), "lr": gates.schedule.lr})
        network = [p for p in self.parameters() if id(p) not in structure]
        if without_structure:
            return [{"params": network}]
        if not groups:  # the logits, if any, train with the network at the optimiser's rate
            return [{"params": list(self.parameters())}]
        return [{"params": network}] + groups

    def structure_parameters(self):
        """The learned structure logits of every gate set."""
        return [p for gates in self.gate_sets().values() for p in gates.structure_parameters()]

    @property
    def has_structure_cost(self):
        return any(g.learned and g.prior.active for g in self.gate_sets().values())

    def structure_cost(self):
        """The structure prior's cost of every learned gate set, nats per unit (0-dim)."""
        costs = [g.structure_cost() for g in self.gate_sets().values() if g.learned]
        return torch.stack(costs).sum() if costs else torch.zeros(())

    def with_structure_cost(self, output):
        """output, with the structure prior's cost when the model has one (the contract)."""
        if self.has_structure_cost:
            output["structure_cost"] = self.structure_cost()
        return output

    def edge_probs(self):
        """{edge name: probability} over every gate set (names say which set)."""
        return {name: p for gates in self.gate_sets().values()
                for name, p in gates.named_probs().items()}

    def n_parameters(self):
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def __str__(self):
        return f"{super().__str__()}\nTrainable parameters: {self.n_parameters():,}"
