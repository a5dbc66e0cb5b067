"""The convolutional encoder and decoder, registered as "conv" (model/registry.py): the
DCGAN-style stacks VAE libraries ship for 28x28 and 32x32 images of C channels.

Encoder: 4x4 convolutions of stride 2, each followed by BatchNorm and ReLU, halve the side
(28 -> 14 -> 7 with 32, 64 channels; 32 -> 16 -> 8 -> 4 with 32, 64, 128), then an MLP
(`hidden` its hidden widths) to the features. The decoder mirrors it: an MLP from the latents
to the smallest feature map, transposed convolutions back to the image's side, and as many
output channels as the likelihood reads per pixel (C, or 2C for the discretized logistic).
The image's shape is read from its number of values, channel-major as the data loaders give
them: C * 28 * 28 or C * 32 * 32.
"""
from torch import nn

from model.networks import mlp
from model.registry import DECODERS, ENCODERS

WIDTHS = {28: (32, 64), 32: (32, 64, 128)}  # channels after each stride-2 convolution


def square_image(values):
    """(channels, side) of C * side * side values, side 28 or 32; a ValueError otherwise."""
    for side in WIDTHS:
        if values % (side * side) == 0:
            return values // (side * side), side
    raise ValueError(f"the conv networks take 28x28 or 32x32 images (C * 784 or C * 1024 "
                     f"values), not {values} values; use encoder and decoder 'mlp'")


def halving(c_in, c_out, transposed=False):
    convolution = nn.ConvTranspose2d if transposed else nn.Conv2d
    return [convolution(c_in, c_out, 4, stride=2, padding=1), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


@ENCODERS.register("conv")
class ConvEncoder(nn.Module):
    """(B, C * side * side) images -> (B, feature_dim)."""

    def __init__(self, input_dim, hidden, feature_dim):
        super().__init__()
        channels, side = square_image(input_dim)
        widths = WIDTHS[side]
        self.image_shape = (channels, side, side)
        self.convolutions = nn.Sequential(*(layer for c_in, c_out in zip((channels, *widths),
                                                                         widths)
                                            for layer in halving(c_in, c_out)))
        smallest = side >> len(widths)
        self.head = mlp([widths[-1] * smallest * smallest, *hidden, feature_dim])

    def forward(self, x):
        return self.head(self.convolutions(x.view(-1, *self.image_shape)).flatten(1))


@DECODERS.register("conv")
class ConvDecoder(nn.Module):
    """(..., N, d) latents -> (..., likelihood.n_params), channel-major."""

    def __init__(self, n_nodes, node_dim, hidden, likelihood):
        super().__init__()
        out_channels, side = square_image(likelihood.n_params)
        widths = WIDTHS[side][::-1]
        smallest = side >> len(widths)
        self.start = (widths[0], smallest, smallest)
        self.head = mlp([n_nodes * node_dim, *hidden, widths[0] * smallest * smallest],
                        final_activation=True)
        layers = [layer for c_in, c_out in zip(widths, widths[1:])
                  for layer in halving(c_in, c_out, transposed=True)]
        layers.append(nn.ConvTranspose2d(widths[-1], out_channels, 4, stride=2, padding=1))
        self.convolutions = nn.Sequential(*layers)

    def forward(self, z):
        leading = z.shape[:-2]
        h = self.head(z.reshape(-1, z.shape[-2] * z.shape[-1])).view(-1, *self.start)
        return self.convolutions(h).view(*leading, -1)
