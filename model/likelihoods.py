"""Observation models p(x | z): each maps decoder outputs and data to log p(x|z) per example."""
import torch.nn.functional as F


def bernoulli_log_prob(logits, x):
    """log Bernoulli(x; sigmoid(logits)) summed over pixels (stable BCE-with-logits form)."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(-1)


LIKELIHOODS = {"bernoulli": bernoulli_log_prob}
