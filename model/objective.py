"""The one objective: the negative ELBO, -E_q[log p(x|z)] + sum_i KL_i, per unit of data.

A unit is an image, or a valid step of a sequence (the model's `units`). Two training-only
options change the objective but never the reported terms (docs/method.md §5):
  kl_weight  KL warm-up: the KL term weighted by a number rising from 0 to 1;
  free_bits  per node: the objective uses max(free_bits, KL_i), KL_i averaged over the batch
             (Kingma et al., 2016), so nothing pushes a node's KL below free_bits.
A model with a structure prior adds its cost (output "structure_cost", nats per unit) to the
objective, weighted like the KL (choice: the cost is a prior on the graph, so the KL warm-up
that lets the latents' priors in gradually does the same for it; otherwise it would prune
edges while their KL benefit is still scaled down); it is reported apart, as the term
structure_cost, never inside the ELBO.
"""


def negative_elbo(output, kl_weight=1.0, free_bits=0.0):
    """(training objective, reported terms, count) of a model output (model/base_model.py).

    terms: loss (-ELBO), recon (-log p(x|z)), kl (sum over nodes), kl_per_node (N,), and
    structure_cost where the model has one, all per unit; count: the number of units they are
    means over (the weight for running sums).
    Everything stays on the device (no synchronisation).
    """
    count = output["units"].sum()
    units = count.clamp_min(1)  # a chunk of padding only (DDP, TBPTT) has none: terms 0
    recon = -output["log_px"].sum() / units
    kl_per_node = output["kl"].sum(0) / units
    kl = kl_per_node.sum()
    kl_trained = kl_per_node.clamp_min(free_bits).sum() if free_bits else kl
    objective = recon + kl_weight * kl_trained
    terms = {"loss": (recon + kl).detach(), "recon": recon.detach(), "kl": kl.detach(),
             "kl_per_node": kl_per_node.detach()}
    if "structure_cost" in output:
        objective = objective + kl_weight * output["structure_cost"]
        terms["structure_cost"] = output["structure_cost"].detach()
    return objective, terms, count.detach()


def warmup_weight(epoch, warmup_epochs):
    """The KL's weight in epoch (counted from 1) of a linear warm-up over warmup_epochs (0:
    none), docs/method.md §5."""
    return min(1.0, epoch / warmup_epochs) if warmup_epochs else 1.0
