"""The paper's comparison in one command (Table 1 style):

    python reproduce.py --dataset fashion_mnist --epochs 20 -k 1000

trains VAE, Ladder VAE, FC-VAE and GraphVAE with the same budget and seed(s), evaluates the
importance-sampled test log-likelihood, and writes <out>/<dataset>/results.md (a Markdown
table), results.json and curves.png (validation curves side by side). It is resumable: a model
that has finished its epochs is not retrained, an unfinished one is resumed, and an evaluation
already done with the same K is reused.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

import test as test_script
import train
from utils.build import build_model
from utils.checkpoint import load_checkpoint
from utils.cli import run_cli
from utils.config import ConfigParser, apply_overrides, load_json
from utils.drawing import plot_curve_panels
from utils.errors import ConfigError
from utils.report import markdown_table

REPO = Path(__file__).resolve().parent
MODELS = {  # key: (display name, base config)
    "vae": ("VAE", "configs/vae_fashion_mnist.json"),
    "ladder_vae": ("Ladder VAE", "configs/ladder_vae_fashion_mnist.json"),
    "fc_vae": ("FC-VAE", "configs/fc_vae_fashion_mnist.json"),
    "graph_vae": ("GraphVAE", "configs/graph_vae_fashion_mnist.json"),
}
DATASETS = ("fashion_mnist", "mnist", "omniglot")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion_mnist", choices=DATASETS)
    parser.add_argument("--epochs", type=int, default=20, help="training epochs of every model")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("-k", "--samples", type=int, default=1000, help="importance samples")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--out", default="saved/reproduce", help="where runs and results go")
    parser.add_argument("--test-limit", type=int, default=None, help="evaluate N test images")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config overrides applied to every model")
    return parser.parse_args(argv)


def model_config(key, dataset, seed, epochs, out, overrides):
    name, path = MODELS[key]
    config = load_json(REPO / path)
    config["name"] = f"{name.replace(' ', '').replace('-', '')}_{dataset}"
    config["seed"] = seed
    config["data_loader"]["args"]["dataset"] = dataset
    config["trainer"].update(epochs=epochs, save_dir=str(out), early_stop=0)
    return apply_overrides(config, overrides)


def train_model(config, out, seed):
    """Train, resume or skip the run <out>/models/<name>/seed<seed>; return its directory."""
    run_dir = out / "models" / config["name"] / f"seed{seed}"
    latest = run_dir / "checkpoint-latest.pth"
    if latest.is_file():
        checkpoint = load_checkpoint(latest)
        if checkpoint["epoch"] >= config["trainer"]["epochs"] and not checkpoint["batches_done"]:
            print(f"[{config['name']} seed {seed}] finished already: not retrained")
            return run_dir
        print(f"[{config['name']} seed {seed}] resuming")
        run_cli_or_fail(train.main, ["--resume", str(latest),
                                     "--epochs", str(config["trainer"]["epochs"])])
        return run_dir
    config_path = out / "configs" / f"{config['name']}_seed{seed}.json"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(config, indent=2))
    print(f"[{config['name']} seed {seed}] training {config['trainer']['epochs']} epochs")
    run_cli_or_fail(train.main, ["-c", str(config_path), "--run-id", f"seed{seed}"])
    return run_dir


def evaluate_model(run_dir, samples, limit):
    """Test results of model_best.pth, reusing an earlier evaluation with the same K."""
    best = run_dir / "model_best.pth"
    results_path = best.with_name("model_best-test.json")
    epoch = load_checkpoint(best)["epoch"]
    if results_path.is_file():
        results = json.loads(results_path.read_text())
        if (results["samples"], results["epoch"], results.get("limit")) == (samples, epoch, limit):
            return results
    argv = ["--resume", str(best), "-k", str(samples)]
    run_cli_or_fail(test_script.main, argv + (["--limit", str(limit)] if limit else []))
    results = json.loads(results_path.read_text())
    results["limit"] = limit
    results_path.write_text(json.dumps(results, indent=2))
    return results


def run_cli_or_fail(main, argv):
    if run_cli(lambda: main(argv)) != 0:
        raise SystemExit(2)


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None


def summarise(key, runs, samples):
    """One table row for a model from its runs (one per seed)."""
    name = MODELS[key][0]
    lls = mean_std([r["test"]["log_likelihood"] for r in runs])
    row = {"Model": name, f"log p(x), K={samples}": format_mean(*lls),
           "ELBO": format_mean(*mean_std([r["test"]["elbo"] for r in runs])),
           "KL": format_mean(*mean_std([r["test"]["kl"] for r in runs])),
           "params": runs[0]["params"],
           "epochs": runs[0]["epochs"],
           "s / epoch": statistics.mean(r["seconds"] / r["epochs"] for r in runs),
           "train min": statistics.mean(r["seconds"] for r in runs) / 60}
    return row, lls[0]


def format_mean(mean, std):
    if mean is None:
        return None
    return mean if std is None else f"{mean:.2f} ± {std:.2f}"


def collect_run(config, run_dir, args):
    latest = load_checkpoint(run_dir / "checkpoint-latest.pth")
    history = latest["history"]
    model = build_model(ConfigParser(json.loads(json.dumps(config))), 784)
    return {"test": evaluate_model(run_dir, args.samples, args.test_limit),
            "params": model.n_parameters(), "epochs": latest["epoch"],
            "seconds": sum(h["seconds"] for h in history),
            "history": [{k: h[k] for k in ("epoch", "loss", "val_loss", "val_kl", "seconds")
                         if k in h} for h in history]}


def write_outputs(out_dir, rows, runs_by_model, args):
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = list(rows[0])
    table = markdown_table(rows, columns)
    header = (f"{args.dataset}: {args.epochs} epochs, seed(s) {', '.join(map(str, args.seeds))}, "
              f"IS with K = {args.samples}"
              f"{f' on {args.test_limit} test images' if args.test_limit else ''} (nats).\n\n")
    (out_dir / "results.md").write_text(header + table + "\n")
    (out_dir / "results.json").write_text(json.dumps(
        {"args": vars(args), "rows": rows, "runs": runs_by_model}, indent=2))
    panels = []
    for metric, title in (("val_loss", "validation -ELBO (nats)"), ("val_kl", "validation KL (nats)")):
        curves = {MODELS[key][0]: [(h["epoch"], h[metric]) for h in runs[0]["history"]]
                  for key, runs in runs_by_model.items()}
        panels.append({"curves": curves, "title": title, "xlabel": "epoch", "ylabel": "nats"})
    plot_curve_panels(panels, out_dir / "curves.png")
    print("\n" + header + table)
    print(f"\nWritten: {out_dir / 'results.md'}, {out_dir / 'results.json'}, {out_dir / 'curves.png'}")


def main(argv=None):
    args = parse_args(argv)
    if args.epochs <= 0 or args.samples < 0:
        raise ConfigError("--epochs must be positive and -k non-negative")
    out = Path(args.out) / args.dataset
    rows, runs_by_model = [], {}
    for key in args.models:
        runs = []
        for seed in args.seeds:
            config = model_config(key, args.dataset, seed, args.epochs, out, args.set)
            run_dir = train_model(config, out, seed)
            runs.append(collect_run(config, run_dir, args))
        runs_by_model[key] = runs
        rows.append(summarise(key, runs, args.samples)[0])
    write_outputs(out, rows, runs_by_model, args)


if __name__ == "__main__":
    sys.exit(run_cli(main))
