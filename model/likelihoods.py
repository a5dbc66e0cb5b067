"""Observation models p(x | z) as modules: decoder outputs -> log p(x | z) per example.

Every likelihood has `n_params` (how many decoder outputs it reads), is called as
`likelihood(params, x)` for the log-probability summed over everything but the leading
dimensions (x may broadcast against params: importance sampling scores (K, B, D) decoder
outputs against (B, D) data without copying it K times), and has `mean(params)` (what
figures show) and `sample(params)`.
"""
import torch
import torch.nn.functional as F
from torch import nn

from model import gaussian


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
            grad_x = (logits * grad).sum_to_size(x.shape)
        return grad_logits, grad_x


class Bernoulli(nn.Module):
    """Binary data (binarized images, piano rolls): one logit per dimension."""

    def __init__(self, width):
        super().__init__()
        self.n_params = width

    def forward(self, logits, x):
        return BernoulliLogProb.apply(logits, x)

    def mean(self, logits):
        return torch.sigmoid(logits)

    def sample(self, logits):
        return torch.bernoulli(torch.sigmoid(logits))


class StrokeMixture(nn.Module):
    """Pen-stroke steps (pen_lift, dx, dy): a Bernoulli pen state and a diagonal Gaussian
    mixture over the offsets; 1 pen logit + per component (weight, 2 means, 2 log-variances)."""

    def __init__(self, width=3, n_mixtures=5):
        super().__init__()
        if width != 3:
            raise ValueError(f"the strokes likelihood models (pen_lift, dx, dy) steps, not width {width}")
        self.n_mixtures = n_mixtures
        self.n_params = 1 + 5 * n_mixtures

    def split(self, params):
        k = self.n_mixtures
        weights, means, logvars = params[..., 1:].split([k, 2 * k, 2 * k], dim=-1)
        return (params[..., 0], F.log_softmax(weights, dim=-1), means.unflatten(-1, (k, 2)),
                gaussian.clamp_logvar(logvars.unflatten(-1, (k, 2))))

    def forward(self, params, x):
        pen_logit, log_weights, means, logvars = self.split(params)
        log_pen = -F.binary_cross_entropy_with_logits(pen_logit, x[..., 0], reduction="none")
        log_components = gaussian.log_density(x[..., 1:].unsqueeze(-2), means, logvars)
        return log_pen + torch.logsumexp(log_weights + log_components, dim=-1)

    def mean(self, params):
        pen_logit, log_weights, means, _ = self.split(params)
        offsets = (log_weights.exp().unsqueeze(-1) * means).sum(-2)
        return torch.cat([torch.sigmoid(pen_logit).unsqueeze(-1), offsets], dim=-1)

    def sample(self, params):
        pen_logit, log_weights, means, logvars = self.split(params)
        k = torch.distributions.Categorical(logits=log_weights).sample()
        index = k[..., None, None].expand(*k.shape, 1, 2)
        offsets = gaussian.sample(means.gather(-2, index).squeeze(-2),
                                  logvars.gather(-2, index).squeeze(-2))
        return torch.cat([torch.bernoulli(torch.sigmoid(pen_logit)).unsqueeze(-1), offsets], dim=-1)


LIKELIHOODS = {"bernoulli": Bernoulli, "strokes": StrokeMixture}


def build_likelihood(name, width, **options):
    if name not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {name!r}")
    return LIKELIHOODS[name](width, **options)
