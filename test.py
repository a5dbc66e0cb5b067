"""Evaluate a checkpoint on the test set: python test.py --resume checkpoint [-k 1000].

Evaluates the whole test split (a training data_loader.args.subset does not apply to it;
--limit N evaluates its first N examples). Reports the checkpoint's epoch, the data and how
many examples were evaluated, then the ELBO, the KL and active units of every node and the
importance-sampled log-likelihood (K samples per image or sequence, discrete graph) in nats
per image or, for sequences, nats per step; for 8-bit images also -ELBO and -log p(x) in bits
per dimension (on the 0..255 scale: the paper's -6.40 on CIFAR-10 is the negation of 6.40
bits/dim). It prints the learned graph, each learned edge's value measured on the validation
split as training used it (its subset included, so that the value now and the value at the
freeze are measured on the same examples), and writes beside the checkpoint, named after it:
<stem>-test.json (everything, with the per-example values for paired comparisons; bits/dim as
elbo_bits_per_dim and log_likelihood_bits_per_dim), <stem>-graph.json and <stem>-graph.dot.
"""
import sys

if __name__ == "__main__":  # before the slow imports: a Ctrl-C at any moment is one line
    from utils.signals import exit_on_interrupt
    exit_on_interrupt()

import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from cli import add_flags, load_run_config, parser  # noqa: E402
from experiment import (build_loader, build_whole_loader, check_data_fits_model,  # noqa: E402
                        load_model, prepare_device)
from logger.figures import graph_to_dot  # noqa: E402
from trainer.edge_values import edge_values  # noqa: E402
from trainer.evaluation import evaluate  # noqa: E402
from utils.errors import CheckpointError, ConfigError, run_cli, writing  # noqa: E402


def parse_args(argv):
    args = add_flags(parser(__doc__), "-r", "-d", "--set", "--data-dir", "--import", helps={
        "-r": "checkpoint to evaluate (its config, saved in it, says the model and data)",
        "-d": "cpu, cuda, cuda:N or N: the one device to evaluate on (default: the checkpoint "
              "config's n_gpu)",
        "--set": "override keys of the checkpoint's config, e.g. --set "
                 "data_loader.args.data_dir=/data",
        "--data-dir": "where the data set's files are (default: the checkpoint config's "
                      "data_loader.args.data_dir)"})
    args.add_argument("-k", "--samples", type=int, default=1000,
                      help="importance samples per example for log p(x) (paper: 5000; 0 skips "
                           "importance sampling)")
    args.add_argument("--bs", type=int, default=100, help="test examples per batch")
    args.add_argument("--limit", type=int, default=None,
                      help="evaluate the first N test examples only (default: the whole test "
                           "split)")
    args.add_argument("--no-edge-values", action="store_true",
                      help="skip measuring each learned edge's value on the validation split")
    return args.parse_args(argv)


def evaluate_checkpoint(config, checkpoint, path, n_samples, batch_size=100, limit=None,
                        measure_edges=True):
    """Test results of a checkpoint (a dict, as test.py writes it) on the whole test split, or
    its first `limit` examples. With a learned graph, every edge's value
    (trainer/edge_values.py) is measured on the validation split as training saw it (its
    subset too) and given in the graph beside the value measured at the freeze."""
    torch.manual_seed(config["seed"])
    device = prepare_device(config)
    loader = build_whole_loader(config, "test", batch_size=batch_size).to(device)
    model = load_model(config, checkpoint, path, device)
    check_data_fits_model(loader, model)
    start = time.perf_counter()
    results = evaluate(model, loader, device, n_samples, limit, per_example=True, progress=True)
    results["elbo"] = -results.pop("loss")
    graph = model.describe_graph()
    if measure_edges and model.structure_parameters():
        valid = build_loader(config, "valid", batch_size=batch_size).to(device)
        values = edge_values(model, valid, device)
        for edge in graph["edges"] + graph.get("cross_edges", []):
            edge["value"] = values.get(edge["name"])
        results["edge_values_on"] = {"split": "valid", "n_examples": valid.n_items,
                                     "examples_in_split": valid.split_size}
    results.update(samples=n_samples, limit=limit, seconds=time.perf_counter() - start,
                   checkpoint=str(path), epoch=checkpoint["epoch"], graph=graph,
                   data=data_description(config), split="test",
                   examples_in_split=loader.split_size, params=model.n_parameters(),
                   per="step" if results["n_units"] != results["n_examples"] else "example")
    return results


def data_description(config):
    """The data loader's type and the data set it reads (its dataset or source argument;
    the piano-roll loader has one data set only)."""
    section = config["data_loader"]
    args = section.get("args", {})
    return {"loader": section["type"], "dataset": args.get("dataset", args.get("source"))}


