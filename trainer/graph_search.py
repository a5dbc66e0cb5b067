"""Choosing the graph after joint training: every candidate graph scored by an importance-
weighted bound on the validation log-likelihood, with its prior networks refitted
(docs/method.md §7, "a search over graphs").

Hold the jointly trained model's encoder, inference networks and decoder fixed. For a graph G
with prior p_G(z) = prod_i p(z_i | z_pa_i),

    L_K(G) = E[ log 1/K sum_k p(x | z_k) p_G(z_k) / q(z_k | x) ],  z_1..z_K ~ q(z | x),

is a lower bound on log p_G(x) for every K (K = 1: the ELBO), tighter as K grows. Scored by
the ELBO (K = 1), a graph is judged through q, and an imperfect q makes edges that the truth
does not have pay off: q's sample of a mediator z_m is noisier than the factor, so a node's
prior gains a little by reading the mediator's parent too (measured on a development chain:
+0.05 nats for the indirect edge with K = 1, +0.02 with K = 16). The bound with K samples
weighs the samples towards the model's exact posterior and shrinks that bias.

The priors: for every non-root node i and every set S of its candidate parents (the nodes
above it), a fresh network p(z_i | z_S) (an MLP giving a diagonal Gaussian, like the model's
top-down prior) is fitted by weighted maximum likelihood on K posterior samples of training
images, each weighted by its self-normalised importance weight under the jointly trained
model (samples of its exact posterior, nearly); early stopping on a held-out tenth. Then
every graph in the node order is a choice of one S per node: all of them are scored on the
validation images when there are at most EXHAUSTIVE_LIMIT, else the choice is improved node
by node until no change helps. The graph kept maximises L_K(G) - edge_cost * |G|. It never
sees a true DAG.

An edge's refitted value is L_K(chosen graph with it) - L_K(without it), the other edges as
chosen: what it is worth once the prior is refitted, beside the toggled value of
trainer/edge_values.py (the same networks with one gate flipped).
"""
import itertools
import math

import torch
from torch import nn

from data_loader.base_data_loader import to_device
from model import gaussian
from model.networks import GroupedLinear

SAMPLES = 16  # posterior samples per image
FIT_IMAGES = 4000  # training images whose samples fit the priors
HIDDEN = 64  # the refitted prior networks' width (two hidden layers)
BATCH, LR, EPOCHS = 1024, 3e-3, 20  # Adam, its rate falling to 0 on a cosine
HELD_OUT = 0.1
FIT_SEED = 0  # every fit starts from the same draw for its input size
EXHAUSTIVE_LIMIT = 4096  # graphs scored one by one up to this many (every N <= 5)
# The cost of an edge in nats per image (docs/method.md §7): the edge cost the project chose on
# Fashion-MNIST validation for the joint learner (docs/structure.md), never on a synthetic DAG.
EDGE_COST = 0.03


@torch.no_grad()
def posterior_draws(model, loader, device, n_samples=SAMPLES, limit=None):
    """K samples z ~ q(z | x) per image, (n, K, N, d); the graph-free part of each sample's
    log weight, log p(x | z) - log q(z | x) + log p(z_root), (n, K); and the self-normalised
    importance weights under the model's own prior, (n, K). The model as it is (evaluation
    mode: its discrete graph); the first `limit` images of loader."""
    model.eval()
    samples, fixed, weights, seen = [], [], [], 0
    for batch in loader:
        x = to_device(batch, device)[:None if limit is None else limit - seen]
        size, rows = len(x), len(x) * n_samples
        mu_hat, logvar_hat = (t.repeat(n_samples, 1, 1) for t in model.bottom_up_estimates(x))
        z, q, p = model.posterior(mu_hat, logvar_hat, model.gates(rows))
        log_px = model.likelihood(model.decode(z).view(n_samples, size, -1), x).view(rows)
        log_prior = gaussian.log_density(z, *p)  # (rows, N)
        graph_free = log_px - gaussian.log_density(z, *q).sum(-1) + log_prior[:, -1]
        by_image = lambda t: t.view(n_samples, size, *t.shape[1:]).transpose(0, 1).cpu()  # noqa: E731
        samples.append(by_image(z))
        fixed.append(by_image(graph_free))
        weights.append(torch.softmax(by_image(graph_free + log_prior[:, :-1].sum(-1)), dim=1))
        seen += size
        if limit is not None and seen >= limit:
            break
    return torch.cat(samples), torch.cat(fixed), torch.cat(weights)


