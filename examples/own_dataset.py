"""Register a data set made here (8x8 images of random full rows) and train a Graph VAE on it:

    python examples/own_dataset.py --epochs 1

The data set is one decorated function (docs/api.md); the config names it like a built-in one.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # graphvae's repository root

import torch  # noqa: E402

import graphvae  # noqa: E402


@graphvae.IMAGE_DATASETS.register("bars")
def bars(data_dir, train):
    """Binary 8x8 images, each row on or off at random: 8 independent factors."""
    n = 2000 if train else 500
    generator = torch.Generator().manual_seed(int(train))
    return torch.randint(0, 2, (n, 8, 1), generator=generator).bool().expand(n, 8, 8)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--save-dir", default="saved/")
    args = parser.parse_args()
    config = {"n_gpu": 0,
              "arch": {"type": "GraphVAE", "args": {
                  "n_nodes": 4, "node_dim": 2, "encoder_hidden": [64], "feature_dim": 32,
                  "bottom_up_hidden": 32, "top_down_hidden": 32, "decoder_hidden": [64]}},
              "data_loader": {"type": "ImageDataLoader",
                              "args": {"dataset": "bars", "validation_size": 200,
                                       "batch_size": 100}},
              "trainer": {"epochs": args.epochs, "save_dir": args.save_dir,
                          "tensorboard": False}}
    run_dir, _ = graphvae.train(config)
    results = graphvae.evaluate(run_dir / "model_best.safetensors", n_samples=10)
    print(f"test ELBO {results['elbo']:.2f} nats per image; the run: {run_dir}")


if __name__ == "__main__":
    main()
