"""The README's sequence table, from the committed per-run results of the three settings.

    python docs/results/sequences/summarize.py docs/results/sequences/strokes   (or .../piano)

Reads <dir>/{none,warmup10,freebits}/runs/<model>_seed<k>.json (written by reproduce.py) and
prints one Markdown row per setting and model: mean ± SD over seeds of the test log p(x), ELBO
and KL per step, the KL per node, mean active units per node, and the change in log p(x) from
the setting without a counter-measure, paired by seed (same initialisation, data order and
test sequences), ± its standard error over seeds.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

SETTINGS = {"none": "none", "warmup10": "KL warm-up, 10 epochs (the default)",
            "freebits": "free bits 0.25"}
MODELS = {"vrnn": "VRNN", "recurrent_graph_vae": "RecurrentGraphVAE"}
HERE = Path(__file__).resolve().parent


def test_results(folder, setting, model):
    runs = sorted((folder / setting / "runs").glob(f"{model}_seed*.json"))
    return [json.loads(path.read_text())["test"] for path in runs]


def mean_sd(values, digits):
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def row(folder, setting, model):
    runs, baseline = test_results(folder, setting, model), test_results(folder, "none", model)
    nodes = range(len(runs[0]["kl_per_node"]))
    kl = mean_sd([r["kl"] for r in runs], 3)
    if len(nodes) > 1:
        kl += " (" + " / ".join(f"{statistics.mean(r['kl_per_node'][i] for r in runs):.3f}"
                                for i in nodes) + ")"
    active = " / ".join(f"{statistics.mean(r['active_units'][i] for r in runs):.3g}" for i in nodes)
    change = [r["log_likelihood"] - b["log_likelihood"] for r, b in zip(runs, baseline)]
    paired = "—" if setting == "none" else (
        f"{statistics.mean(change):+.2f} ± {statistics.stdev(change) / len(change) ** 0.5:.2f}")
    return (f"| {SETTINGS[setting]} | {MODELS[model]} | "
            f"{mean_sd([r['log_likelihood'] for r in runs], 2)} | {paired} | "
            f"{mean_sd([r['elbo'] for r in runs], 2)} | {kl} | {active} |")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                    argparse.RawDescriptionHelpFormatter):
    """--help keeps the docstring's layout and shows the default (the project's
    utils/help_format.py, which this file, run from anywhere, cannot import)."""


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("folder", type=Path, nargs="?", default=HERE / "strokes",
                        help="the data set's results folder, holding none/, warmup10/ and "
                             "freebits/ (reproduce.py --results of each setting)")
    return parser.parse_args(argv)


def main(argv=None):
    folder = parse_args(argv).folder
    missing = [s for s in SETTINGS for m in MODELS if not test_results(folder, s, m)]
    if missing:
        print(f"error: {folder} has no runs of the settings {', '.join(sorted(set(missing)))} "
              f"(<setting>/runs/<model>_seed<k>.json); give the folder of a data set's "
              f"results, e.g. {HERE / 'strokes'}", file=sys.stderr)
        return 2
    print("| setting | model | log p(x) | Δ vs none | ELBO | KL / step (per node) | active units |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for setting in SETTINGS:
        for model in MODELS:
            print(row(folder, setting, model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
