"""The building blocks of the paper's MLPs (appendix): fc-BN-ReLU stacks and grouped layers."""
import math

import torch
from torch import nn


def mlp(sizes, final_activation=False, batch_norm=True):
    """fc-BN-ReLU for every layer but the last, which is a plain fc unless final_activation.
    Without batch_norm (e.g. inside recurrences over padded batches): fc-ReLU."""
    layers = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if k < len(sizes) - 2 or final_activation:
            layers += [nn.BatchNorm1d(n_out), nn.ReLU(inplace=True)] if batch_norm else [nn.ReLU()]
    return nn.Sequential(*layers)


class GroupedLinear(nn.Module):
    """G independent linear layers applied at once, group-major: (G, B, n_in) -> (G, B, n_out).

    One batched matmul (bias included) replaces G small ones (one per latent node), with the
    same maths and the same initialisation as G separate nn.Linear layers. Group-major rows
    are what the batched matmul reads and saves for its backward without a permuted copy.
    """

    def __init__(self, groups, n_in, n_out):
        super().__init__()
        bound = 1.0 / math.sqrt(n_in)
        self.weight = nn.Parameter(torch.empty(groups, n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(groups, n_out).uniform_(-bound, bound))

    def forward(self, x):
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)


class GroupMajor(nn.Module):
    """(B, G * n) -> (G, B, n): the features of G groups, laid out for GroupedLinear."""

    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        return x.unflatten(1, (self.groups, -1)).transpose(0, 1).contiguous()
