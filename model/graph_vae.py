"""GraphVAE (docs/method.md §1) and, as configurations of it, the FC-VAE, Ladder VAE and VAE (§2).

Latents: N nodes of d dims (node_dim, or latent_dim M = N * d); node N-1 is the root, the
candidate parents of node i are j > i.

Generative model: p(z_root) = N(0, I); p(z_i | parents) = N(TD^p_i(concat_j c_ji * z_j));
p(x | z) from the decoder on concat(z_1..z_N).
Inference (Ladder-VAE style): the encoder's features give every node a bottom-up estimate
(mu_hat, var_hat). The root's posterior is that estimate. Going down from N-2 to 0, the gated
*posterior samples* of node i's parents go through two top-down networks of the same shape
(the paper's appendix A.2.1: shared architecture, "MLPs optimized independently"): TD^q_i
gives the estimate that is fused with the bottom-up one by precision weighting, TD^p_i the
prior p(z_i | parents); as MLPs the two run as one grouped network per node
(model/top_down.py: PairedMLPTopDown). share_top_down=True uses one set for both (the Ladder
VAE's form).
Every node's KL is taken in closed form given its sampled parents; the root's prior is
N(0, I), the same formula with mu_p = 0, logvar_p = 0.
The encoder, decoder, top-down networks, likelihood and structure are named by the config from
their registries (model/registry.py): encoder and decoder "mlp" (the paper's) or "conv"
(model/conv_networks.py); decoder "block" ties node i to its own block of outputs
(model/networks.py: BlockDecoder). structure_prior puts a cost on the learned edges
(model/structure_prior.py).
"""
from typing import Annotated

import torch
from torch import nn

from model import gaussian
from model.base_model import BaseModel
from model import conv_networks  # noqa: F401  (registers the "conv" encoder and decoder)
from model.edge_gates import EdgeGates, GateSchedule
from model.likelihoods import build_likelihood
from model.networks import GroupedLinear, GroupMajor
from model.registry import (DECODERS, ENCODERS, LIKELIHOODS, MODELS, STRUCTURES, TOP_DOWN,
                            one_of)
from model.settings import Probability, Size, Sizes, settings
from model.structure_prior import StructurePrior
from model.top_down import PairedMLPTopDown, split_params

# Nodes are sampled one after another, each with its own networks, and their edges grow as
# N^2: 32 nodes (496 edges) is six times the paper's 5, and more than any config asks for.
MAX_NODES = 32
NODE_DIM = 16  # the paper's node size d, when a config gives neither node_dim nor latent_dim


