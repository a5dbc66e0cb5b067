"""Why the joint learner misses colliders and forks: what each edge is worth, how its gate
moves, and which term of the ELBO moves it.

    python -m bench.structure_family.diagnosis --out <checkpoints> --results <results>

reads runs of bench.structure_family (arms paper and cost0.1 of the same DAGs and seed, trained
with a checkpoint every epoch) and writes diagnosis.md, diagnosis.json and diagnosis.png:
per edge, σ(α) over the epochs (the trajectories), the gradient of the negative ELBO on its
logit split into reconstruction and KL at chosen epochs (bench/edge_gradients.py), the KL of
every node over the epochs, the toggled value at the freeze and the refitted value of the
graph search on each arm's checkpoint at the freeze (trainer/graph_search.py).
"""
import json
import sys
from pathlib import Path

import torch

from bench.structure_family import runs, searched
from bench.structure_family.scores import fmt
from reproduction.report import markdown_table
from utils.help_format import parser as help_parser

GRADIENT_EPOCHS = (1, 3, 6, 10)
BATCHES = 50


def gradients_at(directory, epoch):
    """{edge: (d recon / d alpha, d KL / d alpha)} of the run's checkpoint after epoch, at
    the next epoch's temperature, on BATCHES training batches (bench/edge_gradients.py)."""
    from bench.edge_gradients import edge_gradients
    from experiment import build_loader, load_model
    from trainer.checkpoint import load_checkpoint
    path = directory / f"checkpoint-epoch{epoch}.safetensors"
    checkpoint = load_checkpoint(path)
    config = runs.checkpoint_config(checkpoint, directory)
    torch.manual_seed(config["seed"])
    model = load_model(config, checkpoint, path)
    model.start_epoch(epoch + 1)
    loader = build_loader(config, "train")
    loader.set_epoch(epoch + 1)
    return edge_gradients(model, loader, BATCHES)


def diagnose(arm, name, seed, out, results):
    """The diagnosis of one run as plain data."""
    torch.set_num_threads(1)
    record = json.loads(runs.results_path(results, arm, name, seed).read_text())
    found = json.loads(searched.search_run(arm, name, seed, out, results).read_text())
    directory = runs.run_dir(out, arm, name, seed)
    return {"arm": arm, "dag": name, "seed": seed, "true_edges": record["true_edges"],
            "information": record["information"],
            "edge_probs": [h["edge_probs"] for h in record["history"]],
            "kl_per_node": [h["val_kl_per_node"] for h in record["history"]],
            "toggled": record["edge_values"], "refitted": found["refitted_values"],
            "refitted_se": found["refitted_se"], "search_kept": found["kept"],
            "gradients": {e: gradients_at(directory, e) for e in GRADIENT_EPOCHS}}


def table_rows(diagnoses):
    rows = []
    for d in diagnoses:
        for edge in d["edge_probs"][-1]:
            row = {"run": f"{d['dag']} {d['arm']}", "edge": edge,
                   "true (nats)": fmt(d["information"][edge]) if edge in d["true_edges"] else "",
                   "σ(α) at 3 / 10 / 20": " / ".join(f"{d['edge_probs'][e - 1][edge]:.2f}"
                                                     for e in (3, 10, 20))}
            for epoch, grads in d["gradients"].items():
                recon, kl = grads[edge]
                row[f"grad recon / KL, ep. {epoch}"] = f"{recon:+.3f} / {kl:+.3f}"
            row["toggled"] = fmt(d["toggled"].get(edge), 3)
            row["refitted"] = f"{d['refitted'][edge]:+.3f} ± {d['refitted_se'][edge]:.3f}"
            rows.append(row)
    return rows


def figure(diagnoses, path):
    from logger.figures import save_curves
    panels = [{"title": f"{d['dag']} ({d['arm']}): σ(α); true: {', '.join(d['true_edges'])}",
               "xlabel": "epoch", "ylim": (-0.02, 1.02),
               "curves": {edge + (" (true)" if edge in d["true_edges"] else ""):
                          [(e + 1, p[edge]) for e, p in enumerate(d["edge_probs"])]
                          for edge in d["edge_probs"][-1]}} for d in diagnoses]
    save_curves(panels, path)


def main(argv=None):
    parser = help_parser(__doc__)
    parser.add_argument("--out", required=True, help="the runs' checkpoints")
    parser.add_argument("--results", required=True,
                        help="the runs' results files; the diagnosis is written there")
    parser.add_argument("--dags", nargs="+", default=["n4_30-20", "n4_32-31-20"],
                        help="the DAGs diagnosed (names as in shapes.py)")
    parser.add_argument("--arms", nargs="+", default=["cost0.1", "paper"],
                        help="the arms diagnosed (runs.ARMS)")
    parser.add_argument("--seed", type=int, default=100, help="the runs' seed")
    args = parser.parse_args(argv)
    diagnoses = [diagnose(arm, name, args.seed, args.out, args.results)
                 for name in args.dags for arm in args.arms]
    results = Path(args.results)
    (results / "diagnosis.json").write_text(json.dumps(diagnoses, indent=1))
    figure(diagnoses, results / "diagnosis.png")
    text = "# Diagnosis\n\n" + markdown_table(table_rows(diagnoses))
    (results / "diagnosis.md").write_text(text)
    print(text)


if __name__ == "__main__":
    from utils.errors import run_cli
    sys.exit(run_cli(main))
