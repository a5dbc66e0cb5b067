"""Conv vs MLP encoder and decoder on Fashion-MNIST: one seed, the same epochs, paired on the
same test images.

    python -m bench.conv_vs_mlp [--epochs 10] [--subset N] [-k 100] [--limit 2000]
                                [--data-dir data/] [--save-dir saved/]
                                [--out docs/results/conv_vs_mlp]

Trains config.json's GraphVAE twice, as it is (MLPs) and with arch.args.encoder and decoder
"conv" (model/conv_networks.py; encoder_hidden and decoder_hidden empty, as the CIFAR-10 conv
configs), then evaluates each model_best on the first --limit test images (the same fixed
binarization for both): ELBO and the importance-sampled log-likelihood (K = -k), with the
paired difference conv - MLP and its standard error over the images. Writes <out>/results.json.
"""
import sys

if __name__ == "__main__" and not __package__:  # run as a file: bench/ is not a package then
    print("error: run the benchmarks from the repository's root as modules: "
          "python -m bench.conv_vs_mlp", file=sys.stderr)
    sys.exit(2)

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import graphvae  # noqa: E402
from bench.common import REPO  # noqa: E402
from utils.config import load_json  # noqa: E402

NETWORKS = {"mlp": {}, "conv": {"encoder": "conv", "decoder": "conv", "encoder_hidden": [],
                                "decoder_hidden": []}}


def paired(a, b):
    """(mean of b - a, its standard error) over paired values."""
    differences = [y - x for x, y in zip(a, b)]
    mean = sum(differences) / len(differences)
    variance = sum((d - mean) ** 2 for d in differences) / (len(differences) - 1)
    return mean, math.sqrt(variance / len(differences))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--subset", type=int, default=None, help="training images (default all)")
    parser.add_argument("-k", "--samples", type=int, default=100)
    parser.add_argument("--limit", type=int, default=2000, help="test images evaluated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default="data/")
    parser.add_argument("--save-dir", default="saved/", help="where the two runs go")
    parser.add_argument("--out", default=str(REPO / "docs" / "results" / "conv_vs_mlp"),
                        help="where results.json goes")
    args = parser.parse_args()
    out = Path(args.out)
    results = {"epochs": args.epochs, "subset": args.subset, "seed": args.seed,
               "samples": args.samples, "test_images": args.limit}
    per_example = {}
    for name, networks in NETWORKS.items():
        config = load_json(REPO / "config.json")
        config["arch"].setdefault("args", {}).update(networks)
        config["name"] = f"conv_vs_mlp_{name}"
        start = time.perf_counter()
        run_dir, trainer = graphvae.train(config, **{
            "trainer.epochs": args.epochs, "seed": args.seed, "n_gpu": 0,
            "trainer.save_dir": args.save_dir, "trainer.tensorboard": False,
            "trainer.edge_values": False,
            "data_loader.args.data_dir": args.data_dir, "data_loader.args.subset": args.subset})
        seconds = time.perf_counter() - start
        test = graphvae.evaluate(run_dir / "model_best.safetensors", args.samples, args.limit,
                                 edge_values=False)
        per_example[name] = test["per_example"]
        results[name] = {"elbo": test["elbo"], "log_likelihood": test["log_likelihood"],
                         "active_units": test["active_units"], "params": test["params"],
                         "train_seconds": round(seconds), "epoch": test["epoch"]}
    for metric in ("elbo", "log_likelihood"):
        mean, se = paired(per_example["mlp"][metric], per_example["conv"][metric])
        results[f"{metric}_conv_minus_mlp"] = {"mean": mean, "standard_error": se}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
