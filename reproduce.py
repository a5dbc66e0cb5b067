"""The paper's comparison (Table 1 style) in one command, with honest statistics:

    python reproduce.py --dataset fashion_mnist --epochs 100 --seeds 0 1 2 -k 1000

trains every model (VAE, Ladder VAE, FC-VAE, the gate-noise control and GraphVAE) with the
same budget and settings for every seed, evaluates each final checkpoint on the whole test set
(ELBO, KL and active units per node, importance-sampled log p(x) with K samples), and writes
to --results (default docs/results/<dataset>/):

  runs/<model>_seed<k>.json, .npz   one finished run: its test results, history and graph
                                    (small: commit them), and its per-image values
  results.md, results.json          the table: mean ± SD over seeds, the paired per-image
                                    difference to GraphVAE (mean ± standard errors), active
                                    units, and in how many seeds GraphVAE keeps each edge;
                                    for 8-bit images (CIFAR-10, or --set
                                    data_loader.args.binarize=none arch.args.likelihood=gaussian)
                                    also -log p(x) and -ELBO in bits/dim
  curves.png, graph_seed<k>.png     validation curves, edge probabilities over epochs, graphs

A run whose results file exists (with the same settings) is never trained again, so the table
can be rebuilt from committed results on a machine without any checkpoint; an unfinished run
resumes from its checkpoint in --out. --jobs N trains N runs at a time (one thread each), on
a GPU machine spread over the GPUs (--device 0,1: over those; --device cpu: on the CPU).
--validation-only trains and tabulates validation numbers without touching the test set (to
choose protocol settings before looking at any test number).

--sweep KEY=V1,V2,... (repeatable) trains every model once per combination of the values, e.g.

    python reproduce.py --dataset synthetic_dag --models graph_vae --seeds 0 1 2 \\
        --sweep arch.args.decoder=mlp,block arch.args.structure_prior.edge_penalty=0,0.1,0.3

each combination a row of its own (runs/<model>-<values>_seed<k>.json). On a data set with a
known DAG (synthetic_dag) the table reports edge precision, recall and structural Hamming
distance of the learned graphs; with learned graphs, sparsity.png plots the validation ELBO
against the number of kept edges, and the edge values of every row are tabulated.
"""
import itertools
import json
import math
import os
import signal
import statistics
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import active_children, get_context
from pathlib import Path

import numpy as np

from utils.help_format import parser as help_parser

REPO = Path(__file__).resolve().parent
IMAGE_MODELS = {  # key: (display name, base config)
    "vae": ("VAE", "configs/vae_fashion_mnist.json"),
    "ladder_vae": ("Ladder VAE", "configs/ladder_vae_fashion_mnist.json"),
    "fc_vae": ("FC-VAE", "configs/fc_vae_fashion_mnist.json"),
    "noisy_full": ("Gate-noise control", "configs/noisy_full_vae_fashion_mnist.json"),
    "graph_vae": ("GraphVAE", "config.json"),
    # GraphVAE with the edge cost λ chosen on validation by docs/structure.md's rule
    "sparse_graph_vae": ("Sparse GraphVAE", "configs/sparse_graph_vae_fashion_mnist.json"),
    "graph_lstm_vae": ("GraphLSTMVAE", "configs/graph_lstm_vae_fashion_mnist.json"),
}
SEQUENCE_MODELS = {
    "vrnn": ("VRNN", "configs/vrnn_{dataset}.json"),
    "recurrent_graph_vae": ("RecurrentGraphVAE", "configs/recurrent_graph_vae_{dataset}.json"),
}
MODELS = {**IMAGE_MODELS, **SEQUENCE_MODELS}
IMAGE_DATASETS = ("fashion_mnist", "mnist", "omniglot", "cifar10", "synthetic_dag")
SEQUENCE_DATASETS = ("strokes", "piano")
# CIFAR-10 (docs/method.md §6): its own configs (input 3x32x32, the Gaussian likelihood on 8-bit
# pixels, the VAE's encoder widened for that input).
CIFAR10_CONFIGS = {"vae": "configs/vae_cifar10.json",
                   "ladder_vae": "configs/ladder_vae_cifar10.json",
                   "fc_vae": "configs/fc_vae_cifar10.json",
                   "noisy_full": "configs/noisy_full_vae_cifar10.json",
                   "graph_vae": "configs/graph_vae_cifar10.json"}
