"""Edge values: what each edge of a learned graph is worth to the model, measured
(docs/method.md §7).

The value of edge e is ELBO(graph with e) - ELBO(graph without e) on validation data, in nats
per unit, the other edges as the evaluation graph has them: for a kept edge, what removing it
alone costs; for a dropped edge, what adding it alone would gain. Positive: the edge helps.
Every graph is evaluated on the same images with the same noise (one seed), in evaluation
mode, with the networks' weights as they are (they are not retrained for any graph).

BatchNorm (choice): running statistics are estimated on the graphs the networks trained on.
After a freeze that dropped an edge, that parent was always zero, so putting it back would
feed the first top-down layer inputs its statistics never saw, and the number would measure
the mismatch, not the edge. So before each graph (the evaluation graph included) is evaluated,
BatchNorm's statistics are re-estimated on that graph from the same validation data (one pass
in training mode, no gradients, a cumulative average), and restored afterwards. The model
leaves exactly as it came, and the random streams of training are untouched.
"""
from contextlib import ExitStack, contextmanager
from functools import partial

import torch
from torch import nn

from data_loader.base_data_loader import first_examples, to_device
from model.metrics import batch_size
from trainer.evaluation import evaluate
from utils import distributed, ranks

NOISE_SEED = 0  # the one seed of every graph's evaluation: the same noise for all of them


@torch.no_grad()
def edge_values(model, loader, device, limit=None):
    """{edge name: value in nats per unit} of every learned gate set's edges; {} without any."""
    gate_sets = [g for g in model.gate_sets().values() if g.learned]
    if not gate_sets:
        return {}
    graph = [g.discrete().clone() for g in gate_sets]
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, {k: v.clone() for k, v in m.state_dict().items()}) for m in norms]
    was_training = model.training
    try:
        reference = graph_elbo(model, gate_sets, graph, norms, loader, device, limit)
        values = {}
        for s, gates in enumerate(gate_sets):
            for k, name in enumerate(gates.names):
                other = [g.clone() for g in graph]
                other[s][k] = 1.0 - other[s][k]
                elbo = graph_elbo(model, gate_sets, other, norms, loader, device, limit)
                values[name] = reference - elbo if graph[s][k] else elbo - reference
        return values
    finally:
        for m, (momentum, state) in zip(norms, saved):
            m.momentum = momentum
            m.load_state_dict(state)
        model.train(was_training)


def graph_elbo(model, gate_sets, graph, norms, loader, device, limit):
    """The validation ELBO (nats per unit) of the model with `graph` as its gates."""
    with ExitStack() as stack:
        for gates, values in zip(gate_sets, graph):
            stack.enter_context(gates.forcing_graph(values))
        devices = [device] if device.type == "cuda" else []
        stack.enter_context(torch.random.fork_rng(devices=devices))
        torch.manual_seed(NOISE_SEED)
        if norms:
            reestimate_batch_norm(model, norms, loader, device, limit)
        return -evaluate(model, loader, device, limit=limit)["loss"]


def reestimate_batch_norm(model, norms, loader, device, limit):
    """BatchNorm running statistics as the plain average over loader's batches (one pass in
    training mode, no gradients).

    Under DDP each rank passes over its own shard of the validation set, which may hold one
    batch more or fewer than another rank's: SyncBatchNorm's all-gather in each forward would
    leave a rank waiting for ever. So the pass makes no collective (SyncBatchNorm normalises
    as plain BatchNorm here), and then the ranks' averages are combined, weighted by their
    numbers of batches: the average over every rank's batches, the same on every rank."""
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    seen = 0
    with unsynchronised(norms):
        for batch in loader:
            if limit is not None:
                batch = first_examples(batch, limit - seen)
            if batch_size(batch) > 1:  # BatchNorm cannot take statistics of one example
                model(to_device(batch, device))
            seen += batch_size(batch)
            if limit is not None and seen >= limit:
                break
    if ranks.active():
        combine_over_ranks(norms)


@contextmanager
def unsynchronised(norms):
    """SyncBatchNorm layers forward as plain BatchNorm inside the block (no collective)."""
    synced = [m for m in norms if isinstance(m, nn.SyncBatchNorm)]
    for m in synced:
        m.forward = partial(nn.modules.batchnorm._BatchNorm.forward, m)
    try:
        yield
    finally:
        for m in synced:
            del m.forward


def combine_over_ranks(norms):
    """Each layer's running statistics averaged over every rank's batches (one all-reduce per
    layer, as many on every rank); left as reset where no rank had a batch."""
    for m in norms:
        mean, var, batches = m.running_mean, m.running_var, m.num_batches_tracked
        weight = batches.to(mean.dtype).reshape(1)
        total = distributed.sum_tensor(torch.cat([mean * weight, var * weight, weight]))
        count, width = total[-1], mean.numel()
        mean.copy_(torch.where(count > 0, total[:width] / count.clamp(min=1), mean))
        var.copy_(torch.where(count > 0, total[width:2 * width] / count.clamp(min=1), var))
        batches.copy_(count.to(batches.dtype))