class ParentSetPriors(nn.Module):
    """p(z_i | z_S) = N(mu(z_S), diag exp(logvar(z_S))) of one node for G parent sets S at once:
    G independent MLPs as grouped layers (one batched matmul each), network g reading the
    node's candidate parents masked to its set (an empty set: a learned constant)."""

    def __init__(self, masks, dim, hidden=HIDDEN):
        super().__init__()
        groups, n_in = masks.shape
        self.register_buffer("masks", masks)
        self.net = nn.Sequential(GroupedLinear(groups, n_in, hidden), nn.ReLU(),
                                 GroupedLinear(groups, hidden, hidden), nn.ReLU(),
                                 GroupedLinear(groups, hidden, 2 * dim))

    def log_density(self, candidates, child):
        """(G, B) log-densities of child (B, d) given the candidate parents (B, n_in)."""
        mu, logvar = self.net(candidates.unsqueeze(0) * self.masks.unsqueeze(1)).chunk(2, -1)
        return gaussian.log_density(child.unsqueeze(0), mu, gaussian.clamp_logvar(logvar))


def fit_priors(samples, weights, node, sets):
    """The priors of node for every parent set in sets, fitted by weighted maximum likelihood
    on (n, K, N, d) samples with (n, K) weights summing to 1 per image; each set keeps the
    epoch that fits a held-out tenth of the images best."""
    n_nodes, dim = samples.shape[2], samples.shape[3]
    candidates = samples[:, :, node + 1:].flatten(2)
    masks = torch.tensor([[float(j in s) for j in range(node + 1, n_nodes) for _ in range(dim)]
                          for s in sets])
    n_fit = int(len(samples) * (1 - HELD_OUT))
    x_fit, y_fit = candidates[:n_fit].flatten(0, 1), samples[:n_fit, :, node].flatten(0, 1)
    w_fit = weights[:n_fit].flatten() * weights.shape[1]  # mean 1
    x_held, y_held = candidates[n_fit:].flatten(0, 1), samples[n_fit:, :, node].flatten(0, 1)
    w_held = weights[n_fit:].flatten()
    torch.manual_seed(FIT_SEED)
    priors = ParentSetPriors(masks, dim)
    optimizer = torch.optim.Adam(priors.parameters(), lr=LR)
    steps = EPOCHS * math.ceil(len(x_fit) / BATCH)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    best = torch.full((len(sets),), -math.inf)
    best_params = [p.detach().clone() for p in priors.parameters()]
    for _ in range(EPOCHS):
        for index in torch.randperm(len(x_fit)).split(BATCH):
            optimizer.zero_grad()
            log_density = priors.log_density(x_fit[index], y_fit[index])
            (-(log_density * w_fit[index]).mean(1).sum()).backward()  # the sets' losses apart
            optimizer.step()
            schedule.step()
        with torch.no_grad():
            held = (priors.log_density(x_held, y_held) * w_held).sum(1)
            better = held > best
            best = torch.where(better, held, best)
            for kept, p in zip(best_params, priors.parameters()):
                kept[better] = p[better]
    with torch.no_grad():
        for kept, p in zip(best_params, priors.parameters()):
            p.copy_(kept)
    return priors


def parent_sets(node, n_nodes):
    """Every set of node's candidate parents (the nodes above it), smallest first."""
    candidates = range(node + 1, n_nodes)
    return [s for k in range(len(candidates) + 1) for s in itertools.combinations(candidates, k)]


