"""Evaluate a checkpoint on the test set: python test.py --resume checkpoint [-k 1000].

Reports the ELBO, the KL of every node and the importance-sampled log-likelihood (K samples
per image or sequence, discrete graph) in nats per image or, for sequences, nats per step;
prints the learned graph and writes everything as JSON next to the checkpoint
(<checkpoint>-test.json), the graph as graph.json and graph.dot.
"""
import json
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from data_loader.batches import batch_size, first_examples, to_device

from model.metrics import importance_sampled_log_likelihood
from utils.build import build_loader, build_loss, build_model, prepare_device
from utils.checkpoint import restore_model
from utils.cli import base_parser, load_run_config, run_cli
from utils.errors import ConfigError
from utils.graph_export import write_graph_dot, write_graph_json


def parse_args(argv):
    parser = base_parser(__doc__)
    parser.add_argument("-k", "--samples", type=int, default=1000,
                        help="importance samples per image (paper: 5000; 0 skips IS-LL)")
    parser.add_argument("--batch-size", type=int, default=100, help="test images per batch")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N images only")
    return parser.parse_args(argv)


@torch.no_grad()
def evaluate(model, loader, loss_fn, n_samples, device, limit=None):
    """Means over the test set of ELBO, KL per node and IS log-likelihood, per image or, for
    sequences, per valid step (nats)."""
    model.eval()
    totals = {"elbo": 0.0, "kl_per_node": 0.0, "log_likelihood": 0.0, "units": 0.0, "n": 0}
    for batch in tqdm(loader, desc="test", leave=False):
        batch = to_device(first_examples(batch, limit - totals["n"]) if limit else batch, device)
        loss, terms, count = loss_fn(model, model(batch), batch)
        totals["elbo"] -= (loss * count).item()
        totals["kl_per_node"] = totals["kl_per_node"] + (terms["kl_per_node"] * count).cpu()
        totals["units"] += float(count)
        if n_samples > 0:
            totals["log_likelihood"] += importance_sampled_log_likelihood(
                model, batch, n_samples).sum().item()
        totals["n"] += batch_size(batch)
        if limit is not None and totals["n"] >= limit:
            break
    units = totals["units"]
    results = {"n_examples": totals["n"], "per": "step" if units != totals["n"] else "example",
               "elbo": totals["elbo"] / units,
               "kl_per_node": (totals["kl_per_node"] / units).tolist()}
    results["kl"] = sum(results["kl_per_node"])
    results["log_likelihood"] = totals["log_likelihood"] / units if n_samples > 0 else None
    return results


def print_report(results, graph):
    unit = "nats" if results["per"] == "example" else "nats/step"
    rows = [("test examples", f"{results['n_examples']}"),
            (f"ELBO ({unit})", f"{results['elbo']:.3f}"),
            (f"KL total ({unit})", f"{results['kl']:.3f}")]
    rows += [(f"KL node z{i}", f"{kl:.3f}") for i, kl in enumerate(results["kl_per_node"])]
    if results["log_likelihood"] is not None:
        rows.append((f"log p(x) ({unit}), IS K={results['samples']}",
                     f"{results['log_likelihood']:.3f}"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>10}")
    print(f"\nGraph ({graph['structure']}; root z{len(graph['nodes']) - 1}):")
    for edge in graph["edges"]:
        status = "kept" if edge["kept"] else "dropped"
        print(f"  z{edge['src']} -> z{edge['dst']}  p={edge['prob']:.3f}  {status}")
    for edge in graph.get("cross_edges", []):
        status = "kept" if edge["kept"] else "dropped"
        print(f"  z{edge['src']}(t-1) -> z{edge['dst']}(t)  p={edge['prob']:.3f}  {status}")


def main(argv=None):
    args = parse_args(argv)
    if not args.resume:
        raise ConfigError("give the checkpoint to evaluate with --resume")
    if args.samples < 0 or args.batch_size <= 0:
        raise ConfigError("--samples must be >= 0 and --batch-size > 0")
    config, checkpoint = load_run_config(args)
    torch.manual_seed(config["seed"])
    loader = build_loader(config, "test", batch_size=args.batch_size)
    device = prepare_device(config["n_gpu"])
    model = build_model(config, loader.input_dim)
    loss_fn = build_loss(config)
    restore_model(model, checkpoint, args.resume)
    model.to(device)

    start = time.perf_counter()
    results = evaluate(model, loader, loss_fn, args.samples, device, args.limit)
    results.update(samples=args.samples, seconds=time.perf_counter() - start,
                   checkpoint=str(args.resume), epoch=checkpoint["epoch"],
                   graph=model.describe_graph())
    print_report(results, results["graph"])
    out = Path(args.resume).with_name(Path(args.resume).stem + "-test.json")
    out.write_text(json.dumps(results, indent=2))
    write_graph_json(results["graph"], out.with_name("graph.json"))
    write_graph_dot(results["graph"], out.with_name("graph.dot"))
    print(f"\nResults written to {out}; the graph to graph.json and graph.dot beside it "
          f"(render: dot -Tpng graph.dot -o graph.png)")


if __name__ == "__main__":
    sys.exit(run_cli(main))
