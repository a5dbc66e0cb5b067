"""A synthetic image data set made from a known sparse latent DAG: a ground truth for
structure learning (docs/method.md §7), generated from a seed, nothing downloaded or written.

The ground truth is configurable (data_loader.args.dag; SyntheticDAG declares its settings):

  true_edges      [[parent, child], ...], any number of parents per child; factors are
                  ordered like GraphVAE's nodes, so a parent has a higher index than its child
                  (the root is z_{N-1}); default z3 -> z1, z1 -> z0 (z2 independent)
  n_factors, factor_dim   N factors of d dims (default 4 of 2)
  strength        rho in (0, 1): a child is rho / sqrt(k) * sum_j R_jk g(z_j) + sqrt(1 - rho^2)
                  * eps over its k parents, R_jk a random rotation per edge, eps ~ N(0, I);
                  a root is N(0, I) (default 0.9)
  mechanism       g: "linear" (g(z) = z) or "swirl" (each pair of dims rotated by the angle
                  |pair|^2: nonlinear, invertible, and it keeps N(0, I) as it is)
  block_rows, width  the image is (n_factors * block_rows) x width pixels; factor k draws
                  only rows k*block_rows .. (k+1)*block_rows - 1 (default 4 and 16: 16 x 16)
  train_size, test_size   images generated (the training set holds the validation split)
  generator_seed  the rotations, the rendering and the images

Information (choice): edge j -> k carries I(z_k; z_j | the other parents of z_k) nats, the most
the edge can add to the ELBO of a model that has the other true edges (SyntheticDAG.
edge_information). For the linear mechanism it is exact, from the factors' joint Gaussian
covariance; when a child's parents are independent it is d/2 * log(1 + rho^2 / (k (1 - rho^2)))
(one parent, rho = 0.9, d = 2: 1.66 nats) for either mechanism, since g keeps the parents' law.
With correlated parents (a parent that is also an ancestor of another parent) the swirl's value
is not Gaussian; the linear one is given, marked approximate.

Factor k renders only its own block: intensity sigmoid(GAIN * W_k z_k + b_k), W_k, b_k fixed
random numbers, stored as 8-bit intensities; data loaders binarize them like any image data
set. With GraphVAE's block decoder (node k -> block k) the true DAG is what a learner should
find, up to an invertible map inside each node; without it the DAG is not identifiable.
The defaults give the images of the committed chain results, bit for bit.
"""
import math
from dataclasses import dataclass
from typing import Annotated, Literal

import torch

from data_loader.dag_structure import (check_dag, conditional_information, edge_pairs,
                                       independent, linear_model)
from utils.config import SEED

GAIN = 2.0
MAX_PIXELS = 2 ** 16  # per image
CALIBRATION = 100_000  # draws that set the swirl's mixing for correlated parents
Count = Annotated[int, "[1, inf)"]