# The synthetic ground-truth DAG (data_loader/synthetic_dag.py): GraphVAE sized for its 4
# factors of 2 dims and 16 x 16 images.
SYNTHETIC_CONFIGS = {"graph_vae": "configs/graph_vae_synthetic_dag.json"}
DEFAULT_MODELS = {"image": ["vae", "ladder_vae", "fc_vae", "noisy_full", "graph_vae"],
                  "sequence": ["vrnn", "recurrent_graph_vae"]}
REFERENCES = ("graph_vae", "recurrent_graph_vae")  # paired differences are taken against it


def parse_args(argv):
    parser = help_parser(__doc__)
    parser.add_argument("--dataset", default="fashion_mnist",
                        choices=IMAGE_DATASETS + SEQUENCE_DATASETS,
                        help="the data set every model is trained and evaluated on")
    parser.add_argument("--epochs", type=int, default=100, help="training epochs of every model")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="the runs' seeds: every model is trained once per seed (the "
                             "statistics are over seeds)")
    parser.add_argument("-k", "--samples", type=int, default=1000,
                        help="importance samples per test example for log p(x)")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), metavar="MODEL",
                        help=f"the models to compare, of {', '.join(MODELS)} (default: the "
                             f"four models and the control for images, VRNN and "
                             f"RecurrentGraphVAE for sequences, GraphVAE on synthetic_dag)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config overrides applied to every model")
    parser.add_argument("--results",
                        help="where the results go (default: docs/results/<dataset>)")
    parser.add_argument("--out", default="saved/reproduce",
                        help="where the runs' checkpoints go (a folder per data set below it)")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at the same time")
    parser.add_argument("--device", help="cpu, or the GPUs the runs share (cuda: all visible "
                                         "ones, the default when there are any; cuda:N, N, "
                                         "N,M: those); each worker process keeps one")
    parser.add_argument("--test-limit", type=int, default=None,
                        help="evaluate the first N test examples only (default: the whole test "
                             "split)")
    parser.add_argument("--validation-only", action="store_true",
                        help="train and report validation numbers; never touch the test set")
    parser.add_argument("--sweep", nargs="+", default=[], metavar="KEY=V1,V2",
                        help="train every model once per combination of these config values")
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Variant:
    """A model with the overrides of one combination of --sweep values."""
    model: str
    values: tuple = ()  # ((config key, value text), ...)

    @property
    def key(self):
        """The run's file name stem: the model, then each swept key's last part and value."""
        return "-".join([self.model] + [f"{k.rsplit('.', 1)[-1]}_{v}" for k, v in self.values])

    @property
    def name(self):
        label = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in self.values)
        return MODELS[self.model][0] + (f" ({label})" if label else "")

    @property
    def overrides(self):
        return [f"{k}={v}" for k, v in self.values]


def variants(models, sweeps):
    """Every model with every combination of the --sweep values, in the order given."""
    from utils.errors import ConfigError
    axes = []
    for sweep in sweeps:
        key, sep, values = sweep.partition("=")
        if not sep or not key or not values:
            raise ConfigError(f"--sweep '{sweep}' must look like key.path=value1,value2")
        axes.append([(key, value) for value in values.split(",")])
    return [Variant(model, combination) for model in models
            for combination in itertools.product(*axes)]


def settings_of(args, variant=None):
    """What makes two runs comparable: a results file is reused only with the same settings
    (a variant's swept values count as overrides)."""
    extra = variant.overrides if variant else []
    return {"dataset": args.dataset, "epochs": args.epochs, "samples": args.samples,
            "test_limit": args.test_limit, "overrides": sorted(args.set + extra),
            "validation_only": args.validation_only}


def as_variant(run):
    return run if isinstance(run, Variant) else Variant(run)


