"""The closed forms against Monte-Carlo estimates and against their defining identities."""
import torch

from model import gaussian


def random_params(n, d, generator):
    mu = torch.randn(n, d, generator=generator, dtype=torch.float64)
    logvar = torch.randn(n, d, generator=generator, dtype=torch.float64)
    return mu, logvar


def test_kl_matches_monte_carlo_estimate():
    g = torch.Generator().manual_seed(1)
    mu_q, logvar_q = random_params(4, 16, g)
    mu_p, logvar_p = random_params(4, 16, g)
    z = mu_q + torch.exp(0.5 * logvar_q) * torch.randn(200_000, 4, 16, generator=g,
                                                       dtype=torch.float64)
    monte_carlo = (gaussian.log_density(z, mu_q, logvar_q)
                   - gaussian.log_density(z, mu_p, logvar_p)).mean(0)
    closed_form = gaussian.kl_divergence(mu_q, logvar_q, mu_p, logvar_p)
    assert torch.allclose(monte_carlo, closed_form, rtol=0.02, atol=0.05), (monte_carlo, closed_form)


def test_kl_is_zero_for_identical_distributions():
    mu, logvar = random_params(2, 5, torch.Generator().manual_seed(3))
    assert torch.allclose(gaussian.kl_divergence(mu, logvar, mu, logvar),
                          torch.zeros(2, dtype=torch.float64))


def test_fusion_is_the_normalised_product_of_the_two_gaussians():
    """N(z; a) N(z; b) / N(z; fused) must not depend on z: the fused Gaussian is the product."""
    g = torch.Generator().manual_seed(4)
    mu_a, logvar_a = random_params(1, 6, g)
    mu_b, logvar_b = random_params(1, 6, g)
    mu_q, logvar_q = gaussian.fuse(mu_a, logvar_a, mu_b, logvar_b)
    z = torch.randn(50, 1, 6, generator=g, dtype=torch.float64) * 3
    per_dim = lambda m, lv: -0.5 * (gaussian.LOG_2PI + lv + (z - m) ** 2 * torch.exp(-lv))  # noqa
    ratio = per_dim(mu_a, logvar_a) + per_dim(mu_b, logvar_b) - per_dim(mu_q, logvar_q)
    assert torch.allclose(ratio, ratio[:1].expand_as(ratio), atol=1e-9)


def test_fusion_closed_form_values():
    mu_q, logvar_q = gaussian.fuse(torch.tensor([1.0]), torch.log(torch.tensor([1.0])),
                                   torch.tensor([4.0]), torch.log(torch.tensor([3.0])))
    # precisions 1 and 1/3: var = 1 / (4/3) = 0.75, mu = 0.75 * (1 + 4/3) = 1.75
    assert torch.allclose(torch.exp(logvar_q), torch.tensor([0.75]))
    assert torch.allclose(mu_q, torch.tensor([1.75]))


def test_fusion_is_finite_for_extreme_variances():
    mu_q, logvar_q = gaussian.fuse(torch.tensor([0.5]), torch.tensor([gaussian.LOGVAR_MIN]),
                                   torch.tensor([2.0]), torch.tensor([gaussian.LOGVAR_MAX]))
    assert torch.isfinite(mu_q).all() and torch.isfinite(logvar_q).all()
    assert torch.allclose(mu_q, torch.tensor([0.5]), atol=1e-6)