@torch.no_grad()
def prior_log_densities(train, valid):
    """{(node, parents): log p(z_node | z_parents) of every validation sample, (n, K)} for every
    non-root node and parent set, the priors fitted on train; train and valid are
    (samples, weights)."""
    (z_train, w_train), (z_valid, _) = train, valid
    n, k, n_nodes = z_valid.shape[:3]
    densities = {}
    for node in range(n_nodes - 1):
        sets = parent_sets(node, n_nodes)
        with torch.enable_grad():
            priors = fit_priors(z_train, w_train, node, sets)
        values = priors.log_density(z_valid[:, :, node + 1:].flatten(2).flatten(0, 1),
                                    z_valid[:, :, node].flatten(0, 1))
        densities.update({(node, s): v.view(n, k) for s, v in zip(sets, values)})
    return densities


def graph_bound(graph_free, densities, choice):
    """L_K per validation image of the graph that gives node i the parents choice[i]."""
    log_w = graph_free + sum(densities[(node, parents)] for node, parents in enumerate(choice))
    return torch.logsumexp(log_w, dim=1) - math.log(graph_free.shape[1])


def best_graph(graph_free, densities, n_nodes, edge_cost):
    """The choice of parents per non-root node with the best mean L_K less edge_cost per edge:
    every choice when there are at most EXHAUSTIVE_LIMIT, else node by node from the empty
    graph until no node's change helps."""
    options = [parent_sets(node, n_nodes) for node in range(n_nodes - 1)]
    objective = lambda choice: (graph_bound(graph_free, densities, choice).mean().item()  # noqa: E731
                                - edge_cost * sum(map(len, choice)))
    if math.prod(map(len, options)) <= EXHAUSTIVE_LIMIT:
        return max(itertools.product(*options), key=objective)
    choice, improved = [()] * (n_nodes - 1), True
    while improved:
        improved = False
        for node, sets in enumerate(options):
            best = max(sets, key=lambda s: objective(choice[:node] + [s] + choice[node + 1:]))
            if objective(choice[:node] + [best] + choice[node + 1:]) > objective(choice) + 1e-9:
                choice[node], improved = best, True
    return tuple(choice)


def refitted_value(graph_free, densities, choice, parent, node):
    """(value, its standard error over validation images) of edge parent -> node: L_K of the
    chosen graph with the edge minus without it."""
    without, with_it = list(choice), list(choice)
    without[node] = tuple(p for p in choice[node] if p != parent)
    with_it[node] = tuple(sorted(set(choice[node]) | {parent}))
    gain = graph_bound(graph_free, densities, with_it) - graph_bound(graph_free, densities, without)
    return gain.mean().item(), (gain.std() / math.sqrt(len(gain))).item()


def search_graph(model, train_loader, valid_loader, device, edge_cost, n_samples=SAMPLES):
    """The graph chosen by L_K with the priors refitted, less edge_cost nats per edge, as plain
    data: one 0/1 per candidate edge in the gates' order, the kept edges' names, each edge's
    refitted value and standard error, and the bound of the graph chosen."""
    gates = model.gates
    z_train, _, w_train = posterior_draws(model, train_loader, device, n_samples, FIT_IMAGES)
    z_valid, graph_free, w_valid = posterior_draws(model, valid_loader, device, n_samples)
    densities = prior_log_densities((z_train, w_train), (z_valid, w_valid))
    choice = best_graph(graph_free, densities, model.n_nodes, edge_cost)
    values = {name: refitted_value(graph_free, densities, choice, j, i)
              for (j, i), name in zip(gates.edges, gates.names)}
    kept = [j in choice[i] for j, i in gates.edges]
    return {"edge_cost": edge_cost, "samples_per_image": n_samples,
            "graph": [float(k) for k in kept],
            "kept": [name for name, k in zip(gates.names, kept) if k],
            "bound": graph_bound(graph_free, densities, choice).mean().item(),
            "refitted_values": {name: value for name, (value, _) in values.items()},
            "refitted_se": {name: se for name, (_, se) in values.items()}}
