"""Observation models p(x | z) as modules: decoder outputs -> log p(x | z) per example.

Every likelihood is registered (model/registry.LIKELIHOODS) under its `name` and has
`n_params` (how many decoder outputs it reads), is called as
`likelihood(params, x)` for the log-probability summed over everything but the leading
dimensions (x may broadcast against params: importance sampling scores (K, B, D) decoder
outputs against (B, D) data without copying it K times), and has `mean(params)` (what
figures show) and `sample(params)`. Its `data` names the data it models ("binary",
"8-bit", "strokes"): the program refuses a data loader that gives other data.

8-bit images (docs/method.md §6) arrive dequantised, as x = (k + u) / 256 in [0, 1) for the pixel
value k in 0..255 and u ~ U(0, 1) (data_loader: binarize "none"). Two likelihoods read them:
  gaussian              the paper's: a density on [0, 1), N(sigmoid(o), exp(fc(o))), with the
                        log-variance layer fc(D, D) a parameter of the likelihood;
  discretized_logistic  the probability of the bin [k/256, (k+1)/256) that x falls in, under
                        a logistic on the same [0, 1) scale (the end bins reach to -inf and
                        +inf), so it sees the integer k = floor(256 x) and not the noise u.
Their log-likelihoods in bits per dimension: EightBitLikelihood.bits_per_dim.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from model import gaussian
from model.registry import LIKELIHOODS


class BernoulliLogProb(torch.autograd.Function):
    """x * l - softplus(l) summed over the last dim, with a one-pass backward (x - sigmoid(l)).

    Speed (the likelihood of 784 pixels is the largest elementwise op of a training step):
    softplus(l) = max(l, 0) + log(1 + exp(-|l|)) uses log, not log1p or softplus, whose CPU
    kernels are much slower (docs/performance.md). Since exp(-|l|) <= 1, log(1 + e) differs
    from log1p(e) by at most ~6e-8 nats per pixel. The backward is one fused expression
    instead of autograd's chain through softplus, mul and sum.
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


@LIKELIHOODS.register("bernoulli")
class Bernoulli(nn.Module):
    """Binary data (binarized images, piano rolls): one logit per dimension."""

    name, data = "bernoulli", "binary"

    def __init__(self, width):
        super().__init__()
        self.n_params = width

    def forward(self, logits, x):
        return BernoulliLogProb.apply(logits, x)

    def mean(self, logits):
        return torch.sigmoid(logits)

    def sample(self, logits):
        return torch.bernoulli(torch.sigmoid(logits))


@LIKELIHOODS.register("strokes")
class StrokeMixture(nn.Module):
    """Pen-stroke steps (pen_lift, dx, dy): a Bernoulli pen state and a diagonal Gaussian
    mixture over the offsets; 1 pen logit + per component (weight, 2 means, 2 log-variances)."""

    name, data = "strokes", "strokes"

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


class EightBitLikelihood(nn.Module):
    """What the likelihoods of 8-bit pixels share: the data they model and bits per dimension.

    log_bin_volume is the log of the volume that one pixel value's bin has where the
    likelihood's log p lives: -log 256 for a density on [0, 1) (a bin is 1/256 wide), 0 for
    the probability of the bin itself.
    """

    data = "8-bit"
    log_bin_volume = 0.0

    def __init__(self, width):
        super().__init__()
        self.width = width

    def bits_per_dim(self, log_p):
        """-log p(x) in bits per dimension on the 0..255 scale, from log p(x) in nats per image:
        -(log p + D log(bin volume)) / (D ln 2). For the Gaussian's density of dequantised
        pixels that is -(log p(x~) - D log 256) / (D ln 2), an upper bound on the discrete
        data's; the paper reports its negation (e.g. -6.40 on CIFAR-10)."""
        return -(log_p + self.width * self.log_bin_volume) / (self.width * math.log(2))


