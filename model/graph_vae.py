"""GraphVAE (method.md §1) and, as configurations of it, the FC-VAE, Ladder VAE and VAE (§2).

Latents: N nodes of d dims (node_dim, or latent_dim M = N * d); node N-1 is the root, the
candidate parents of node i are j > i.

Generative model: p(z_root) = N(0, I); p(z_i | parents) = N(TD_i(concat_j c_ji * z_j));
p(x | z) from the decoder on concat(z_1..z_N).
Inference (Ladder-VAE style): the encoder's features give every node a bottom-up estimate
(mu_hat, var_hat). The root's posterior is that estimate. Going down from N-2 to 0, each node's
prior is computed from the *posterior samples* of its gated parents with the same TD_i as the
generative model, fused with the bottom-up estimate by precision weighting, and sampled.
The KL of every node is taken in closed form given its sampled parents; the root's prior is
N(0, I), which is the same formula with mu_p = 0, logvar_p = 0.
"""
import torch
from torch import nn

from base import BaseModel
from model import gaussian
from model.edge_gates import EdgeGates
from model.likelihoods import LIKELIHOODS
from model.networks import GroupedLinear, GroupMajor, mlp
from model.top_down import TOP_DOWN, split_params


class GraphVAE(BaseModel):
    def __init__(self, input_dim=784, n_nodes=5, node_dim=16, latent_dim=None,
                 structure="learned", gate_init_prob=0.5, hard_gates=False,
                 encoder_hidden=(512, 512, 512), feature_dim=256, bottom_up_hidden=256,
                 top_down_hidden=256, decoder_hidden=(512, 512, 512), likelihood="bernoulli",
                 top_down="mlp", max_nodes=None):
        super().__init__()
        node_dim = split_latent_dims(latent_dim, n_nodes, node_dim)
        check_sizes(input_dim=input_dim, n_nodes=n_nodes, node_dim=node_dim,
                    feature_dim=feature_dim, bottom_up_hidden=bottom_up_hidden,
                    top_down_hidden=top_down_hidden)
        if top_down not in TOP_DOWN:
            raise ValueError(f"top_down must be one of {sorted(TOP_DOWN)}, got {top_down!r}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {sorted(LIKELIHOODS)}, got {likelihood!r}")
        self.input_dim = input_dim  # recorded in checkpoints: sample.py rebuilds from it
        self.n_nodes, self.node_dim = n_nodes, node_dim
        self.latent_dim = n_nodes * node_dim
        self.log_likelihood = LIKELIHOODS[likelihood]

        self.encoder = mlp([input_dim, *encoder_hidden, feature_dim])
        # Bottom-up heads of all nodes at once: fc(feature, hidden)-BN-ReLU per node is one wide
        # fc + BN over N*hidden features; then per-node fc(hidden, d) and the (mean, log-var)
        # heads fc(d, d) x 2, as grouped layers. (choice: ReLU after fc(hidden, d), so that the
        # heads are not a redundant linear composition.)
        self.bottom_up = nn.Sequential(
            nn.Linear(feature_dim, n_nodes * bottom_up_hidden),
            nn.BatchNorm1d(n_nodes * bottom_up_hidden), nn.ReLU(),
            GroupMajor(n_nodes),
            GroupedLinear(n_nodes, bottom_up_hidden, node_dim), nn.ReLU(),
            GroupedLinear(n_nodes, node_dim, 2 * node_dim))
        # Top-down networks of the non-root nodes; node i sees its N-1-i gated parents.
        extra = {"max_nodes": max_nodes} if top_down == "lstm" else {}
        self.top_down = TOP_DOWN[top_down](n_nodes, node_dim, top_down_hidden, **extra)
        self.decoder = mlp([self.latent_dim, *decoder_hidden, input_dim])
        self.gates = EdgeGates(n_nodes, structure, gate_init_prob, hard_gates)

    # -- pieces ---------------------------------------------------------------------------
    def bottom_up_estimates(self, x):
        """(mu_hat, logvar_hat) of every node, each (B, N, d)."""
        return split_params(self.bottom_up(self.encoder(x)).transpose(0, 1))

    def prior_params(self, node, z, gates, state=None):
        """((mu_p, logvar_p), state) of a non-root node from the gated samples of its parents.

        z is a list of per-node samples (B, d) with the parents (nodes > node) filled in;
        gates is (B, n_edges); state is the top-down network's, carried root first.
        """
        parent_gates = self.gates.parent_gates(gates, node).unsqueeze(-1)
        return self.top_down(node, parent_gates * torch.stack(z[node + 1:], dim=1), state)

    def posterior(self, mu_hat, logvar_hat, gates):
        """Sample z top-down; return z and the posterior and prior parameters, each (B, N, d)."""
        n, root = self.n_nodes, self.n_nodes - 1
        z, mu_q, logvar_q, mu_p, logvar_p = ([None] * n for _ in range(5))
        mu_q[root], logvar_q[root] = mu_hat[:, root], logvar_hat[:, root]
        mu_p[root] = logvar_p[root] = torch.zeros_like(mu_hat[:, root])  # root prior N(0, I)
        z[root] = gaussian.sample(mu_q[root], logvar_q[root])
        state = self.top_down.initial_state(mu_hat.shape[0], mu_hat.device)
        for i in range(root - 1, -1, -1):
            (mu_p[i], logvar_p[i]), state = self.prior_params(i, z, gates, state)
            mu_q[i], logvar_q[i] = gaussian.fuse(mu_hat[:, i], logvar_hat[:, i],
                                                 mu_p[i], logvar_p[i])
            z[i] = gaussian.sample(mu_q[i], logvar_q[i])
        stack = lambda tensors: torch.stack(tensors, dim=1)  # noqa: E731
        return stack(z), (stack(mu_q), stack(logvar_q)), (stack(mu_p), stack(logvar_p))

    def decode(self, z):
        """Decoder outputs (e.g. Bernoulli logits, fp32) for z of shape (B, N, d)."""
        return self.decoder(z.flatten(1)).float()

    # -- the model ------------------------------------------------------------------------
    def forward(self, x):
        mu_hat, logvar_hat = self.bottom_up_estimates(x)
        gates = self.gates(x.shape[0])
        z, q, p = self.posterior(mu_hat, logvar_hat, gates)
        return {"x_params": self.decode(z), "z": z,
                "kl": gaussian.kl_divergence(*q, *p)}  # (B, N)

    def log_importance_weights(self, x, n_samples):
        """log p(x, z_k) - log q(z_k | x) for n_samples z_k ~ q(z|x): shape (n_samples, B).

        The encoder runs once per image; the samples are processed as one batch of n*B rows.
        """
        batch = x.shape[0]
        mu_hat, logvar_hat = (t.repeat(n_samples, 1, 1) for t in self.bottom_up_estimates(x))
        gates = self.gates(batch * n_samples)
        z, q, p = self.posterior(mu_hat, logvar_hat, gates)
        x_params = self.decode(z).view(n_samples, batch, -1)
        log_px = self.log_likelihood(x_params, x)  # x broadcasts over the samples
        log_pz = gaussian.log_density(z, *p).sum(-1).view(n_samples, batch)
        log_qz = gaussian.log_density(z, *q).sum(-1).view(n_samples, batch)
        return log_px + log_pz - log_qz

    @torch.no_grad()
    def sample_prior(self, n, node_overrides=None):
        """Ancestral samples with the discrete graph; returns (decoder outputs, z).

        node_overrides = {node: (d,) or (n, d) tensor} fixes chosen nodes (for traversals).
        """
        overrides = node_overrides or {}
        device = next(self.parameters()).device
        z = [None] * self.n_nodes
        gates = self.gates.discrete().expand(n, -1)
        state = self.top_down.initial_state(n, device)
        for i in range(self.n_nodes - 1, -1, -1):
            if i < self.n_nodes - 1:  # the top-down state walks every node, overridden or not
                (mu, logvar), state = self.prior_params(i, z, gates, state)
            else:
                mu = logvar = torch.zeros(n, self.node_dim, device=device)
            z[i] = overrides[i].to(device).expand(n, self.node_dim) if i in overrides \
                else gaussian.sample(mu, logvar)
        z = torch.stack(z, dim=1)
        return self.decode(z), z

    def describe_graph(self):
        return self.gates.describe(self.node_dim)


class GraphLSTMVAE(GraphVAE):
    """GraphVAE whose per-node top-down MLPs are one LSTM walking the nodes (method.md §3).

    The same gates, fusion, loss and evaluation: only the top-down network differs
    (model/top_down.py). top_down_hidden is the LSTM's hidden size; max_nodes fixes the
    LSTM's input width so one LSTM serves graphs of up to max_nodes nodes.
    """

    def __init__(self, top_down="lstm", **graph_vae_args):
        super().__init__(top_down=top_down, **graph_vae_args)


def split_latent_dims(latent_dim, n_nodes, node_dim):
    """node_dim, or latent_dim / n_nodes when the total latent size M is given instead."""
    if latent_dim is None:
        return node_dim
    check_sizes(latent_dim=latent_dim, n_nodes=n_nodes)
    if latent_dim % n_nodes:
        divisors = [k for k in range(1, latent_dim + 1) if latent_dim % k == 0]
        raise ValueError(f"latent_dim {latent_dim} is not divisible by n_nodes {n_nodes}; "
                         f"use n_nodes in {divisors}")
    return latent_dim // n_nodes


def check_sizes(**sizes):
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
