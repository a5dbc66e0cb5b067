"""Evaluation metrics (docs/method.md, Evaluation and §5): importance-sampled log-likelihood and
active units."""
import math

import torch

ACTIVE_THRESHOLD = 0.01  # Burda et al. (2016): active if Cov_x(E_q[u | x]) > 0.01


# Rows (samples x examples) of one chunk of importance samples: ~2k keep the decoder's
# activations in a CPU's caches (faster than larger chunks there); a GPU wants large chunks,
# each a few hundred kernel launches whatever its size.
MAX_ROWS = {"cpu": 2048, "cuda": 65536}


@torch.inference_mode()
def importance_sampled_log_likelihood(model, batch, n_samples, max_rows=None):
    """log p(x) ~= logsumexp_k [log p(x, z_k) - log q(z_k | x)] - log K, z_k ~ q(z|x).

    Uses the model in its current mode (eval: discrete graph). Samples are drawn in chunks of
    at most max_rows rows (chunk * batch; default MAX_ROWS of the batch's device), so memory
    stays bounded for any K.
    Returns the estimate per example (B,) and the posterior means averaged over the K samples
    (data points, N, d) for the active units.
    """
    size = batch_size(batch)
    device = (batch["x"] if isinstance(batch, dict) else batch).device.type
    chunk = max(1, min(n_samples, (max_rows or MAX_ROWS.get(device, 2048)) // size))
    log_weights, mean_sum = [], 0.0
    for start in range(0, n_samples, chunk):
        k = min(chunk, n_samples - start)
        output = model(batch, n_samples=k)
        log_weights.append((output["log_px"] + output["log_ratio"]).view(k, size))
        mean_sum = mean_sum + output["posterior_mean"] * k
    log_p = torch.logsumexp(torch.cat(log_weights), dim=0) - math.log(n_samples)
    return log_p, mean_sum / n_samples


def batch_size(batch):
    """Images (B, D) or a sequence batch {"x": (B, T, D), ...}."""
    return (batch["x"] if isinstance(batch, dict) else batch).shape[0]


def moment_sums(posterior_mean):
    """Sums over data points of E_q[u|x] and its square, per unit (N, d), in float64: what
    active_units needs, added up over batches (and processes)."""
    m = posterior_mean.detach().double()
    return {"mean_sum": m.sum(0), "square_sum": m.pow(2).sum(0), "points": m.shape[0]}


def active_units(mean_sum, square_sum, points, threshold=ACTIVE_THRESHOLD):
    """Active units per node from moment_sums added up over the data: Cov_x(E_q[u|x]) > 0.01."""
    mean = mean_sum / points
    variance = square_sum / points - mean.pow(2)
    return (variance > threshold).sum(-1).tolist()