def model_config(run, seed, args):
    from utils.config import apply_overrides, load_json
    variant = as_variant(run)
    name, path = MODELS[variant.model]
    path = {"cifar10": CIFAR10_CONFIGS, "synthetic_dag": SYNTHETIC_CONFIGS}.get(
        args.dataset, {}).get(variant.model, path)
    config = load_json(REPO / path.format(dataset=args.dataset))
    config["name"] = f"{name.replace(' ', '').replace('-', '')}_{args.dataset}" \
        + variant.key[len(variant.model):]
    config["seed"] = seed
    if args.dataset in IMAGE_DATASETS:
        config.setdefault("data_loader", {}).setdefault("args", {})["dataset"] = args.dataset
    trainer = config.setdefault("trainer", {})
    trainer.update(epochs=args.epochs, save_dir=args.out, early_stop=0, tensorboard=False)
    return apply_overrides(config, args.set + variant.overrides)


def run_one(run, seed, args, threads):
    """Train (or resume) and evaluate one (model or variant, seed); write its results file.
    Runs in a worker process of its own."""
    import torch

    import test as test_script
    import train
    from utils.checkpoint import load_checkpoint
    from utils.config import ConfigParser
    from utils.errors import UserError

    torch.set_num_threads(threads)
    variant = as_variant(run)
    key = variant.key
    config = model_config(variant, seed, args)
    if args.device is not None and args.device.strip().lower() == "cpu":
        config["n_gpu"] = 0  # not a setting of the run: the results file does not record it
    run_dir = Path(args.out) / "models" / config["name"] / f"seed{seed}"
    latest = run_dir / "checkpoint-latest.pth"
    checkpoint = load_checkpoint(latest) if latest.is_file() else None
    parsed = ConfigParser(config, run_dir=run_dir)
    if not finished(checkpoint, args.epochs):
        print(f"[{key} seed {seed}] {'resuming' if checkpoint else 'training'}", flush=True)
        train.train(parsed, checkpoint, latest if checkpoint else None, reuse_dir=True)
        checkpoint = load_checkpoint(latest)
        if not finished(checkpoint, args.epochs):  # stopped (Ctrl-C, SIGTERM): no results
            raise UserError(f"{key} seed {seed} stopped at epoch {checkpoint['epoch']}; run "
                            f"reproduce.py again to resume it")
    history = checkpoint["history"]
    record = {"model": key, "seed": seed, "settings": settings_of(args, variant),
              "epochs": checkpoint["epoch"], "seconds": sum(h["seconds"] for h in history),
              "history": [{k: v for k, v in h.items() if not k.startswith("kl_per")}
                          for h in history]}
    per_example = {}
    if not args.validation_only:
        results = test_script.evaluate_checkpoint(parsed, checkpoint, latest, args.samples,
                                                  limit=args.test_limit)
        per_example = results.pop("per_example")
        record["test"] = results
    write_run(Path(args.results), key, seed, record, per_example)
    print(f"[{key} seed {seed}] done", flush=True)


def finished(checkpoint, epochs):
    """Whether a run's latest checkpoint ends its whole budget."""
    return checkpoint is not None and checkpoint["epoch"] >= epochs \
        and not checkpoint["batches_done"]


def run_path(results_dir, key, seed):
    return results_dir / "runs" / f"{key}_seed{seed}.json"