@MODELS.register()
class GraphVAE(BaseModel):
    def __init__(self, input_dim: int = 784, n_nodes: Annotated[int, f"[1, {MAX_NODES}]"] = 5,
                 node_dim: Size | None = None, latent_dim: Size | None = None,
                 structure: one_of(STRUCTURES) = "learned", gate_init_prob: Probability = 0.5,
                 hard_gates: bool = False, gate_schedule: GateSchedule | None = None,
                 share_top_down: bool = False, encoder_hidden: Sizes = (512, 512, 512),
                 feature_dim: Size = 256, bottom_up_hidden: Size = 256,
                 top_down_hidden: Size = 256, decoder_hidden: Sizes = (512, 512, 512),
                 likelihood: one_of(LIKELIHOODS) = "bernoulli",
                 top_down: one_of(TOP_DOWN) = "mlp", decoder: one_of(DECODERS) = "mlp",
                 structure_prior: StructurePrior | None = None,
                 encoder: one_of(ENCODERS) = "mlp"):
        super().__init__()
        node_dim = split_latent_dims(latent_dim, n_nodes, node_dim)
        # The size a config leaves null is stated in the saved config, the one it gave is not
        # doubled: with both there, an edit of n_nodes or of one size would contradict the other.
        self.derived = {} if latent_dim is not None else {"node_dim": node_dim}
        self.input_dim = input_dim  # recorded in checkpoints: sample.py rebuilds from it
        self.n_nodes, self.node_dim = n_nodes, node_dim
        self.likelihood = build_likelihood(likelihood, input_dim)

        self.encoder = ENCODERS[encoder](input_dim, encoder_hidden, feature_dim)
        # Bottom-up heads of all nodes at once: fc(feature, hidden)-BN-ReLU per node is one wide
        # fc + BN over N*hidden features; then per-node fc(hidden, d)-ReLU and the (mean,
        # log-variance) heads fc(d, d) x 2, as grouped layers.
        self.bottom_up = nn.Sequential(
            nn.Linear(feature_dim, n_nodes * bottom_up_hidden),
            nn.BatchNorm1d(n_nodes * bottom_up_hidden), nn.ReLU(),
            GroupMajor(n_nodes),
            GroupedLinear(n_nodes, bottom_up_hidden, node_dim), nn.ReLU(),
            GroupedLinear(n_nodes, node_dim, 2 * node_dim))
        # Top-down networks of the non-root nodes; node i sees its N-1-i gated parents.
        # top_down is the prior's (with PairedMLPTopDown the inference network's too),
        # top_down_q the inference network when it is a module of its own.
        networks = lambda: TOP_DOWN[top_down](n_nodes, node_dim, top_down_hidden)  # noqa: E731
        if top_down == "mlp" and not share_top_down:
            self.top_down, self.top_down_q = PairedMLPTopDown(n_nodes, node_dim,
                                                              top_down_hidden), None
        else:
            self.top_down, self.top_down_q = networks(), None if share_top_down else networks()
        self.decoder = DECODERS[decoder](n_nodes, node_dim, decoder_hidden, self.likelihood)
        self.gates = EdgeGates(n_nodes, structure, gate_init_prob, hard_gates,
                               schedule=settings(GateSchedule, gate_schedule),
                               prior=settings(StructurePrior, structure_prior))

    # -- pieces ---------------------------------------------------------------------------
    def bottom_up_estimates(self, x):
        """(mu_hat, logvar_hat) of every node, each (B, N, d)."""
        return split_params(self.bottom_up(self.encoder(x)).transpose(0, 1))

    def top_down_estimates(self, node, parents):
        """(prior (mu, logvar), inference estimate) of node from its gated parents: TD^p_i and
        TD^q_i (the same network's with share_top_down)."""
        if isinstance(self.top_down, PairedMLPTopDown):
            return self.top_down.pair(node, parents)
        prior = self.top_down(node, parents)
        return prior, prior if self.top_down_q is None else self.top_down_q(node, parents)

    def gated_parents(self, node, z, gates):
        """Node's parents (nodes > node, from the list z of per-node samples) times their gates."""
        return self.gates.parent_gates(gates, node).unsqueeze(-1) * torch.stack(z[node + 1:], 1)

    def posterior(self, mu_hat, logvar_hat, gates):
        """Sample z top-down; return z and the posterior and prior parameters, each (B, N, d)."""
        n, root = self.n_nodes, self.n_nodes - 1
        z, mu_q, logvar_q, mu_p, logvar_p = ([None] * n for _ in range(5))
        mu_q[root], logvar_q[root] = mu_hat[:, root], logvar_hat[:, root]
        mu_p[root] = logvar_p[root] = torch.zeros_like(mu_hat[:, root])  # root prior N(0, I)
        z[root] = gaussian.sample(mu_q[root], logvar_q[root])
        for i in range(root - 1, -1, -1):
            (mu_p[i], logvar_p[i]), estimate = self.top_down_estimates(
                i, self.gated_parents(i, z, gates))
            mu_q[i], logvar_q[i] = gaussian.fuse(mu_hat[:, i], logvar_hat[:, i], *estimate)
            z[i] = gaussian.sample(mu_q[i], logvar_q[i])
        stack = lambda tensors: torch.stack(tensors, dim=1)  # noqa: E731
        return stack(z), (stack(mu_q), stack(logvar_q)), (stack(mu_p), stack(logvar_p))

    def decode(self, z):
        """Decoder outputs (e.g. Bernoulli logits, fp32) for z of shape (..., N, d)."""
        return self.decoder(z).float()

    # -- the model (contract: model/base_model.py) ----------------------------------------
    def forward(self, x, n_samples=1, posterior_means=True):
        batch = x.shape[0]
        mu_hat, logvar_hat = self.bottom_up_estimates(x)  # the encoder runs once per image
        if n_samples > 1:
            mu_hat, logvar_hat = mu_hat.repeat(n_samples, 1, 1), logvar_hat.repeat(n_samples, 1, 1)
        rows = batch * n_samples
        z, q, p = self.posterior(mu_hat, logvar_hat, self.gates(rows))
        x_params = self.decode(z)
        log_px = self.likelihood(x_params.view(n_samples, batch, -1), x).view(rows)
        log_ratio = (gaussian.log_density(z, *p) - gaussian.log_density(z, *q)).sum(-1)
        output = {"log_px": log_px, "kl": gaussian.kl_divergence(*q, *p), "log_ratio": log_ratio,
                  "units": torch.ones_like(log_px), "x_params": x_params, "z": z}
        if posterior_means:
            output["posterior_mean"] = q[0].view(n_samples, batch, self.n_nodes, -1).mean(0)
        return self.with_structure_cost(output)

    @torch.no_grad()
    def sample_prior(self, n, node_overrides=None):
        """Ancestral samples with the discrete graph; returns (decoder outputs, z).

        node_overrides = {node: (d,) or (n, d) tensor} fixes chosen nodes (for traversals).
        """
        overrides = node_overrides or {}
        device = next(self.parameters()).device
        z = [None] * self.n_nodes
        gates = self.gates.discrete().expand(n, -1)
        for i in range(self.n_nodes - 1, -1, -1):
            if i in overrides:
                z[i] = overrides[i].to(device).expand(n, self.node_dim)
                continue
            mu = logvar = torch.zeros(n, self.node_dim, device=device)
            if i < self.n_nodes - 1:
                mu, logvar = self.top_down(i, self.gated_parents(i, z, gates))
            z[i] = gaussian.sample(mu, logvar)
        z = torch.stack(z, dim=1)
        return self.decode(z), z

    def describe_graph(self):
        return self.gates.describe(self.node_dim)

    def derived_settings(self):
        return self.derived


@MODELS.register()
class GraphLSTMVAE(GraphVAE):
    """GraphVAE whose per-node top-down MLPs are one LSTM shared by the nodes (docs/method.md §3).

    The same gates, fusion, loss and evaluation: only the top-down network differs
    (model/top_down.py: LSTMTopDown). top_down_hidden is the LSTM's hidden size.
    """

    def __init__(self, top_down="lstm", **graph_vae_args):
        super().__init__(top_down=top_down, **graph_vae_args)


def split_latent_dims(latent_dim, n_nodes, node_dim):
    """The node size d: latent_dim / n_nodes when the total latent size M is given (it decides;
    node_dim is then not read), else node_dim (neither: the paper's d)."""
    if latent_dim is None:
        return NODE_DIM if node_dim is None else node_dim
    if latent_dim % n_nodes:
        divisors = [k for k in range(1, min(latent_dim, MAX_NODES) + 1) if latent_dim % k == 0]
        raise ValueError(f"latent_dim {latent_dim} is not divisible by n_nodes {n_nodes}; "
                         f"use n_nodes in {divisors}")
    return latent_dim // n_nodes
