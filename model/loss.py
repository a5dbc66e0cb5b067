"""The training objective: the negative ELBO, -E_q[log p(x|z)] + sum_i KL_i, in nats per example."""
import torch


def negative_elbo(model, output, x):
    """Return the loss to minimise and its terms, each averaged over the batch.

    terms: loss (-ELBO), recon (-log p(x|z)), kl (sum over nodes), kl_per_node (N,).
    """
    log_px = model.log_likelihood(output["x_params"], x)
    kl = output["kl"]
    loss = (kl.sum(-1) - log_px).mean()
    return loss, {"loss": loss.detach(), "recon": -log_px.mean().detach(),
                  "kl": kl.sum(-1).mean().detach(), "kl_per_node": kl.mean(0).detach()}


def elbo_per_example(model, x):
    """ELBO of each example in x (one posterior sample), shape (B,)."""
    output = model(x)
    return model.log_likelihood(output["x_params"], x) - output["kl"].sum(-1)


LOSSES = {"negative_elbo": negative_elbo}


def running_sums(terms, batch_size, sums=None):
    """Add batch-weighted terms to sums without synchronising with the device."""
    sums = {} if sums is None else sums
    for key, value in terms.items():
        sums[key] = sums.get(key, 0) + value * batch_size
    sums["n"] = sums.get("n", 0) + batch_size
    return sums


def means(sums):
    """Plain-number means from running_sums (one device sync); {} when nothing was summed."""
    if not sums:
        return {}
    n = sums["n"]
    result = {}
    for key, value in sums.items():
        if key == "n":
            continue
        value = (value / n).cpu() if torch.is_tensor(value) else value / n
        result[key] = value.tolist() if torch.is_tensor(value) else value
    return result