@LIKELIHOODS.register("gaussian")
class Gaussian(EightBitLikelihood):
    """The paper's likelihood of dequantised pixels: N(x; sigmoid(o), exp(fc(o))) per pixel, for
    the decoder's last output o (one value per pixel) and fc = nn.Linear(D, D), which belongs
    to the likelihood.

    The log-variance stays within [LOGVAR_MIN, LOGVAR_MAX]; LOGVAR_MIN is just below the
    log-variance of a bin's uniform noise, log(1 / (12 * 256**2)) = -13.6, so no fit of the
    data is cut off, and 1 / variance stays finite. The density is evaluated in fp32 (also
    under autocast).
    """

    name = "gaussian"
    log_bin_volume = -math.log(256)
    LOGVAR_MIN, LOGVAR_MAX = -14.0, 4.0

    def __init__(self, width):
        super().__init__(width)
        self.n_params = width
        self.log_variance = nn.Linear(width, width)

    def split(self, params):
        with torch.autocast(params.device.type, enabled=False):
            logvar = self.log_variance(params.float())
        return torch.sigmoid(params), logvar.clamp(self.LOGVAR_MIN, self.LOGVAR_MAX)

    def forward(self, params, x):
        return gaussian.log_density(x, *self.split(params))

    def mean(self, params):
        return torch.sigmoid(params)

    def sample(self, params):
        return gaussian.sample(*self.split(params))


@LIKELIHOODS.register("discretized_logistic")
class DiscretizedLogistic(EightBitLikelihood):
    """P(k) of the pixel value k = floor(256 x) under a logistic with location sigmoid(o_1) and
    log-scale o_2 (the decoder gives both, 2 values per pixel) on the [0, 1) scale: the mass of
    the bin [k/256, (k+1)/256), with bin 0 reaching to -inf and bin 255 to +inf, so that the
    256 probabilities sum to 1.

    With a = (upper - mu) / s and b = (lower - mu) / s, sigma(a) - sigma(b) =
    sigma(a) sigma(-b) (1 - exp(b - a)): its log is a sum of terms that are each stable (no
    difference of nearly equal numbers), whatever the scale. The log-scale stays within
    [LOG_SCALE_MIN, LOG_SCALE_MAX]: at e^-8 a bin centred on the location holds 99.4 % of the
    mass (a bin is 1/256 = e^-5.5 wide); e^2 is wider than all of [0, 1).
    """

    name = "discretized_logistic"
    LOG_SCALE_MIN, LOG_SCALE_MAX = -8.0, 2.0

    def __init__(self, width):
        super().__init__(width)
        self.n_params = 2 * width

    def split(self, params):
        location, log_scale = params.chunk(2, dim=-1)
        return torch.sigmoid(location), log_scale.clamp(self.LOG_SCALE_MIN, self.LOG_SCALE_MAX)

    def forward(self, params, x):
        location, log_scale = self.split(params)
        k = torch.floor(x * 256).clamp_(0, 255)
        inv_scale = torch.exp(-log_scale)
        above = (k + 1) / 256 - location  # the bin's upper edge, relative to the location
        a = above * inv_scale
        b = a - inv_scale / 256  # the lower edge
        log_upper, log_above_lower = F.logsigmoid(a), F.logsigmoid(-b)
        inner = log_upper + log_above_lower + torch.log(-torch.expm1(-inv_scale / 256))
        log_mass = torch.where(k == 0, log_upper, torch.where(k == 255, log_above_lower, inner))
        return log_mass.sum(-1)

    def mean(self, params):
        return self.split(params)[0]  # the location (the mean but for the clipped tails)

    def sample(self, params):
        """The centre of a sampled bin, (k + 0.5) / 256."""
        location, log_scale = self.split(params)
        u = torch.rand_like(location).clamp_(1e-6, 1 - 1e-6)
        value = location + log_scale.exp() * (torch.log(u) - torch.log1p(-u))
        return (torch.floor(value * 256).clamp_(0, 255) + 0.5) / 256


def build_likelihood(name, width, **options):
    return LIKELIHOODS[name](width, **options)


def likelihoods_for(data):
    """The names of the likelihoods that model `data` ("binary", "8-bit", ...)."""
    return [name for name, cls in LIKELIHOODS.entries.items() if cls.data == data]