@dataclass(frozen=True)
class SyntheticDAG:
    """The settings of data_loader.args.dag: types, ranges and defaults here, checked by
    utils/settings.check_args; the relations between them in __post_init__. true_edges has no
    default: a dag section states its ground truth (a null section is the committed chain)."""
    true_edges: list
    n_factors: Annotated[int, "[1, 128]"] = 4
    factor_dim: Count = 2
    strength: Annotated[float, "(0, 1)"] = 0.9
    mechanism: Literal["linear", "swirl"] = "linear"
    block_rows: Count = 4
    width: Count = 16
    train_size: Annotated[int, "[2, 1000000]"] = 20000
    test_size: Annotated[int, "[1, 1000000]"] = 5000
    generator_seed: Annotated[int, SEED] = 0

    def __post_init__(self):
        object.__setattr__(self, "true_edges", edge_pairs(self.true_edges))
        if self.n_factors * self.block_rows * self.width > MAX_PIXELS:
            raise ValueError(f"at most {MAX_PIXELS} pixels per image "
                             f"(n_factors * block_rows * width)")
        if self.mechanism == "swirl" and self.factor_dim % 2:
            raise ValueError(f"mechanism 'swirl' turns pairs of dims: give an even "
                             f"factor_dim, not {self.factor_dim}")
        check_dag(self.true_edges, self.n_factors)

    @classmethod
    def of(cls, values):
        """The spec of a checked data_loader.args.dag (None: the committed chain)."""
        return DEFAULT if values is None else cls(**values)

    # -- what the truth is --------------------------------------------------------------------
    @property
    def image_shape(self):
        return (1, self.n_factors * self.block_rows, self.width)

    def true_dag(self):
        """The true edges as names ("z3->z1", ...), in GraphVAE's naming."""
        return [f"z{j}->z{i}" for j, i in self.true_edges]

    def parents(self, child):
        """The child's parents, highest index first."""
        return sorted((j for j, i in self.true_edges if i == child), reverse=True)

    def edge_information(self):
        """{edge name: (nats, exact)}: I(z_child; z_parent | the child's other parents), from
        the linear mechanism's covariance; exact for it, and for the swirl when the child's
        parents are independent."""
        maps, _ = linear_model(self, self.parameters()[0])
        cov = torch.cat(maps) @ torch.cat(maps).T
        info = {}
        for j, i in self.true_edges:
            others = [p for p in self.parents(i) if p != j]
            nats = conditional_information(cov, self.factor_dim, i, j, others)
            exact = self.mechanism == "linear" or independent(cov, self.factor_dim,
                                                              self.parents(i))
            info[f"z{j}->z{i}"] = (nats, exact)
        return info

    # -- the data -----------------------------------------------------------------------------
    def images(self, train):
        """The training (or test) images as (n, pixels) uint8 intensities, and their factors
        (n, N, d). Everything but the draws of the factors depends on generator_seed only."""
        rotations, weights, biases = self.parameters()
        mixing = self.mixing(rotations)
        draws = torch.Generator().manual_seed(self.generator_seed + 1_000_003 * (1 if train else 2))
        factors = self.sample_factors(self.train_size if train else self.test_size,
                                      rotations, mixing, draws)
        return render(factors, weights, biases), factors

    def parameters(self):
        """({(parent, child): rotation (d, d)}, weights (N, d, block), biases (N, block)).
        The first N rotations are drawn one per factor, in order, and each child's highest
        parent uses its own; the rotations of further parents are drawn after the rendering
        (so the default chain's images are those of the committed results)."""
        n, d = self.n_factors, self.factor_dim
        generator = torch.Generator().manual_seed(self.generator_seed)
        rotation = lambda: torch.linalg.qr(torch.randn(d, d, generator=generator))[0]  # noqa: E731
        per_factor = [rotation() for _ in range(n)]
        block = self.block_rows * self.width
        weights = torch.randn(n, d, block, generator=generator)
        biases = 0.5 * torch.randn(n, block, generator=generator)
        rotations = {}
        for child in range(n):
            for rank, parent in enumerate(self.parents(child)):
                rotations[(parent, child)] = per_factor[child] if rank == 0 else rotation()
        return rotations, weights, biases

    def mixing(self, rotations):
        """{child: M_k (d, d)} of the data: the linear model's, or under the swirl, for a
        child whose parents are correlated, C^(-1/2) of sum_j R_jk g(z_j) estimated on
        CALIBRATION draws (the swirl changes the parents' correlation: the linear mixing
        would not give unit variance)."""
        linear = {k: m.float() for k, m in linear_model(self, rotations)[1].items()}
        if self.mechanism == "linear":
            return linear
        scaled = {k: len(self.parents(k)) ** -0.5 * torch.eye(self.factor_dim) for k in linear}
        mixing = {k: m if torch.equal(m, scaled[k]) else None for k, m in linear.items()}
        if any(m is None for m in mixing.values()):
            calibration = torch.Generator().manual_seed(self.generator_seed + 3 * 1_000_003)
            self.sample_factors(CALIBRATION, rotations, mixing, calibration)
        return mixing

    def sample_factors(self, n, rotations, mixing, generator):
        """n draws of the factors, (n, N, d): parents (higher indices) first. A child whose
        mixing is None gets the whitening of this sample (written into mixing)."""
        factors = [None] * self.n_factors
        noise_scale = math.sqrt(1 - self.strength ** 2)
        for k in reversed(range(self.n_factors)):
            noise = torch.randn(n, self.factor_dim, generator=generator)
            if self.parents(k):
                follow = sum(mechanism(self.mechanism, factors[j]) @ rotations[(j, k)].T
                             for j in self.parents(k))
                if mixing[k] is None:
                    values, vectors = torch.linalg.eigh(follow.T.double().cov())
                    mixing[k] = (vectors @ torch.diag(values.rsqrt()) @ vectors.T).float()
                noise = self.strength * (follow @ mixing[k].T) + noise_scale * noise
            factors[k] = noise
        return torch.stack(factors, dim=1)


def mechanism(name, z):
    """g(z): z itself, or each pair of dims turned by the angle of its squared radius."""
    if name == "linear":
        return z
    pairs = z.unflatten(-1, (-1, 2))
    angle = pairs.square().sum(-1, keepdim=True)
    x, y = pairs[..., :1], pairs[..., 1:]
    return torch.cat([angle.cos() * x - angle.sin() * y,
                      angle.sin() * x + angle.cos() * y], dim=-1).flatten(-2)


def render(factors, weights, biases):
    """8-bit images of factors: block k from factor k alone."""
    logits = GAIN * torch.einsum("nkd,kdp->nkp", factors, weights) + biases
    return torch.round(torch.sigmoid(logits).flatten(1) * 255).to(torch.uint8)


DEFAULT = SyntheticDAG(true_edges=((3, 1), (1, 0)))  # the committed chain