def print_header(results):
    """What was evaluated: the checkpoint's epoch, the data, the split and how much of it."""
    data = results["data"]
    dataset = f", {data['dataset']}" if data.get("dataset") else ""
    print(f"checkpoint {results['checkpoint']} (epoch {results['epoch']})")
    print(f"data: {data['loader']}{dataset}; {results['split']} split, {results['n_examples']} "
          f"of {results['examples_in_split']} examples evaluated")
    edges = results.get("edge_values_on")
    if edges:
        print(f"edge values: on the validation split as training used it, "
              f"{edges['n_examples']} of {edges['examples_in_split']} examples")
    print()


def print_report(results):
    print_header(results)
    unit = "nats" if results["per"] == "example" else "nats/step"
    rows = [(f"ELBO ({unit})", f"{results['elbo']:.3f}"),
            (f"KL total ({unit})", f"{results['kl']:.3f}")]
    rows += [(f"KL node z{i} / active units", f"{kl:.3f} / {active}")
             for i, (kl, active) in enumerate(zip(results["kl_per_node"], results["active_units"]))]
    if results.get("log_likelihood") is not None:
        rows.append((f"log p(x) ({unit}), IS K={results['samples']}",
                     f"{results['log_likelihood']:.3f}"))
    if results.get("elbo_bits_per_dim") is not None:  # 8-bit images: NLL, 0..255 scale
        rows.append(("-ELBO (bits/dim)", f"{results['elbo_bits_per_dim']:.4f}"))
    if results.get("log_likelihood_bits_per_dim") is not None:
        rows.append((f"-log p(x) (bits/dim), IS K={results['samples']}",
                     f"{results['log_likelihood_bits_per_dim']:.4f}"))
    if results.get("structure_cost") is not None:
        rows.append((f"structure cost ({unit}, not in the ELBO)", f"{results['structure_cost']:.3f}"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>12}")
    graph = results["graph"]
    print(f"\nGraph ({graph['structure']}; root z{len(graph['nodes']) - 1}; "
          f"{graph['edges_dropped']} of {len(graph['edges'])} edges dropped"
          + (f"; edge entropy at the freeze {graph['entropy_at_freeze']:.2f} nats"
             if graph.get("entropy_at_freeze") is not None else "") + "):")
    edges = graph["edges"] + graph.get("cross_edges", [])
    if any("value" in e or "value_at_freeze" in e for e in edges):
        print(f"  (value: validation ELBO with the edge minus without it, {unit}; now, and at "
              f"the freeze)")
    for edge in edges:
        status = edge.get("status", "kept" if edge["kept"] else "dropped")
        if status == "undecided":
            status += f" ({'kept' if edge['kept'] else 'dropped'} in evaluation)"
        values = "".join(f"  {label} {edge[key]:+.3f}" for key, label in
                         (("value", "value"), ("value_at_freeze", "at freeze"))
                         if edge.get(key) is not None)
        print(f"  {edge['name']:16s} p={edge['prob']:.3f}  {status:<9s}{values}")


def check_finite_results(results, path):
    """A test ELBO or log-likelihood that is NaN or infinite is no result: one line, and
    nothing is written (finite weights can still overflow)."""
    for key in ("elbo", "log_likelihood"):
        value = results.get(key)
        if value is not None and not math.isfinite(value):
            raise CheckpointError(f"{path} gives a non-finite test {key} ({value}): its model "
                                  f"overflows on the test data; nothing was written; evaluate "
                                  f"an earlier checkpoint of the run")


def main(argv=None):
    args = parse_args(argv)
    if not args.resume:
        raise ConfigError("give the checkpoint to evaluate with --resume")
    if args.samples < 0 or args.bs <= 0 or (args.limit is not None and args.limit <= 0):
        raise ConfigError("-k must be >= 0, --bs and --limit positive")
    config, checkpoint = load_run_config(args, max_devices=1, script="test.py")
    results = evaluate_checkpoint(config, checkpoint, args.resume, args.samples, args.bs,
                                  args.limit, measure_edges=not args.no_edge_values)
    print_report(results)
    check_finite_results(results, args.resume)
    stem = Path(args.resume).stem
    out = Path(args.resume).with_name(f"{stem}-test.json")
    graph_json, graph_dot = (out.with_name(f"{stem}-graph{suffix}") for suffix in (".json", ".dot"))
    outputs = {out: json.dumps(results, indent=2),
               graph_json: json.dumps(results["graph"], indent=2),
               graph_dot: graph_to_dot(results["graph"])}
    for path, text in outputs.items():
        with writing(path, "the results are printed above; to have them written, evaluate a "
                           "copy of the checkpoint in a writable folder"):
            path.write_text(text)
    print(f"\nResults written to {out}; the graph to {graph_json.name} and {graph_dot.name} "
          f"beside it (render: dot -Tpng {graph_dot} -o {graph_dot.with_suffix('.png')})")


if __name__ == "__main__":
    sys.exit(run_cli(main))
