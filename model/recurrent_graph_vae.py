"""RecurrentGraphVAE (docs/method.md §4): a VRNN whose latent at every step is a Graph VAE.

At step t the nodes z_t^0..z_t^{N-1} (node N-1 the root) have two kinds of gated parents:
  * within-step: the higher nodes of the same step, gates c_ji shared across time
    (the same EdgeGates as GraphVAE);
  * cross-step: every node of step t-1, gates c'_ji (an EdgeGates over N x N edges).
A deterministic state h_t = GRU(h_{t-1}, [phi_x(x_t), phi_z(z_t)]) conditions prior,
encoder and decoder, as in the VRNN (choice: a GRU cell).

  prior     p(z_t^i | .) = N(P_i([h_{t-1}, gated z_t^{>i}, gated z_{t-1}]))  for every node
  encoder   bottom-up estimates (mu_hat, var_hat) of every node from [phi_x(x_t), h_{t-1}];
            the root's posterior is its estimate, every other node's is the precision-weighted
            fusion with its prior, computed top-down from the posterior samples (as GraphVAE)
  decoder   p(x_t | z_t, h_{t-1}) from [phi_z(z_t), h_{t-1}]

Per sequence, log p(x|z), the KL and log p(z) - log q(z) are summed over its valid steps
(masks for padding) and `units` is its number of valid steps, so the objective is in nats per
step. With N = 1 and cross_structure "none" it is the VRNN.
A batch is {"x": (B, T, D), "mask": (B, T)} plus, for truncated BPTT, the "state" that the
previous chunk returned.
"""
from typing import Annotated

import torch
from torch import nn

from model import gaussian
from model.base_model import BaseModel
from model.edge_gates import EdgeGates, GateSchedule
from model.graph_vae import MAX_NODES
from model.likelihoods import build_likelihood
from model.networks import mlp
from model.registry import LIKELIHOODS, MODELS, STRUCTURES, one_of
from model.settings import Probability, Size, settings
from model.structure_prior import StructurePrior
from model.top_down import split_params


