"""The training objective: the negative ELBO, -E_q[log p(x|z)] + sum_i KL_i, in nats per example."""
import torch


def negative_elbo(model, output, x, kl_weight=1.0):
    """-ELBO of a batch of images: (loss, terms, count), everything per image.

    terms: loss (-ELBO), recon (-log p(x|z)), kl (sum over nodes), kl_per_node (N,);
    count: how many images the means are over (the weight for running sums).
    kl_weight < 1 (KL warm-up) changes the returned objective, never the reported terms.
    """
    return elbo_terms(model.log_likelihood(output["x_params"], x), output["kl"], x.shape[0],
                      kl_weight)


def sequence_negative_elbo(model, output, batch, kl_weight=1.0):
    """-ELBO of a batch of sequences, in nats per valid step (padding excluded)."""
    return elbo_terms(output["log_px"], output["kl"], output["n_steps"].sum(), kl_weight)


def elbo_terms(log_px, kl, count, kl_weight=1.0):
    """log_px (B,) and kl (B, N) summed per example, averaged over count units."""
    objective = (kl_weight * kl.sum() - log_px.sum()) / count
    return objective, {"loss": ((kl.sum() - log_px.sum()) / count).detach(),
                       "recon": -log_px.sum().detach() / count,
                       "kl": kl.sum().detach() / count,
                       "kl_per_node": kl.sum(0).detach() / count}, count


LOSSES = {"negative_elbo": negative_elbo, "sequence_negative_elbo": sequence_negative_elbo}


def running_sums(terms, count, sums=None):
    """Add count-weighted terms to sums without synchronising with the device."""
    sums = {} if sums is None else sums
    for key, value in terms.items():
        sums[key] = sums.get(key, 0) + value * count
    sums["n"] = sums.get("n", 0) + count
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
