"""The likelihoods of 8-bit images against torch.distributions and direct sums over the bins."""
import math

import pytest
import torch

from model.likelihoods import Gaussian, build_likelihood

D = 6


def bins(k):
    """Points x = (k + u) / 256 of the pixel values k (tensor), u = 0.3."""
    return (k.float() + 0.3) / 256


def test_the_gaussian_is_normal_of_sigmoid_mean_and_fc_log_variance():
    likelihood = build_likelihood("gaussian", D)
    assert isinstance(likelihood, Gaussian) and likelihood.n_params == D
    assert likelihood.log_variance.weight.shape == (D, D)  # fc(in, in), a likelihood parameter
    o, x = torch.randn(4, D), torch.rand(4, D)
    normal = torch.distributions.Normal(torch.sigmoid(o),
                                        torch.exp(0.5 * likelihood.log_variance(o)))
    assert torch.allclose(likelihood(o, x), normal.log_prob(x).sum(-1), atol=1e-5)
    assert torch.equal(likelihood.mean(o), torch.sigmoid(o))
    assert likelihood.sample(o).shape == (4, D)


@pytest.mark.parametrize("name", ["gaussian", "discretized_logistic"])
def test_k_samples_of_params_score_the_same_data_without_copies(name):
    likelihood = build_likelihood(name, D)
    params, x = 2 * torch.randn(3, 4, likelihood.n_params), torch.rand(4, D)
    together = likelihood(params, x)
    assert together.shape == (3, 4)
    for k in range(3):
        assert torch.allclose(together[k], likelihood(params[k], x), atol=1e-5)


def bin_probabilities(location, scale):
    """P(k) for k = 0..255 of one pixel directly: the logistic CDF at the bin edges in float64,
    the end bins reaching to -inf and +inf."""
    edges = torch.arange(1, 256, dtype=torch.float64) / 256
    cdf = torch.sigmoid((edges - location) / scale)
    one, zero = torch.ones(1, dtype=cdf.dtype), torch.zeros(1, dtype=cdf.dtype)
    return torch.cat([cdf, one]) - torch.cat([zero, cdf])


def test_the_discretized_logistic_is_the_logistic_mass_of_the_pixel_bin_and_sums_to_one():
    assert build_likelihood("discretized_logistic", D).n_params == 2 * D
    likelihood = build_likelihood("discretized_logistic", 1)
    values = torch.arange(256)
    # locations (as logits) and log-scales from wider than [0, 1) to sharper than a bin
    for location_logit, log_scale in [(0.0, 0.0), (-3.0, -2.0), (4.0, -5.0), (0.5, -7.5),
                                      (-0.2, 1.5), (8.0, -4.0)]:
        params = torch.tensor([location_logit, log_scale])
        log_p = likelihood(params, bins(values).unsqueeze(-1)).double()  # (256,): log P(k)
        direct = bin_probabilities(torch.sigmoid(torch.tensor(location_logit)).double(),
                                   math.exp(log_scale))
        assert math.isclose(log_p.exp().sum().item(), 1.0, abs_tol=1e-5)
        likely = direct > 1e-12  # where float64 differences are exact enough to compare logs
        assert torch.allclose(log_p[likely], direct.log()[likely], atol=2e-4), location_logit
    # pixels are independent: D of them sum their log-probabilities
    wide = build_likelihood("discretized_logistic", 2)
    k = torch.tensor([[3, 200]])
    params = torch.tensor([0.1, -1.0, -4.0, -5.0])  # (location logits, log-scales)
    single = sum(likelihood(params[[j, j + 2]], bins(k[:, j:j + 1])) for j in range(2))
    assert torch.allclose(wide(params, bins(k)), single)


def test_the_discretized_logistic_reads_the_bin_not_the_noise():
    likelihood = build_likelihood("discretized_logistic", D)
    params, k = torch.randn(2, 2 * D), torch.randint(0, 256, (2, D))
    low, high = k.float() / 256, (k.float() + 0.999) / 256
    assert torch.equal(likelihood(params, low), likelihood(params, high))


def test_the_discretized_logistic_is_finite_with_gradients_far_from_its_location():
    likelihood = build_likelihood("discretized_logistic", 1)
    for location, log_scale, value in [(12.0, -8.0, 3), (-12.0, -8.0, 250), (0.0, -8.0, 0),
                                       (0.0, 2.0, 128), (0.0, -30.0, 128)]:
        params = torch.tensor([location, log_scale], requires_grad=True)
        log_p = likelihood(params, bins(torch.tensor([value])))
        log_p.backward()
        assert torch.isfinite(log_p) and torch.isfinite(params.grad).all(), (location, value)


def test_bits_per_dim_is_the_negative_log_likelihood_on_the_0_255_scale():
    """The uniform distribution over 256 values is 8 bits per dimension under either: as a
    probability 1/256 per pixel, or as the density 1 on [0, 1) of the dequantised pixels."""
    width = 3072
    uniform_mass = width * math.log(1 / 256)
    discretized = build_likelihood("discretized_logistic", width)
    assert math.isclose(discretized.bits_per_dim(uniform_mass), 8.0)
    assert math.isclose(build_likelihood("gaussian", width).bits_per_dim(0.0), 8.0)
    # 1 nat per pixel better than uniform is 1 / ln 2 bits per dimension fewer
    better = build_likelihood("gaussian", width).bits_per_dim(float(width))
    assert math.isclose(better, 8.0 - 1 / math.log(2))


def test_only_the_8_bit_likelihoods_have_bits_per_dim():
    assert not hasattr(build_likelihood("bernoulli", D), "bits_per_dim")
    assert {build_likelihood(n, D).data for n in ("gaussian", "discretized_logistic")} == {"8-bit"}
