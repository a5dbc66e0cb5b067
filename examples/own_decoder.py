"""Register a decoder written here (one linear layer from the latents to the pixels' logits)
and train a Graph VAE with it on Fashion-MNIST:

    python examples/own_decoder.py --epochs 1 [--data-dir data/]

The decoder is one decorated class (docs/api.md); the config names it as arch.args.decoder.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # graphvae's repository root

import torch  # noqa: E402

import graphvae  # noqa: E402


@graphvae.DECODERS.register("linear")
class LinearDecoder(torch.nn.Module):
    """(..., N, d) latents -> (..., likelihood.n_params): the decoder's contract."""

    def __init__(self, n_nodes, node_dim, hidden, likelihood):
        super().__init__()
        self.linear = torch.nn.Linear(n_nodes * node_dim, likelihood.n_params)

    def forward(self, z):
        return self.linear(z.flatten(-2))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--save-dir", default="saved/")
    parser.add_argument("--data-dir", default="data/")
    args = parser.parse_args()
    config = {"n_gpu": 0,
              "arch": {"type": "GraphVAE", "args": {
                  "n_nodes": 3, "node_dim": 4, "decoder": "linear", "encoder_hidden": [128],
                  "feature_dim": 64, "bottom_up_hidden": 32, "top_down_hidden": 32}},
              "data_loader": {"type": "ImageDataLoader",
                              "args": {"data_dir": args.data_dir, "subset": 2000,
                                       "validation_size": 1000, "batch_size": 100}},
              "trainer": {"epochs": args.epochs, "save_dir": args.save_dir,
                          "tensorboard": False}}
    run_dir, trainer = graphvae.train(config)
    results = graphvae.evaluate(run_dir / "model_best.safetensors", n_samples=10, limit=500)
    print(f"test ELBO {results['elbo']:.2f} nats per image (first 500 test images); "
          f"the run: {run_dir}")


if __name__ == "__main__":
    main()
