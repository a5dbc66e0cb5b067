"""The building blocks of the paper's MLPs (appendix): fc-BN-ReLU stacks and grouped layers;
the MLP encoder and the MLP and block decoders, registered under "mlp" and "block"
(model/registry.py: ENCODERS, DECODERS; the convolutional ones: model/conv_networks.py)."""
import math

import torch
from torch import nn

from model.registry import DECODERS, ENCODERS


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


@ENCODERS.register("mlp")
def mlp_encoder(input_dim, hidden, feature_dim):
    return mlp([input_dim, *hidden, feature_dim])


class LatentMLP(nn.Sequential):
    """An MLP on the latents concatenated: (..., N, d) -> (..., outputs); the layers of
    mlp(), so its weights are named as theirs."""

    def forward(self, z):
        leading = z.shape[:-2]
        return super().forward(z.reshape(-1, z.shape[-2] * z.shape[-1])).view(*leading, -1)


@DECODERS.register("mlp")
def mlp_decoder(n_nodes, node_dim, hidden, likelihood):
    """The paper's MLP on concat(z_1..z_N)."""
    return LatentMLP(*mlp([n_nodes * node_dim, *hidden, likelihood.n_params]))


@DECODERS.register("block")
def block_decoder(n_nodes, node_dim, hidden, likelihood):
    """Node i -> output block i (BlockDecoder); it needs a likelihood with one parameter per
    output and no layer across outputs."""
    if likelihood.name != "bernoulli":
        raise ValueError(f"decoder 'block' needs likelihood 'bernoulli' (one logit per output), "
                         f"not {likelihood.name!r}")
    return BlockDecoder(n_nodes, node_dim, hidden, likelihood.n_params)


class BlockDecoder(nn.Module):
    """A decoder that ties each latent node to its own block of outputs: node i's d dims go
    through their own MLP to outputs [i * W, (i + 1) * W), W = n_outputs / N. With it, "node i
    explains block i" and a DAG over the nodes can be compared with the data's true one.
    (N, d) latents in, (n_outputs,) out, for any leading dimensions."""

    def __init__(self, n_nodes, node_dim, hidden, n_outputs):
        super().__init__()
        if n_outputs % n_nodes:
            raise ValueError(f"the block decoder gives each of the {n_nodes} nodes an equal "
                             f"block of the {n_outputs} outputs: use n_nodes dividing {n_outputs}")
        self.blocks = nn.ModuleList(mlp([node_dim, *hidden, n_outputs // n_nodes])
                                    for _ in range(n_nodes))

    def forward(self, z):
        leading = z.shape[:-2]
        z = z.reshape(-1, *z.shape[-2:])
        out = torch.cat([block(z[:, i]) for i, block in enumerate(self.blocks)], dim=-1)
        return out.view(*leading, -1)
