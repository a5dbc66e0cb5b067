"""A synthetic image data set made from a known sparse latent DAG: a ground truth for
structure learning (docs/method.md §7), generated from a seed, nothing downloaded or written.

Four factors z0..z3 of FACTOR_DIM dims, ordered like GraphVAE's nodes (z3 is a root; a factor's
parents have higher indices). TRUE_EDGES, as (parent, child): z3 -> z1 and z1 -> z0; z2 is
independent of the rest, and z0 depends on z3 only through z1 (z3 -> z0 is no edge, though z0
and z3 are correlated). A root is N(0, I); a child is rho * R z_parent + sqrt(1 - rho^2) eps
with R a random rotation, so every factor is N(0, I) and each true edge carries
-FACTOR_DIM / 2 * log(1 - rho^2) nats of information about its child.

Factor k renders only its own block of the image: rows 4k..4k+3 of a 16 x 16 image (pixels
64k..64k+63 when flattened), intensity sigmoid(GAIN * W_k z_k + b_k) with W_k, b_k fixed random
numbers, stored as 8-bit intensities; data loaders binarize them like any image data set. With
GraphVAE's block decoder (node k -> block k) the true DAG is what a learner should find, up to
an invertible map inside each node; without it, nothing ties a node to a factor and the model
may regroup the factors, so the DAG is not identifiable.
"""
import math

import torch

N_FACTORS, FACTOR_DIM = 4, 2
TRUE_EDGES = ((3, 1), (1, 0))  # (parent, child)
RHO = 0.9  # how strongly a child follows its parent
GAIN = 2.0
SIDE, BLOCK_ROWS = 16, 4  # a 16 x 16 image, 4 rows (64 pixels) per factor
IMAGE_SHAPE = (1, SIDE, SIDE)
SIZES = {"train": 20000, "test": 5000}  # the training set holds the validation split
GENERATOR_SEED = 0


def true_dag():
    """The true edges as names ("z3->z1", ...), in GraphVAE's naming."""
    return [f"z{j}->z{i}" for j, i in TRUE_EDGES]


def edge_information():
    """Nats of information each true edge carries about its child (the best an edge can add
    to the ELBO when the posterior is exact)."""
    return -FACTOR_DIM / 2 * math.log(1 - RHO ** 2)


def synthetic_dag_images(train, seed=GENERATOR_SEED):
    """The training (or test) images as (n, 256) uint8 intensities, and their factors
    (n, N_FACTORS, FACTOR_DIM). The DAG's rotations and the rendering depend on seed only;
    the training and test images are different draws of the same distribution."""
    rotations, weights, biases = parameters(seed)
    draws = torch.Generator().manual_seed(seed + 1_000_003 * (1 if train else 2))
    factors = sample_factors(SIZES["train" if train else "test"], rotations, draws)
    return render(factors, weights, biases), factors


def parameters(seed):
    """(rotations (N, d, d), weights (N, d, 64), biases (N, 64)) drawn from seed."""
    generator = torch.Generator().manual_seed(seed)
    rotations = torch.stack([torch.linalg.qr(torch.randn(FACTOR_DIM, FACTOR_DIM,
                                                         generator=generator))[0]
                             for _ in range(N_FACTORS)])
    block = BLOCK_ROWS * SIDE
    weights = torch.randn(N_FACTORS, FACTOR_DIM, block, generator=generator)
    biases = 0.5 * torch.randn(N_FACTORS, block, generator=generator)
    return rotations, weights, biases


def sample_factors(n, rotations, generator):
    """n draws of the factors from the DAG, (n, N_FACTORS, FACTOR_DIM)."""
    parent_of = {child: parent for parent, child in TRUE_EDGES}
    factors = [None] * N_FACTORS
    for k in reversed(range(N_FACTORS)):  # parents (higher indices) first
        noise = torch.randn(n, FACTOR_DIM, generator=generator)
        if k in parent_of:
            follow = factors[parent_of[k]] @ rotations[k].T
            noise = RHO * follow + math.sqrt(1 - RHO ** 2) * noise
        factors[k] = noise
    return torch.stack(factors, dim=1)


def render(factors, weights, biases):
    """8-bit images of factors: block k (pixels 64k..64k+63) from factor k alone."""
    logits = GAIN * torch.einsum("nkd,kdp->nkp", factors, weights) + biases
    return torch.round(torch.sigmoid(logits).flatten(1) * 255).to(torch.uint8)
