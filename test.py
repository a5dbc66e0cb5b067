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
elbo_bits_per_dim and log_likelihood_bits_per_dim), <stem>-graph.json, <stem>-graph.png (its
picture: every edge, cross-step ones included) and <stem>-graph.dot (the same for Graphviz).
With trainer.mlflow on, the training run's MLflow run gets the numbers (test/elbo, ... at the
checkpoint's epoch) and these files (under test/).
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
from logger.console import data_description  # noqa: E402
from logger.graph_dot import graph_to_dot  # noqa: E402
from logger.graph_figure import graph_figure  # noqa: E402
from logger.graph_style import all_edges, edge_status  # noqa: E402
from logger.mlflow_writer import add_evaluation, require_mlflow  # noqa: E402
from logger.plotting import save_figure  # noqa: E402
from trainer.edge_values import edge_values  # noqa: E402
from trainer.evaluation import evaluate  # noqa: E402
from utils.bounds import integer, samples  # noqa: E402
from utils.errors import CheckpointError, ConfigError, run_cli, writing  # noqa: E402
from utils.files import refuse_link, write_file  # noqa: E402

MLFLOW_METRICS = ("elbo", "kl", "log_likelihood", "elbo_bits_per_dim",
                  "log_likelihood_bits_per_dim", "structure_cost")


def parse_args(argv):
    args = add_flags(parser(__doc__), "-r", "-d", "--set", "--data-dir", "--import", helps={
        "-r": "checkpoint to evaluate (its config, saved in it, says the model and data)",
        "-d": "cpu, cuda, cuda:N or N: the one device to evaluate on (default: the checkpoint "
              "config's n_gpu)",
        "--set": "override keys of the checkpoint's config, e.g. --set "
                 "data_loader.args.data_dir=/data",
        "--data-dir": "where the data set's files are (default: the checkpoint config's "
                      "data_loader.args.data_dir)"})
    args.add_argument("-k", "--samples", type=samples, default=1000,
                      help="importance samples per example for log p(x) (paper: 5000; 0 skips "
                           "importance sampling)")
    args.add_argument("--bs", type=integer(), default=100, help="test examples per batch")
    args.add_argument("--limit", type=integer(), default=None,
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
    edges = all_edges(graph)
    print(f"\nGraph ({graph['structure']}; root z{len(graph['nodes']) - 1}; "
          f"{graph['edges_dropped']} of {len(edges)} edges dropped"
          + (f" ({len(graph['edges'])} within a step, {len(graph['cross_edges'])} from step t-1)"
             if graph.get("cross_edges") else "")
          + (f"; edge entropy at the freeze {graph['entropy_at_freeze']:.2f} nats"
             if graph.get("entropy_at_freeze") is not None else "") + "):")
    if any("value" in e or "value_at_freeze" in e for e in edges):
        print(f"  (value: validation ELBO with the edge minus without it, {unit}; now, and at "
              f"the freeze)")
    for edge in edges:
        status = edge_status(edge)
        if status == "undecided":
            status += f" ({'kept' if edge['kept'] else 'dropped'} in evaluation)"
        values = "".join(f"  {label} {edge[key]:+.3f}" for key, label in
                         (("value", "value"), ("value_at_freeze", "at freeze"))
                         if edge.get(key) is not None)
        print(f"  {edge['name']:16s} σ(α)={edge['prob']:.3f}  {status:<9s}{values}")


def check_finite_results(results, path):
    """A test ELBO or log-likelihood that is NaN or infinite is no result: one line, and
    nothing is written (finite weights can still overflow)."""
    for key in ("elbo", "log_likelihood"):
        value = results.get(key)
        if value is not None and not math.isfinite(value):
            raise CheckpointError(f"{path} gives a non-finite test {key} ({value}): its model "
                                  f"overflows on the test data; nothing was written; evaluate "
                                  f"an earlier checkpoint of the run")


def refuse_to_replace_fuller(out, limit, samples):
    """Results already written to out from more test examples or more importance samples
    than this evaluation asks for (e.g. the whole split, and now --limit 3000) are never
    replaced by it: one line, before anything is evaluated."""
    try:
        earlier = json.loads(out.read_text())
        fuller = (limit is not None and earlier["n_examples"] > limit) \
            or earlier["samples"] > samples
    except (OSError, ValueError, KeyError, TypeError):
        return  # none there, or not a results file: nothing to keep
    if fuller:
        raise ConfigError(f"{out} holds a fuller evaluation ({earlier['n_examples']} examples, "
                          f"K={earlier['samples']}) than this one would be ("
                          f"{'the whole split' if limit is None else f'{limit} examples'}, "
                          f"K={samples}) and is kept: move it away to replace it, or evaluate "
                          f"a copy of the checkpoint")


def main(argv=None):
    args = parse_args(argv)
    if not args.resume:
        raise ConfigError("give the checkpoint to evaluate with --resume")
    stem = Path(args.resume).stem
    out = Path(args.resume).with_name(f"{stem}-test.json")
    refuse_to_replace_fuller(out, args.limit, args.samples)
    config, checkpoint = load_run_config(args, max_devices=1, script="test.py")
    if config["trainer"]["mlflow"]:
        require_mlflow()
    results = evaluate_checkpoint(config, checkpoint, args.resume, args.samples, args.bs,
                                  args.limit, measure_edges=not args.no_edge_values)
    print_report(results)
    check_finite_results(results, args.resume)
    graph_json, graph_dot, graph_png = (out.with_name(f"{stem}-graph{suffix}")
                                        for suffix in (".json", ".dot", ".png"))
    outputs = {out: json.dumps(results, indent=2),
               graph_json: json.dumps(results["graph"], indent=2),
               graph_dot: graph_to_dot(results["graph"])}
    for path in (*outputs, graph_png):
        refuse_link(path)  # before any is written: all of them, or none
    fix = ("the results are printed above; to have them written, evaluate a copy of the "
           "checkpoint in a writable folder")
    for path, text in outputs.items():
        with writing(path, fix):
            write_file(path, text)
    with writing(graph_png, fix):
        save_figure(graph_picture(results, config), graph_png)
    print(f"\nResults written to {out}; the graph beside it: {graph_png.name} (picture), "
          f"{graph_json.name}, {graph_dot.name} (Graphviz DOT)")
    if config["trainer"]["mlflow"]:  # the training run's MLflow run gets them too
        add_evaluation(Path(args.resume).parent, {key: results[key] for key in MLFLOW_METRICS
                                                  if results.get(key) is not None},
                       results["epoch"], [*outputs, graph_png], print)


def graph_picture(results, config):
    """The learned graph as a figure titled with the model, checkpoint, epoch and seed."""
    return graph_figure(results["graph"], title=f"{config['arch']['type']} graph, "
                        f"{Path(results['checkpoint']).name}", epoch=results["epoch"],
                        seed=config["seed"])


if __name__ == "__main__":
    sys.exit(run_cli(main))
