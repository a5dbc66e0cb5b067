"""A model's size, bounded before it is built: a config (or a checkpoint's data width) that
asks for 10**13 hidden units fails with one line instead of allocating until it crashes.

The model is built once on torch's "meta" device, where tensors have shapes but no memory, and
its parameters and buffers are counted against MAX_PARAMETERS.
"""
import torch

from utils.errors import ConfigError

# 100 times the largest config's model (GraphVAE on CIFAR-10: 4.9 million parameters); its
# training state (weights, gradients, Adam's two moments) would take 16 GB.
MAX_PARAMETERS = 250_000_000
FIX = "choose smaller sizes (encoder_hidden, decoder_hidden, n_nodes, node_dim, ...)"


def check_model_size(build):
    """build() on the meta device; a ConfigError if its model holds more than
    MAX_PARAMETERS numbers."""
    try:
        with torch.device("meta"):
            model = build()
    except RuntimeError as e:
        if "overflow" not in str(e):  # a tensor whose element count overflows 64 bits
            raise
        raise ConfigError(f"arch.args make a model too large to count ({e}); {FIX}") from None
    count = sum(t.numel() for t in (*model.parameters(), *model.buffers()))
    if count > MAX_PARAMETERS:
        raise ConfigError(f"arch.args make a model of {count:.3g} parameters, more than the "
                          f"{MAX_PARAMETERS:.3g} graphvae builds (the largest config has "
                          f"5e6); {FIX}")
