"""Observation models p(x | z): each maps decoder outputs and data to log p(x|z) per example.

Each entry of LIKELIHOODS gives the number of decoder outputs for data of a given width and
the log-probability, summed over everything but the batch dimension.
"""

import torch
import torch.nn.functional as F

from model import gaussian


def bernoulli_log_prob(logits, x):
    """log Bernoulli(x; sigmoid(logits)) = x * l - softplus(l), summed over the last dim.

    The same value as -BCE-with-logits, but x may broadcast against logits: importance
    sampling scores (K, B, D) logits against (B, D) data without copying the data K times.
    """
    return BernoulliLogProb.apply(logits, x)


class BernoulliLogProb(torch.autograd.Function):
    """x * l - softplus(l) summed over the last dim, with a one-pass backward (x - sigmoid(l)).

    Speed (the likelihood of 784 pixels is the largest elementwise op of a training step):
    softplus(l) = max(l, 0) + log(1 + exp(-|l|)) uses log, not log1p or softplus, which are
    about 8x slower on CPUs here. Since exp(-|l|) <= 1, log(1 + e) differs from log1p(e) by
    at most ~6e-8 nats per pixel. The backward is one fused expression instead of autograd's
    chain through softplus, mul and sum.
    """

    @staticmethod
    def forward(ctx, logits, x):
        ctx.save_for_backward(logits, x)
        softplus = logits.clamp_min(0).add_(torch.log(torch.exp(-logits.abs()).add_(1.0)))
        return (x * logits).sub_(softplus).sum(-1)

    @staticmethod
    def backward(ctx, grad):
        logits, x = ctx.saved_tensors
        grad = grad.unsqueeze(-1)
        grad_logits = grad_x = None
        if ctx.needs_input_grad[0]:
            grad_logits = (x - torch.sigmoid(logits)).mul_(grad)
        if ctx.needs_input_grad[1]:
            grad_x = sum_to_shape(logits * grad, x.shape)
        return grad_logits, grad_x


def sum_to_shape(tensor, shape):
    """Sum a broadcast result back to the shape of the input it broadcast from."""
    return tensor.sum_to_size(shape) if tensor.shape != shape else tensor


def bernoulli_sample(logits):
    return torch.bernoulli(torch.sigmoid(logits))


def stroke_outputs(n_mixtures):
    """Pen-stroke steps (pen_lift, dx, dy): 1 pen logit + per component (weight, 2 means,
    2 log-variances) of a diagonal Gaussian mixture over the offsets."""
    return 1 + 5 * n_mixtures


def split_stroke_params(params):
    n_mixtures = (params.shape[-1] - 1) // 5
    pen_logit = params[..., 0]
    weights, means, logvars = params[..., 1:].split([n_mixtures, 2 * n_mixtures,
                                                     2 * n_mixtures], dim=-1)
    means = means.unflatten(-1, (n_mixtures, 2))
    logvars = gaussian.clamp_logvar(logvars.unflatten(-1, (n_mixtures, 2)))
    return pen_logit, F.log_softmax(weights, dim=-1), means, logvars


def stroke_log_prob(params, x):
    """log Bernoulli(pen) + log sum_k pi_k N((dx, dy); mu_k, diag sigma_k^2), per example."""
    pen_logit, log_weights, means, logvars = split_stroke_params(params)
    log_pen = -F.binary_cross_entropy_with_logits(pen_logit, x[..., 0], reduction="none")
    offsets = x[..., 1:].unsqueeze(-2)  # against every component
    log_components = gaussian.log_density(offsets, means, logvars)
    return log_pen + torch.logsumexp(log_weights + log_components, dim=-1)


def stroke_sample(params):
    pen_logit, log_weights, means, logvars = split_stroke_params(params)
    k = torch.distributions.Categorical(logits=log_weights).sample().unsqueeze(-1)
    pick = lambda t: t.gather(-2, k.unsqueeze(-1).expand(*k.shape, 2)).squeeze(-2)  # noqa: E731
    offsets = gaussian.sample(pick(means), pick(logvars))
    return torch.cat([torch.bernoulli(torch.sigmoid(pen_logit)).unsqueeze(-1), offsets], dim=-1)


LIKELIHOODS = {"bernoulli": bernoulli_log_prob}
SEQUENCE_LIKELIHOODS = {
    # name: (decoder outputs for data width D, log p per step, sampler)
    "bernoulli": (lambda width, n_mixtures: width,
                  lambda p, x: bernoulli_log_prob(p, x), bernoulli_sample),
    "strokes": (lambda width, n_mixtures: stroke_outputs(n_mixtures),
                stroke_log_prob, stroke_sample),
}
