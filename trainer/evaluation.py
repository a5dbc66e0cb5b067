"""The one evaluation loop (validation every epoch, test.py, reproduce.py), and the running
sums that the training loop shares with it."""
import torch
from tqdm import tqdm

from data_loader.base_data_loader import first_examples, to_device
from model.metrics import (
    active_units,
    batch_size,
    importance_sampled_log_likelihood,
    moment_sums,
)
from model.objective import negative_elbo
from utils import distributed


@torch.no_grad()
def evaluate(model, loader, device, n_samples=0, limit=None, per_example=False, progress=False):
    """Means over loader, per unit (image, or valid step of a sequence), in nats, with the
    evaluation graph (model.eval(): discrete gates):

      loss (-ELBO), recon, kl, kl_per_node (N,), active_units (N,) and, with n_samples > 0,
      log_likelihood (importance sampling with K = n_samples); n_examples, n_units; and
      for 8-bit images elbo_bits_per_dim and log_likelihood_bits_per_dim: -ELBO and -log p(x)
      in bits per dimension on the 0..255 scale (negative log-likelihoods: lower is better).
    per_example adds "per_example": {"elbo": [...], "log_likelihood": [...]} (per unit of each
    example, in loader order), for paired comparisons. Under DDP the sums cover every rank.
    E_q[u | x] for the active units is the posterior mean averaged over the K importance
    samples, or from the one ELBO sample without them.
    """
    model.eval()
    sums, moments, examples, seen = None, None, {"elbo": [], "log_likelihood": []}, 0
    for batch in tqdm(loader, desc="evaluate", leave=False, disable=None if progress else True):
        if limit is not None:
            batch = first_examples(batch, limit - seen)
        batch = to_device(batch, device)
        output = model(batch)
        _, terms, count = negative_elbo(output)
        posterior_mean = output["posterior_mean"]
        if n_samples > 0:
            log_p, posterior_mean = importance_sampled_log_likelihood(model, batch, n_samples)
            terms["log_likelihood"] = log_p.sum() / count
            examples["log_likelihood"] += (log_p / output["units"]).tolist() if per_example else []
        if per_example:
            elbo = output["log_px"] - output["kl"].sum(-1)
            examples["elbo"] += (elbo / output["units"]).tolist()
        sums = running_sums(terms, count, sums)
        sums["examples"] = sums.get("examples", 0) + batch_size(batch)
        moments = add_sums(moments, moment_sums(posterior_mean))
        seen += batch_size(batch)
        if limit is not None and seen >= limit:
            break
    sums = distributed.sum_over_ranks(sums, device)
    n_examples, n_units = int(sums.pop("examples")), float(sums["n"])
    moments = {k: v.cpu() if torch.is_tensor(v) else v
               for k, v in distributed.sum_over_ranks(moments, device).items()}
    results = means(sums)
    results.update(n_examples=n_examples, n_units=n_units, active_units=active_units(**moments))
    bits_per_dim = getattr(model.likelihood, "bits_per_dim", None)
    if bits_per_dim is not None:
        results["elbo_bits_per_dim"] = bits_per_dim(-results["loss"])
        if "log_likelihood" in results:
            results["log_likelihood_bits_per_dim"] = bits_per_dim(results["log_likelihood"])
    if per_example:
        results["per_example"] = {k: v for k, v in examples.items() if v}
    return results


def running_sums(terms, count, sums=None):
    """Add count-weighted terms to sums without synchronising with the device."""
    sums = {} if sums is None else sums
    for key, value in terms.items():
        sums[key] = sums.get(key, 0) + value * count
    sums["n"] = sums.get("n", 0) + count
    return sums


def add_sums(total, sums):
    return dict(sums) if total is None else {k: total[k] + v for k, v in sums.items()}


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