def write_run(results_dir, key, seed, record, per_example):
    path = run_path(results_dir, key, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if per_example:
        np.savez_compressed(path.with_suffix(".npz"), **{k: np.asarray(v, dtype=np.float32)
                                                        for k, v in per_example.items()})
    path.write_text(json.dumps(record, indent=1))


def read_run(results_dir, key, seed, settings):
    """A finished run's record (and per-example arrays), or None if it has not finished."""
    from utils.config import parse_json
    from utils.errors import ConfigError
    path = run_path(results_dir, key, seed)
    if not path.is_file():
        return None
    damaged = (f"{path} is not a whole results file of reproduce.py ({{}}); delete it (and "
               f"{path.with_suffix('.npz').name} beside it) to train and evaluate that run again")
    try:
        record = parse_json(path.read_text(encoding="utf-8"), str(path))
    except (ConfigError, OSError, UnicodeDecodeError) as e:
        raise ConfigError(damaged.format(str(e).split(": ", 1)[-1][:80])) from None
    problem = record_problem(record, settings)
    if problem:
        raise ConfigError(damaged.format(problem))
    if record["settings"] != settings or record["epochs"] != settings["epochs"]:
        raise ConfigError(f"{path} was made with other settings ({record['settings']}); "
                          f"choose another --results directory")
    npz = path.with_suffix(".npz")
    if npz.is_file():
        try:
            with np.load(npz, allow_pickle=False) as arrays:
                record["per_example"] = {k: arrays[k] for k in arrays.files}
        except (ValueError, OSError, EOFError, KeyError) as e:
            raise ConfigError(f"{npz} is not a whole per-image results file "
                              f"({type(e).__name__}); delete it and {path.name} to train "
                              f"and evaluate that run again") from None
    return record


def record_problem(record, settings):
    """What a results record lacks for the tables, or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    needed = {"settings": dict, "epochs": int, "seconds": (int, float), "history": list}
    if not settings["validation_only"]:
        needed["test"] = dict
    for key, kind in needed.items():
        if not isinstance(record.get(key), kind):
            return f"no '{key}'"
    if not record["history"] or not all(isinstance(h, dict) for h in record["history"]):
        return "an empty or damaged 'history'"
    return None


# -- statistics ------------------------------------------------------------------------------
def mean_sd(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)


def paired_difference(runs, reference_runs, metric="log_likelihood"):
    """The model's per-image metric minus the reference's, seed by seed (the same test
    images): (mean, standard error over images of the seed-averaged differences, standard
    error over seeds of the per-seed mean differences, per-seed means).

    The first standard error is the test images' noise only (pairing removes most of it); the
    second is what another set of training runs would change, the one to judge a difference
    by (with 3 seeds it is itself uncertain)."""
    by_seed = {r["seed"]: r["per_example"][metric] for r in reference_runs}
    diffs = [r["per_example"][metric] - by_seed[r["seed"]] for r in runs if r["seed"] in by_seed]
    if not diffs:
        return None, None, None, []
    averaged = np.mean(diffs, axis=0)
    per_seed = [float(d.mean()) for d in diffs]
    over_seeds = statistics.stdev(per_seed) / math.sqrt(len(per_seed)) if len(diffs) > 1 else None
    return (float(averaged.mean()), float(averaged.std(ddof=1) / math.sqrt(len(averaged))),
            over_seeds, per_seed)


def fmt(mean, sd=None, digits=2):
    if mean is None:
        return "—"
    return f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")


def test_row(run, runs, reference_runs, reference_name, learned=False, true_dag=None):
    variant = as_variant(run)
    test = [r["test"] for r in runs]
    active = np.mean([t["active_units"] for t in test], axis=0)
    row = {"Model": variant.name, "seeds": len(runs),
           "log p(x)": fmt(*mean_sd([t["log_likelihood"] for t in test])),
           "ELBO": fmt(*mean_sd([t["elbo"] for t in test])),
           "KL": fmt(*mean_sd([t["kl"] for t in test])),
           **bits_per_dim_cells(test, "log_likelihood_bits_per_dim", "elbo_bits_per_dim"),
           "active units per node": " / ".join(f"{a:g}" for a in np.round(active, 1)),
           "params": f"{test[0]['params']:,}",
           "s / epoch": f"{statistics.mean(r['seconds'] / r['epochs'] for r in runs):.1f}"}
    if runs is not reference_runs and reference_runs:
        mean, se_images, se_seeds, per_seed = paired_difference(runs, reference_runs)
        row[f"Δ log p(x) vs {reference_name} ± SE seeds"] = fmt(mean, se_seeds)
        row["± SE images"] = fmt(se_images)
        row["Δ per seed"] = " / ".join(f"{d:+.2f}" for d in per_seed)
    else:
        row[f"Δ log p(x) vs {reference_name} ± SE seeds"] = row["± SE images"] = "—"
        row["Δ per seed"] = "—"
    if learned:
        row.update(structure_cells([kept_edges(r) for r in runs], true_dag))
    return row


def validation_row(run, runs, learned=False, true_dag=None):
    last = [r["history"][-1] for r in runs]
    active = np.mean([h["val_active_units"] for h in last], axis=0)
    row = {"Model": as_variant(run).name, "seeds": len(runs),
           "final val ELBO": fmt(*mean_sd([-h["val_loss"] for h in last])),
           "best val ELBO": fmt(*mean_sd([-min(h["val_loss"] for h in r["history"])
                                          for r in runs])),
           "val KL": fmt(*mean_sd([h["val_kl"] for h in last])),
           **bits_per_dim_cells(last, "val_elbo_bits_per_dim"),
           "active units per node": " / ".join(f"{a:g}" for a in np.round(active, 1))}
    if learned:
        row.update(structure_cells([kept_edges(r) for r in runs], true_dag))
    return row


def kept_edges(record):
    """The names of the edges a run's final graph keeps (sigmoid(alpha) > 0.5)."""
    return {name for name, p in record["history"][-1]["edge_probs"].items() if p > 0.5}


def recovery(kept, true_edges):
    """A learned graph (the names of its kept edges) against the true DAG: edge precision,
    recall and structural Hamming distance (edges to add or remove; the node order fixes every
    edge's direction, so there are no reversals). Precision is None when nothing is kept."""
    kept, true = set(kept), set(true_edges)
    hits = len(kept & true)
    return {"precision": hits / len(kept) if kept else None,
            "recall": hits / len(true) if true else None, "shd": len(kept ^ true)}


def structure_cells(kept_per_seed, true_dag=None):
    """Columns of a learned graph: edges kept, and against a known DAG its recovery."""
    cells = {"edges kept": fmt(*mean_sd([len(k) for k in kept_per_seed]), digits=1)}
    if true_dag is not None:
        scores = [recovery(k, true_dag) for k in kept_per_seed]
        for name in ("precision", "recall", "shd"):
            cells[name] = fmt(*mean_sd([s[name] for s in scores]))
        cells["true DAG found"] = f"{sum(s['shd'] == 0 for s in scores)} of {len(scores)}"
    return cells


def edge_value_rows(runs_by_variant):
    """Per learned row and edge: in how many seeds it is kept, sigma(alpha), and its value
    (validation ELBO with minus without it, nats) at the freeze and after the last epoch,
    each the mean over seeds (trainer/edge_values.py)."""
    rows = []
    for variant, runs in runs_by_variant.items():
        last = [r["history"][-1] for r in runs]
        at_freeze = [next((h["edge_values_at_freeze"] for h in r["history"]
                           if "edge_values_at_freeze" in h), {}) for r in runs]
        for name in last[0].get("edge_values", {}):
            rows.append({"Model": variant.name, "edge": name,
                         "kept in seeds": f"{sum(h['edge_probs'][name] > 0.5 for h in last)} of "
                                          f"{len(runs)}",
                         "σ(α)": fmt(*mean_sd([h["edge_probs"][name] for h in last])),
                         "value at freeze": fmt(*mean_sd([v.get(name) for v in at_freeze]), digits=3),
                         "value at end": fmt(*mean_sd([h["edge_values"][name] for h in last]),
                                             digits=3)})
    return rows


def bits_per_dim_cells(results, *keys):
    """Columns of bits/dim (NLL on the 0..255 scale) where the results have them (8-bit
    images): -log p(x) (IS) and -ELBO."""
    names = {"log_likelihood_bits_per_dim": "-log p(x) bits/dim",
             "elbo_bits_per_dim": "-ELBO bits/dim", "val_elbo_bits_per_dim": "val -ELBO bits/dim"}
    return {names[key]: fmt(*mean_sd([r[key] for r in results]), digits=3)
            for key in keys if results[0].get(key) is not None}


def edge_agreement(runs):
    """For a learned graph: in how many seeds each edge is kept, and the structure learned."""
    graphs = [r["test"]["graph"] for r in runs]
    edges = [g["edges"] + g.get("cross_edges", []) for g in graphs]
    rows = []
    for k, edge in enumerate(edges[0]):
        probs = [e[k]["prob"] for e in edges]
        rows.append({"edge": edge["name"], "kept in seeds": f"{sum(e[k]['kept'] for e in edges)}"
                     f" of {len(graphs)}", "σ(α) per seed": " / ".join(f"{p:.2f}" for p in probs)})
    structure = {"edges dropped per seed": [g["edges_dropped"] for g in graphs],
                 "edge entropy at the freeze (nats) per seed": [g.get("entropy_at_freeze")
                                                               for g in graphs]}
    return rows, structure


def markdown_table(rows):
    columns = list(dict.fromkeys(c for row in rows for c in row))
    cells = [[str(row.get(c, "—")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    line = lambda values: "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(c) for c in cells]) + "\n"


# -- outputs ---------------------------------------------------------------------------------
def write_outputs(results_dir, runs_by_variant, args):
    from logger.figures import graph_figure, save_curves, save_figure, save_tradeoff
    reference_variant = next((v for v in runs_by_variant if v.model in REFERENCES), None)
    reference = runs_by_variant[reference_variant] if reference_variant else []
    reference_name = reference_variant.name if reference_variant else "—"
    learned = {v: is_learned(v, args) for v in runs_by_variant}
    true_dag = known_dag(args)
    if args.validation_only:
        rows = [validation_row(v, runs, learned[v], true_dag)
                for v, runs in runs_by_variant.items()]
    else:
        rows = [test_row(v, runs, reference, reference_name, learned[v], true_dag)
                for v, runs in runs_by_variant.items()]
    header = (f"{args.dataset}: {args.epochs} epochs, seeds {', '.join(map(str, args.seeds))}"
              + (f", overrides {' '.join(args.set)}" if args.set else "")
              + (f", sweep {' '.join(args.sweep)}" if args.sweep else "")
              + ("; validation set only" if args.validation_only else
                 f"; test set{f' (first {args.test_limit} images)' if args.test_limit else ''}, "
                 f"log p(x) by importance sampling with K = {args.samples}")
              + ". Nats; mean ± SD over seeds. Δ: the model's per-image log p(x) minus the "
                "reference's on the same images and seed, ± its standard error over seeds "
                "(run to run) and, apart, over images (test-set noise only)"
              + ("; bits/dim: negative log-likelihoods in bits per dimension on the 0..255 scale"
                 if any("bits/dim" in column for row in rows for column in row) else "")
              + (f"; precision, recall and SHD of the kept edges against the true DAG "
                 f"({', '.join(true_dag)})" if true_dag else "")
              + ".\n")
    text = f"# Results\n\n{header}\n{markdown_table(rows)}"
    summary = {"settings": settings_of(args), "rows": rows}
    if reference and not args.validation_only:
        edges, structure = edge_agreement(reference)
        text += f"\n{reference_name}'s learned graph across seeds:\n\n{markdown_table(edges)}\n"
        text += "".join(f"- {k}: {v}\n" for k, v in structure.items())
        summary.update(edges=edges, structure=structure)
        for run in reference:
            save_figure(graph_figure(run["test"]["graph"], title=f"{reference_name} graph",
                                     epoch=run["epochs"], seed=run["seed"]),
                        results_dir / f"graph_seed{run['seed']}.png")
    values = edge_value_rows({v: runs for v, runs in runs_by_variant.items() if learned[v]})
    if values:
        text += ("\nEdge values (validation ELBO with the edge minus without it, nats; mean ± SD "
                 "over seeds):\n\n" + markdown_table(values))
        summary["edge_values"] = values
    (results_dir / "results.md").write_text(text)
    (results_dir / "results.json").write_text(json.dumps(summary, indent=1))
    freeze = freeze_epoch(reference_variant or next(iter(runs_by_variant)), reference, args)
    panels = [{"title": "validation ELBO (nats), mean over seeds", "xlabel": "epoch",
               "freeze_epoch": freeze,
               "curves": {v.name: mean_curve(runs, lambda h: -h["val_loss"])
                          for v, runs in runs_by_variant.items()}}]
    if reference:
        panels.append({"title": "edge probabilities (reference model, seed %d)" % reference[0]["seed"],
                       "xlabel": "epoch", "ylim": (-0.02, 1.02), "freeze_epoch": freeze,
                       "curves": {
                           name: [(h["epoch"], h["edge_probs"][name]) for h in reference[0]["history"]]
                           for name in reference[0]["history"][-1]["edge_probs"]}})
    save_curves(panels, results_dir / "curves.png")
    written = ["results.json", "curves.png"]
    if args.sweep and any(learned.values()):
        save_tradeoff({v.name: [(len(kept_edges(r)), -r["history"][-1]["val_loss"]) for r in runs]
                       for v, runs in runs_by_variant.items() if learned[v]},
                      results_dir / "sparsity.png", xlabel="edges kept (final graph)",
                      ylabel="final validation ELBO (nats)",
                      title="likelihood against sparsity (one point per seed)")
        written.append("sparsity.png")
    print("\n" + text)
    print(f"Written: {results_dir / 'results.md'}, {', '.join(written)}")


def is_learned(variant, args):
    """Whether the variant's model learns its graph (its config's arch.args.structure)."""
    config = model_config(variant, 0, args)
    return config["arch"].get("args", {}).get("structure", "learned") == "learned"


def known_dag(args):
    """The true DAG's edge names of a data set made from one (its data_loader.args.dag), else
    None."""
    if args.dataset != "synthetic_dag":
        return None
    from data_loader.synthetic_dag import SyntheticDAG
    dag = model_config(Variant(args.models[0]), 0, args)["data_loader"]["args"].get("dag")
    return SyntheticDAG.from_config(dag).true_dag()


def freeze_epoch(variant, runs, args):
    """The epoch after which the graph was frozen, or None: from a run's history (the first
    epoch that has the values measured at the freeze follows it), else from the variant's
    config (arch.args.gate_schedule.freeze_epoch, GateSchedule's default when not given);
    None when never frozen or not within the runs' epochs."""
    for run in runs:
        for h in run["history"]:
            if "edge_values_at_freeze" in h:
                return h["epoch"] - 1
    from model.edge_gates import GateSchedule
    schedule = model_config(variant, 0, args)["arch"].get("args", {}).get("gate_schedule", {})
    epoch = schedule.get("freeze_epoch", GateSchedule.freeze_epoch)
    return epoch if epoch is not None and epoch < args.epochs else None


def mean_curve(runs, value):
    epochs = min(len(r["history"]) for r in runs)
    return [(runs[0]["history"][e]["epoch"], statistics.mean(value(r["history"][e]) for r in runs))
            for e in range(epochs)]


def main(argv=None):
    from utils.errors import ConfigError, UserError
    args = parse_args(argv)
    kind = "image" if args.dataset in IMAGE_DATASETS else "sequence"
    args.models = args.models or (["graph_vae"] if args.dataset == "synthetic_dag"
                                  else DEFAULT_MODELS[kind])
    wrong = [m for m in args.models if (m in SEQUENCE_MODELS) != (kind == "sequence")]
    if wrong:
        raise ConfigError(f"--models {' '.join(wrong)} do not fit the {kind} dataset {args.dataset}")
    check_numbers(args)
    for dataset, configs in (("cifar10", CIFAR10_CONFIGS), ("synthetic_dag", SYNTHETIC_CONFIGS)):
        if args.dataset == dataset and not set(args.models) <= set(configs):
            raise ConfigError(f"{dataset} has configs for --models {' '.join(configs)} only")
    args.results = args.results or str(REPO / "docs" / "results" / args.dataset)
    args.out = str(Path(args.out) / args.dataset)
    results_dir = Path(args.results)
    for flag, path in (("--results", results_dir), ("--out", Path(args.out))):
        check_writable_dir(flag, path)
    # Seed by seed, the reference model first: an interrupted run leaves whole seeds behind.
    order = sorted(variants(args.models, args.sweep), key=lambda v: v.model not in REFERENCES)
    check_configs(order, args)
    todo = [(variant, seed) for seed in args.seeds for variant in order
            if read_run(results_dir, variant.key, seed, settings_of(args, variant)) is None]
    if todo:
        print(f"{len(todo)} run(s) to train and evaluate, {args.jobs} at a time: "
              + ", ".join(f"{v.key} seed {s}" for v, s in todo), flush=True)
        threads = 1 if args.jobs > 1 else None
        context = get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context, initializer=take_a_gpu,
                                 initargs=(worker_slots(context, args.jobs), job_gpus(args))) \
                as pool, stops_reach_workers():
            try:
                run_in_turn(pool, [(run_one, variant, seed, args, threads or default_threads())
                                   for variant, seed in todo], args.jobs)
            except BrokenProcessPool:  # a worker was killed (a stop during IS, the OOM killer)
                raise UserError("a run's worker process was killed; run reproduce.py again to "
                                "resume from the last checkpoints") from None
    runs_by_variant = {variant: [read_run(results_dir, variant.key, seed,
                                          settings_of(args, variant)) for seed in args.seeds]
                       for variant in variants(args.models, args.sweep)}
    write_outputs(results_dir, runs_by_variant, args)


def job_gpus(args):
    """The GPUs the runs are spread over (indices among the visible ones): those --device
    names, or every visible one; none with --device cpu or without a GPU."""
    import torch

    from cli import use_devices
    devices = use_devices(args.device)  # GPUs that are not there: one line, before any run
    if devices is not None:
        return list(devices.indices or range(torch.cuda.device_count())) if devices.gpu else []
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


def worker_slots(context, jobs):
    """A queue of the numbers 0..jobs-1, one for each worker process to take."""
    slots = context.Queue()
    for slot in range(jobs):
        slots.put(slot)
    return slots


def take_a_gpu(slots, gpus):
    """In a new worker process: take a slot, and with it a GPU for every run this worker
    trains (worker k gets gpus[k mod len(gpus)]), so that --jobs N runs share the GPUs
    instead of all training on GPU 0."""
    from utils import distributed
    slot = slots.get()
    if gpus:
        gpu = gpus[slot % len(gpus)]
        distributed.choose_gpus([gpu], str(gpu))


def check_numbers(args):
    """The numbers on the command line, before anything trains: each run is a distinct seed,
    and the table's log p(x) needs importance samples (-k) unless only validation is asked."""
    from utils.config import SEED
    from utils.errors import ConfigError
    if args.epochs <= 0 or args.samples < 0 or args.jobs <= 0:
        raise ConfigError("--epochs and --jobs must be positive, -k non-negative")
    if args.samples == 0 and not args.validation_only:
        raise ConfigError("-k 0 leaves the table without its log p(x) (importance-sampled); "
                          "give -k K > 0, or --validation-only for validation numbers")
    if args.test_limit is not None and args.test_limit <= 0:
        raise ConfigError(f"--test-limit must be a positive number of test images, got "
                          f"{args.test_limit}")
    repeated = sorted({seed for seed in args.seeds if args.seeds.count(seed) > 1})
    if repeated:
        raise ConfigError(f"--seeds gives {', '.join(map(str, repeated))} more than once; "
                          f"each seed is one run (give distinct seeds)")
    wrong = [seed for seed in args.seeds if not SEED[0](seed)]
    if wrong:
        raise ConfigError(f"--seeds must be integers in 0..2**63-1, got {wrong[0]}")


def check_writable_dir(flag, path):
    """path is a directory that can be written, or can be created: found out before training,
    not when the first results are written."""
    from utils.errors import ConfigError
    existing = next(p for p in (path, *path.parents) if p.exists() or p == Path(p.anchor))
    if not existing.is_dir():
        raise ConfigError(f"{flag} {path}: {existing} is a file, not a directory; choose "
                          f"another {flag}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: {existing} cannot be written; choose another "
                          f"{flag}")


def check_configs(variants_in_order, args):
    """Every run's config (--set, --sweep values included) passes the config checks before
    any run trains."""
    from utils.config import ConfigParser
    for variant in variants_in_order:
        for seed in args.seeds:
            ConfigParser(model_config(variant, seed, args))


def run_in_turn(pool, calls, at_a_time):
    """Run calls, (function, *arguments) tuples, in the pool, at most at_a_time at once. After
    a failure or Ctrl-C no other call starts: each is submitted only when a slot is free,
    because a pool starts work it has been handed before it notices a shutdown."""
    waiting, running = list(calls), set()
    while waiting or running:
        while waiting and len(running) < at_a_time:
            function, *arguments = waiting.pop(0)
            running.add(pool.submit(function, *arguments))
        done, running = wait(running, return_when=FIRST_COMPLETED)
        for job in done:
            job.result()  # a run's error (or Ctrl-C while waiting) ends the loop here


@contextmanager
def stops_reach_workers():
    """While runs train, a SIGTERM or SIGHUP to this process (`kill <pid>`, a job scheduler, a
    closed terminal or ssh connection) is passed on to the worker processes, whose trainers
    save a checkpoint and stop; the failed runs then end run_in_turn. Without it the workers
    trained on, orphaned, or this process died without waiting for them. (Ctrl-C in a
    terminal already reaches the whole process group.)"""
    def forward(signum, frame):
        for worker in active_children():
            os.kill(worker.pid, signum)
    forwarded = (signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, forward) for s in forwarded}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def default_threads():
    return os.cpu_count() or 1


if __name__ == "__main__":
    from utils.errors import run_cli
    sys.exit(run_cli(main))
