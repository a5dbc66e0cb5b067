"""Evaluation metrics: the importance-sampled log-likelihood (method.md, Evaluation)."""
import math

import torch

from data_loader.batches import batch_size


@torch.inference_mode()
def importance_sampled_log_likelihood(model, x, n_samples, max_rows=2048):
    """log p(x) ~= logsumexp_k [log p(x, z_k) - log q(z_k | x)] - log K, z_k ~ q(z|x).

    Uses the model in its current mode (eval: discrete graph). Samples are processed in chunks
    of at most max_rows rows (chunk * batch), so memory stays bounded for any K; chunks of
    ~2k rows keep the decoder's activations in the CPU's caches (faster than larger ones).
    x is an image batch or a sequence batch dict; returns the estimate for each example, (B,).
    """
    chunk = max(1, min(n_samples, max_rows // batch_size(x)))
    log_weights = []
    for start in range(0, n_samples, chunk):
        log_weights.append(model.log_importance_weights(x, min(chunk, n_samples - start)))
    return torch.logsumexp(torch.cat(log_weights), dim=0) - math.log(n_samples)
