"""Which way the plain ELBO pushes each edge: the gradient of -log p(x|z) and of the KL with
respect to every structure logit, on training batches (docs/method.md §7).

    python -m bench.edge_gradients --resume saved/models/.../checkpoint-epoch10.safetensors [--batches 50]

The model is put in training mode at the temperature of the epoch after the checkpoint's
(relaxed gates, as training would see them); the gradients of the two parts of the negative
ELBO (per example, the structure cost left out) are averaged over the batches. A negative
total means that gradient descent raises sigma(alpha): the ELBO favours the edge. The share
is the KL's part of the total. Nothing is written back to the checkpoint.
"""
import sys

if __name__ == "__main__" and not __package__:  # run as a file: bench/ is not a package then
    print("error: run the benchmarks from the repository's root as modules: "
          "python -m bench.edge_gradients", file=sys.stderr)
    sys.exit(2)

import json  # noqa: E402

import torch  # noqa: E402

from experiment import build_loader, load_model  # noqa: E402
from trainer.checkpoint import load_checkpoint  # noqa: E402
from utils.config import ConfigParser  # noqa: E402
from utils.errors import ConfigError, run_cli  # noqa: E402
from utils.help_format import parser as help_parser  # noqa: E402


def edge_gradients(model, loader, batches):
    """{edge: (d recon / d alpha, d KL / d alpha)} averaged over `batches` training batches."""
    gate_sets = [g for g in model.gate_sets().values() if g.learned and not g.is_frozen]
    if not gate_sets:
        raise ConfigError("the checkpoint's graph is not learned or already frozen: its logits "
                          "get no gradient (give a checkpoint from before the freeze)")
    logits = [g.logits for g in gate_sets]
    names = [name for g in gate_sets for name in g.names]
    sums, seen = torch.zeros(2, len(names)), 0
    model.train()
    for batch in loader:
        output = model(batch)
        recon = -output["log_px"].sum() / output["units"].sum()
        kl = output["kl"].sum() / output["units"].sum()
        for row, term in enumerate((recon, kl)):
            grads = torch.autograd.grad(term, logits, retain_graph=row == 0)
            sums[row] += torch.cat(grads)
        seen += 1
        if seen == batches:
            break
    means = (sums / seen).tolist()
    return {name: (means[0][k], means[1][k]) for k, name in enumerate(names)}


def main(argv=None):
    parser = help_parser(__doc__)
    parser.add_argument("--resume", required=True,
                        help="checkpoint whose edges are examined (from before the freeze)")
    parser.add_argument("--batches", type=int, default=50,
                        help="training batches to average over")
    parser.add_argument("--json", help="also write the gradients to this JSON file")
    args = parser.parse_args(argv)
    checkpoint = load_checkpoint(args.resume)
    config = ConfigParser(checkpoint["config"], run_dir=".")
    torch.manual_seed(config["seed"])
    model = load_model(config, checkpoint, args.resume)
    model.start_epoch(checkpoint["epoch"] + 1)  # the temperature training would go on with
    loader = build_loader(config, "train")
    loader.set_epoch(checkpoint["epoch"] + 1)
    gradients = edge_gradients(model, loader, args.batches)
    print(f"{args.resume} (epoch {checkpoint['epoch']}), {args.batches} batches; gradient of "
          f"the negative ELBO per example with respect to each edge logit:")
    print(f"{'edge':16s} {'recon':>10s} {'KL':>10s} {'total':>10s} {'KL share':>9s}")
    for name, (recon, kl) in gradients.items():
        total = recon + kl
        share = f"{kl / total:.0%}" if total else "—"
        print(f"{name:16s} {recon:+10.4f} {kl:+10.4f} {total:+10.4f} {share:>9s}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"checkpoint": str(args.resume), "epoch": checkpoint["epoch"],
                       "batches": args.batches,
                       "gradients": {k: {"recon": r, "kl": q} for k, (r, q) in gradients.items()}},
                      f, indent=2)


if __name__ == "__main__":
    sys.exit(run_cli(main))
