"""Fashion-MNIST: GraphVAE with the graph search at the freeze, paired with the committed rows.

    python -m bench.searched_graph_vae --seeds 0 1 2 --data-dir /work/main/data

For each seed, the committed protocol of reproduce.py's GraphVAE row (config.json, 100 epochs,
the graph frozen after epoch 50, no edge cost) with one step added at the freeze: trained to
epoch 50; the graph search (trainer/graph_search.py, search_graph.py's settings) on that
checkpoint; its gates set to the chosen graph; training resumed to epoch 100 (the run freezes
to the chosen graph at epoch 51); the whole test set evaluated like reproduce.py (K = 1000).
Every step resumes where it stopped. Written to --results (default
docs/results/fashion_mnist_search/): runs/searched_graph_vae_seed<k>.json and .npz, the search
of each seed (search_seed<k>.json), and results.md: mean ± SD over seeds and the paired
per-image difference to the committed GraphVAE and FC-VAE runs of the same seeds
(docs/results/fashion_mnist/runs/).
"""
import sys

if __name__ == "__main__" and not __package__:  # run as a file: bench/ is not a package then
    print("error: run the benchmarks from the repository's root as modules: "
          "python -m bench.searched_graph_vae", file=sys.stderr)
    sys.exit(2)

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.common import REPO  # noqa: E402
from utils.files import write_file  # noqa: E402
from utils.help_format import parser as help_parser  # noqa: E402

COMMITTED = REPO / "docs" / "results" / "fashion_mnist" / "runs"
REFERENCES = {"graph_vae": "GraphVAE", "fc_vae": "FC-VAE"}
EPOCHS, SAMPLES = 100, 1000


def parse_args(argv):
    parser = help_parser(__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="the seeds, each paired with the committed runs of that seed")
    parser.add_argument("--data-dir", default="data", help="where Fashion-MNIST's files are")
    parser.add_argument("--out", default="saved/searched_graph_vae", help="checkpoints")
    parser.add_argument("--results", default=str(REPO / "docs/results/fashion_mnist_search"),
                        help="where the results files and the table go")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="training epochs")
    parser.add_argument("-k", "--samples", type=int, default=SAMPLES,
                        help="importance samples per test image for log p(x)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides (a smoke run: a subset, fewer epochs)")
    return parser.parse_args(argv)


def run_config(seed, args):
    from reproduction.runs import model_config
    settings = argparse.Namespace(dataset="fashion_mnist", epochs=args.epochs, out=args.out,
                                  set=[f"data_loader.args.data_dir={args.data_dir}", *args.set])
    config = model_config("graph_vae", seed, settings)
    config["name"] = "SearchedGraphVAE_fashion_mnist"
    return config


def search_and_impose(config, directory, search_file):
    """The search on the checkpoint at the freeze (once), and that checkpoint's gates set to
    the graph it chose (once: a checkpoint whose logits already say the graph is left)."""
    import search_graph
    from experiment import build_loader, load_model
    from trainer.graph_search import EDGE_COST, search_graph as search
    from trainer.checkpoint import load_checkpoint, save_checkpoint
    from utils.config import ConfigParser
    latest = directory / "checkpoint-latest.safetensors"
    checkpoint = load_checkpoint(latest)
    if not search_file.is_file():
        torch.manual_seed(config["seed"])
        parsed = ConfigParser(config, run_dir=directory)  # the user's paths
        model = load_model(parsed, checkpoint, latest)
        found = search(model, build_loader(parsed, "train"), build_loader(parsed, "valid"),
                       torch.device("cpu"), EDGE_COST)
        search_file.parent.mkdir(parents=True, exist_ok=True)
        write_file(search_file, json.dumps(found, indent=1))
    found = json.loads(search_file.read_text())
    imposed = search_graph.impose_graph(checkpoint, found["graph"])
    if not torch.equal(imposed["model"]["gates.logits"], checkpoint["model"]["gates.logits"]):
        save_checkpoint(imposed, latest)
    return found