@MODELS.register()
class RecurrentGraphVAE(BaseModel):
    def __init__(self, input_dim: int = 3, n_nodes: Annotated[int, f"[1, {MAX_NODES}]"] = 3,
                 node_dim: Size = 8, structure: one_of(STRUCTURES) = "learned",
                 cross_structure: one_of(STRUCTURES) = "learned",
                 gate_init_prob: Probability = 0.5, hard_gates: bool = False,
                 gate_schedule: GateSchedule | None = None, rnn_hidden: Size = 128,
                 hidden: Size = 128, feature_dim: Size = 64,
                 likelihood: one_of(LIKELIHOODS) = "strokes", n_mixtures: Size = 5,
                 structure_prior: StructurePrior | None = None):
        super().__init__()
        if cross_structure == "chain":  # a chain orders the nodes of one step, not two steps
            raise ValueError("cross_structure 'chain' has no meaning across steps; use "
                             "'identity' (each node from itself) or another structure")
        self.input_dim = input_dim  # recorded in checkpoints: sample.py rebuilds from it
        self.n_nodes, self.node_dim, self.rnn_hidden = n_nodes, node_dim, rnn_hidden
        options = {"n_mixtures": n_mixtures} if likelihood == "strokes" else {}
        self.likelihood = build_likelihood(likelihood, input_dim, **options)

        schedule = settings(GateSchedule, gate_schedule)
        prior = settings(StructurePrior, structure_prior)  # on both kinds of edges
        self.gates = EdgeGates(n_nodes, structure, gate_init_prob, hard_gates, schedule=schedule,
                               prior=prior)
        cross_edges = [(j, i) for i in range(n_nodes) for j in range(n_nodes)]
        self.cross_gates = EdgeGates(n_nodes, cross_structure, gate_init_prob, hard_gates,
                                     edges=cross_edges, schedule=schedule,
                                     name_format="z{j}(t-1)->z{i}", prior=prior)
        # No BatchNorm: padded steps would enter its statistics.
        self.phi_x = mlp([input_dim, hidden, feature_dim], True, batch_norm=False)
        self.phi_z = mlp([n_nodes * node_dim, hidden, feature_dim], True, batch_norm=False)
        self.rnn = nn.GRUCell(2 * feature_dim, rnn_hidden)
        self.bottom_up = mlp([feature_dim + rnn_hidden, hidden, n_nodes * 2 * node_dim],
                             batch_norm=False)
        self.priors = nn.ModuleList(
            mlp([rnn_hidden + (n_nodes - 1 - i) * node_dim + n_nodes * node_dim, hidden,
                 2 * node_dim], batch_norm=False) for i in range(n_nodes))
        self.decoder = mlp([feature_dim + rnn_hidden, hidden, self.likelihood.n_params],
                           batch_norm=False)

    # -- one step ---------------------------------------------------------------------------
    def initial_state(self, batch, device):
        return (torch.zeros(batch, self.rnn_hidden, device=device),
                torch.zeros(batch, self.n_nodes, self.node_dim, device=device))

    def prior_params(self, node, h, z, z_prev, gates, cross_gates):
        """(mu_p, logvar_p) of one node from h_{t-1}, its gated same-step and previous-step
        parents; z is the list of this step's samples with the nodes above filled in."""
        inputs = [h]
        if node < self.n_nodes - 1:
            within = self.gates.parent_gates(gates, node).unsqueeze(-1)
            inputs.append((within * torch.stack(z[node + 1:], dim=1)).flatten(1))
        cross = self.cross_gates.parent_gates(cross_gates, node).unsqueeze(-1)
        inputs.append((cross * z_prev).flatten(1))
        return split_params(self.priors[node](torch.cat(inputs, dim=1)))

    def latent_step(self, h, z_prev, gates, cross_gates, estimates=None):
        """Sample z_t root first. With bottom-up estimates: from the posterior (root: its
        estimate; others: fused with the prior); without: from the prior.
        Returns z (B, N, d), KL (B, N), log p(z_t) - log q(z_t) (B,) and the posterior
        means (B, N, d) (None for the prior)."""
        n = self.n_nodes
        z, kl, mean, log_ratio = [None] * n, [None] * n, [None] * n, 0.0
        for i in range(n - 1, -1, -1):
            mu_p, logvar_p = self.prior_params(i, h, z, z_prev, gates, cross_gates)
            if estimates is None:
                z[i] = gaussian.sample(mu_p, logvar_p)
                continue
            mu_q, logvar_q = estimates[0][:, i], estimates[1][:, i]
            if i < n - 1:
                mu_q, logvar_q = gaussian.fuse(mu_q, logvar_q, mu_p, logvar_p)
            z[i], mean[i] = gaussian.sample(mu_q, logvar_q), mu_q
            kl[i] = gaussian.kl_divergence(mu_q, logvar_q, mu_p, logvar_p)
            log_ratio = log_ratio + gaussian.log_density(z[i], mu_p, logvar_p) \
                - gaussian.log_density(z[i], mu_q, logvar_q)
        z = torch.stack(z, dim=1)
        if estimates is None:
            return z, None, None, None
        return z, torch.stack(kl, dim=1), log_ratio, torch.stack(mean, dim=1)

    def bottom_up_estimates(self, features, h):
        out = self.bottom_up(torch.cat([features, h], dim=1))
        return split_params(out.view(-1, self.n_nodes, 2 * self.node_dim))

    def decode(self, z, h):
        return self.decoder(torch.cat([self.phi_z(z.flatten(1)), h], dim=1)).float()

    def next_state(self, features, z, h):
        """h_t = GRU(h_{t-1}, [phi_x(x_t), phi_z(z_t)]), in fp32 also under bf16 autocast: on
        a GPU autocast runs the GRU cell in bf16, which would carry the recurrent state in
        bf16 through every step and chunk (on the CPU it stays fp32 anyway)."""
        inputs = torch.cat([features, self.phi_z(z.flatten(1))], dim=1)
        with torch.autocast(h.device.type, enabled=False):
            return self.rnn(inputs.float(), h.float())

    # -- sequences (contract: model/base_model.py) ------------------------------------------
    def forward(self, batch, n_samples=1, posterior_means=True):
        """Per-sequence sums over valid steps, plus the final state to continue with (TBPTT)."""
        x, mask = batch["x"], batch["mask"]
        if n_samples > 1:  # whole latent trajectories, n_samples per sequence
            x, mask = x.repeat(n_samples, 1, 1), mask.repeat(n_samples, 1)
        weight = mask.to(x.dtype)
        size, length = x.shape[:2]
        h, z_prev = batch.get("state") or self.initial_state(size, x.device)
        gates, cross_gates = self.gates(size), self.cross_gates(size)
        log_px, kl, log_ratio, means, decoded = 0.0, 0.0, 0.0, [], []
        for t in range(length):
            features = self.phi_x(x[:, t])
            z, kl_t, ratio_t, mean_t = self.latent_step(h, z_prev, gates, cross_gates,
                                                        self.bottom_up_estimates(features, h))
            m = weight[:, t]
            x_params = self.decode(z, h)
            log_px = log_px + m * self.likelihood(x_params, x[:, t])
            if posterior_means and n_samples == 1:  # the reconstructions (few rows: kept)
                decoded.append(x_params)
            kl = kl + m.unsqueeze(1) * kl_t
            log_ratio = log_ratio + m * ratio_t
            means.append(mean_t)
            h, z_prev = self.next_state(features, z, h), z
        output = {"log_px": log_px, "kl": kl, "log_ratio": log_ratio, "units": weight.sum(1),
                  "state": (h, z_prev)}
        if posterior_means:  # the valid steps' rows
            means = torch.stack(means, dim=1)  # (S*B, T, N, d)
            output["posterior_mean"] = means.view(n_samples, -1, *means.shape[1:]).mean(0)[
                batch["mask"]]
        if decoded:
            output["x_params"] = torch.stack(decoded, dim=1)  # (B, T, params)
        return self.with_structure_cost(output)

    @torch.no_grad()
    def generate(self, n, length):
        """n sequences of `length` steps sampled from the model (discrete graphs)."""
        device = next(self.parameters()).device
        h, z_prev = self.initial_state(n, device)
        gates, cross_gates = self.gates(n), self.cross_gates(n)
        steps = []
        for _ in range(length):
            z, _, _, _ = self.latent_step(h, z_prev, gates, cross_gates)
            x_t = self.likelihood.sample(self.decode(z, h))
            h, z_prev = self.next_state(self.phi_x(x_t), z, h), z
            steps.append(x_t)
        return torch.stack(steps, dim=1)

    def describe_graph(self):
        graph = self.gates.describe(self.node_dim)
        cross = self.cross_gates.describe(self.node_dim)
        graph["cross_edges"] = cross["edges"]
        graph["cross_structure"] = cross["structure"]
        graph["edges_dropped"] += cross["edges_dropped"]
        return graph
