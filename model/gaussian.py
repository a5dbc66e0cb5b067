"""Closed-form operations on diagonal Gaussians, parameterised by mean and log-variance.

Every function sums over the last dimension (the dims of one latent node), so the results
are per-example, per-node quantities.
"""
import math

import torch

LOG_2PI = math.log(2 * math.pi)

# Bounds on log-variances: exp(-12) to exp(8) covers every scale a unit-variance prior needs
# and keeps precisions finite in float32 (see clamp_logvar).
LOGVAR_MIN, LOGVAR_MAX = -12.0, 8.0


def clamp_logvar(logvar):
    """Keep log-variances where exp() and 1/var are finite; gradients pass inside the bounds."""
    return logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)


def fuse(mu_hat, logvar_hat, mu_p, logvar_p):
    """Precision-weighted fusion of the bottom-up estimate with the top-down prior (Ladder VAE).

    var_q = 1 / (1/var_hat + 1/var_p),  mu_q = var_q * (mu_hat/var_hat + mu_p/var_p).
    Computed in log space (logaddexp) so that tiny variances do not overflow the precisions.
    """
    logvar_q = -torch.logaddexp(-logvar_hat, -logvar_p)
    mu_q = mu_hat * torch.exp(logvar_q - logvar_hat) + mu_p * torch.exp(logvar_q - logvar_p)
    return mu_q, logvar_q


def kl_divergence(mu_q, logvar_q, mu_p, logvar_p):
    """KL(N(mu_q, var_q) || N(mu_p, var_p)), summed over the last dimension."""
    var_ratio = torch.exp(logvar_q - logvar_p)
    mean_term = (mu_q - mu_p).pow(2) * torch.exp(-logvar_p)
    return 0.5 * (var_ratio + mean_term - 1.0 - (logvar_q - logvar_p)).sum(-1)


def log_density(z, mu, logvar):
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


def sample(mu, logvar):
    """Reparameterised sample mu + sigma * eps."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