def run_seed(seed, args):
    """Train, search, train on and evaluate one seed unless its results file exists."""
    import test as test_script
    from bench.structure_family.runs import train_run
    from model.edge_gates import GateSchedule
    from model.settings import settings
    from trainer.checkpoint import load_checkpoint
    from utils.config import ConfigParser
    results = Path(args.results)
    path = results / "runs" / f"searched_graph_vae_seed{seed}.json"
    if path.is_file():
        return
    torch.set_num_threads(1)
    config = run_config(seed, args)
    directory = Path(args.out) / "models" / config["name"] / f"seed{seed}"
    schedule = config["arch"].get("args", {}).get("gate_schedule")
    freeze = settings(GateSchedule, schedule).freeze_epoch
    first = json.loads(json.dumps(config))
    first["trainer"]["epochs"] = freeze
    latest = directory / "checkpoint-latest.safetensors"
    if not latest.is_file() or load_checkpoint(latest)["epoch"] < freeze:
        train_run(first, directory)
    found = None
    if load_checkpoint(latest)["epoch"] == freeze:
        found = search_and_impose(config, directory, results / f"search_seed{seed}.json")
    checkpoint = train_run(config, directory)
    found = found or json.loads((results / f"search_seed{seed}.json").read_text())
    parsed = ConfigParser(config, run_dir=directory)
    test = test_script.evaluate_checkpoint(parsed, checkpoint, latest, args.samples)
    per_example = test.pop("per_example")
    history = checkpoint["history"]
    record = {"model": "searched_graph_vae", "seed": seed, "epochs": checkpoint["epoch"],
              "seconds": sum(h["seconds"] for h in history), "search": found, "test": test,
              "history": [{k: v for k, v in h.items() if not k.startswith("kl_per")}
                          for h in history]}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path.with_suffix(".npz"), **{k: np.asarray(v, dtype=np.float32)
                                                    for k, v in per_example.items()})
    write_file(path, json.dumps(record, indent=1))


def load(path):
    record = json.loads(path.read_text())
    with np.load(path.with_suffix(".npz")) as arrays:
        record["per_example"] = {k: arrays[k] for k in arrays.files}
    return record


def write_table(args):
    from reproduction.report import markdown_table
    from reproduction.statistics import fmt, mean_sd, paired_difference
    results = Path(args.results)
    runs = [load(results / "runs" / f"searched_graph_vae_seed{s}.json") for s in args.seeds
            if (results / "runs" / f"searched_graph_vae_seed{s}.json").is_file()]
    if not runs:
        return
    seeds = [r["seed"] for r in runs]
    rows = []
    for key, name in [("searched_graph_vae", "GraphVAE, graph searched at the freeze"),
                      *REFERENCES.items()]:
        these = runs if key == "searched_graph_vae" else [
            load(COMMITTED / f"{key}_seed{s}.json") for s in seeds]
        row = {"Model": name, "seeds": len(these),
               "log p(x)": fmt(*mean_sd([r["test"]["log_likelihood"]
                                                             for r in these])),
               "ELBO": fmt(*mean_sd([r["test"]["elbo"] for r in these])),
               "edges kept (of 10)": " / ".join(str(sum(e["kept"] for e in r["test"]["graph"]["edges"]))
                                                for r in these)}
        for reference, label in REFERENCES.items():
            if reference != key:
                mean, se_images, se_seeds, per_seed = paired_difference(
                    these, [load(COMMITTED / f"{reference}_seed{s}.json") for s in seeds])
                row[f"Δ vs {label} ± SE seeds (SE images)"] = \
                    f"{fmt(mean, se_seeds)} ({fmt(se_images)})"
        rows.append(row)
    kept = [", ".join(r["search"]["kept"]) or "none" for r in runs]
    text = ("# Fashion-MNIST: GraphVAE with the graph search at the freeze\n\nTest set, all "
            f"10,000 images, log p(x) by importance sampling with K = {args.samples}; seeds "
            f"{', '.join(map(str, seeds))}, each paired image by image with the committed runs "
            "of the same seed. Nats; mean ± SD over seeds.\n\n" + markdown_table(rows)
            + "\nEdges chosen by the search, per seed:\n\n"
            + "".join(f"- seed {s}: {k}\n" for s, k in zip(seeds, kept)))
    (results / "results.md").write_text(text)
    print(text)


def main(argv=None):
    args = parse_args(argv)
    for seed in args.seeds:
        print(f"[searched GraphVAE seed {seed}]", flush=True)
        run_seed(seed, args)
    write_table(args)


if __name__ == "__main__":
    from utils.errors import run_cli
    sys.exit(run_cli(main))
