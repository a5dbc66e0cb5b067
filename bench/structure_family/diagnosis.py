"""Why the joint learner misses colliders and forks: what each edge is worth, how its gate
moves, and which term of the ELBO moves it.

    python -m bench.structure_family.diagnosis --out <checkpoints> --results <results>

trains (or resumes) the runs of bench.structure_family it reads (arms paper and cost0.1 of
the same DAGs and seed) with a checkpoint kept every epoch, searches each run's graph at the
freeze, and writes diagnosis.md, diagnosis.json and diagnosis.png: per edge, σ(α) over the
epochs (the trajectories), the gradient of the negative ELBO on its logit split into
reconstruction and KL at chosen epochs (bench/edge_gradients.py), the KL of every node over the
epochs, the toggled value at the freeze and the refitted value of the graph search on each
arm's checkpoint at the freeze (trainer/graph_search.py). A run whose results file exists
without the checkpoints read here (trained by the benchmark) is trained again from the start.
"""
import json
import sys
from pathlib import Path

import torch

from bench.structure_family import runs, searched, shapes
from model.objective import warmup_weight
from reproduction.report import markdown_table
from reproduction.statistics import fmt
from utils.files import write_file
from utils.help_format import parser as help_parser

GRADIENT_EPOCHS = (1, 3, 6, 10)
SHOWN_EPOCHS = (*GRADIENT_EPOCHS, runs.FREEZE_EPOCH)  # σ(α) and KL after these
BATCHES = 50
LEGEND = """Columns: *true (nats)*, a true edge's information (blank: not in the true DAG);
*σ(α)* after epochs {epochs} (the last: the freeze); *grad recon / KL, ep. e*, the gradients
of the negative ELBO's reconstruction and KL parts (nats per image) on the edge's logit, from
the checkpoint after epoch e at the next epoch's temperature, mean over {batches} training
batches (negative: gradient descent raises σ(α)); *training's grad*, at the same epochs, the
gradient training follows: recon + w (KL + the structure cost), w the next epoch's KL warm-up
weight (with Adam, its sign more than its size sets how σ(α) moves); *toggled*, ELBO with −
without the edge at the freeze, the networks as trained; *refitted*, L_16 with − without the
edge, the prior networks refitted (trainer/graph_search.py), ± its standard error over
validation images. One seed per run."""


def epoch_checkpoint(directory, epoch):
    return directory / f"checkpoint-epoch{epoch}.safetensors"


def train_diagnosed(arm, name, seed, out, results):
    """Train (or resume) one run keeping a checkpoint every epoch (runs.run_one), then search
    its graph at the freeze (searched.search_run). A run that lacks a checkpoint read here
    where it can no longer be written (before its latest epoch, or the run done) is trained
    again from the start, its search redone. Returns the search file's path."""
    from trainer.checkpoint import load_checkpoint
    edges, n_factors = shapes.dag_edges(name)
    directory = runs.run_dir(out, arm, name, seed)
    latest = directory / "checkpoint-latest.safetensors"
    reached = load_checkpoint(latest)["epoch"] if latest.is_file() else 0
    missing = [e for e in (*GRADIENT_EPOCHS, runs.FREEZE_EPOCH)
               if not epoch_checkpoint(directory, e).is_file()]
    retrain = bool(missing) and (runs.results_path(results, arm, name, seed).is_file()
                                 or min(missing) <= reached)
    if retrain:
        searched.search_path(results, arm, name, seed).unlink(missing_ok=True)
    runs.run_one(arm, name, edges, n_factors, seed, out, results, retrain=retrain,
                 save_period=1)
    return searched.search_run(arm, name, seed, out, results)


def gradients_at(directory, epoch):
    """{edge: (d recon / d alpha, d KL / d alpha, d objective / d alpha)} of the run's
    checkpoint after epoch, at the next epoch's temperature, on BATCHES training batches
    (bench/edge_gradients.py); the objective's gradient is training's: recon + w (KL + the
    structure cost), w the next epoch's KL warm-up weight (Trainer.start_epoch)."""
    from bench.edge_gradients import edge_gradients
    from experiment import build_loader, load_model
    from trainer.checkpoint import load_checkpoint
    path = epoch_checkpoint(directory, epoch)
    checkpoint = load_checkpoint(path)
    config = runs.checkpoint_config(checkpoint, directory)
    torch.manual_seed(config["seed"])
    model = load_model(config, checkpoint, path)
    model.start_epoch(epoch + 1)
    loader = build_loader(config, "train")
    loader.set_epoch(epoch + 1)
    weight = warmup_weight(epoch + 1, config["trainer"]["kl_warmup_epochs"])
    cost = cost_gradients(model)
    return {edge: (recon, kl, recon + weight * (kl + cost[edge]))
            for edge, (recon, kl) in edge_gradients(model, loader, BATCHES).items()}


def cost_gradients(model):
    """{edge: d structure cost / d alpha} (0 without a structure prior)."""
    gate_sets = [g for g in model.gate_sets().values() if g.learned]
    grads = torch.autograd.grad(model.structure_cost(), [g.logits for g in gate_sets]) \
        if model.has_structure_cost else [torch.zeros(len(g.names)) for g in gate_sets]
    return {name: float(v) for g, grad in zip(gate_sets, grads) for name, v in zip(g.names, grad)}


def diagnose(arm, name, seed, out, results):
    """The diagnosis of one run as plain data."""
    torch.set_num_threads(1)
    found = json.loads(train_diagnosed(arm, name, seed, out, results).read_text())
    record = json.loads(runs.results_path(results, arm, name, seed).read_text())
    directory = runs.run_dir(out, arm, name, seed)
    return {"arm": arm, "dag": name, "seed": seed, "true_edges": record["true_edges"],
            "information": record["information"],
            "edge_probs": [h["edge_probs"] for h in record["history"]],
            "kl_per_node": [h["val_kl_per_node"] for h in record["history"]],
            "toggled": record["edge_values"], "refitted": found["refitted_values"],
            "refitted_se": found["refitted_se"], "search_kept": found["kept"],
            "gradients": {e: gradients_at(directory, e) for e in GRADIENT_EPOCHS}}


def table_rows(diagnoses):
    rows, epochs = [], " / ".join(map(str, GRADIENT_EPOCHS))
    for d in diagnoses:
        for edge in d["edge_probs"][-1]:
            row = {"run": f"{d['dag']} {d['arm']}", "edge": edge,
                   "true (nats)": fmt(d["information"][edge]) if edge in d["true_edges"] else "",
                   "σ(α)": " / ".join(f"{d['edge_probs'][e - 1][edge]:.2f}"
                                      for e in SHOWN_EPOCHS)}
            for epoch, grads in d["gradients"].items():
                recon, kl, _ = grads[edge]
                row[f"grad recon / KL, ep. {epoch}"] = f"{recon:+.3f} / {kl:+.3f}"
            row[f"training's grad, ep. {epochs}"] = " / ".join(f"{grads[edge][2]:+.3f}"
                                                for grads in d["gradients"].values())
            row["toggled"] = fmt(d["toggled"].get(edge), digits=3)
            row["refitted"] = f"{d['refitted'][edge]:+.3f} ± {d['refitted_se'][edge]:.3f}"
            rows.append(row)
    return rows


def kl_rows(diagnoses):
    """Each run's validation KL per node (nats) after SHOWN_EPOCHS."""
    return [{"run": f"{d['dag']} {d['arm']}", "epoch": epoch,
             **{f"KL z{k}": f"{kl:.2f}" for k, kl in enumerate(d["kl_per_node"][epoch - 1])}}
            for d in diagnoses for epoch in SHOWN_EPOCHS]


def figure(diagnoses, path):
    from logger.curves import save_curves
    panels = [{"title": f"{d['dag']} ({d['arm']}): σ(α); true: {', '.join(d['true_edges'])}",
               "xlabel": "epoch", "ylim": (-0.02, 1.02),
               "curves": {edge + (" (true)" if edge in d["true_edges"] else ""):
                          [(e + 1, p[edge]) for e, p in enumerate(d["edge_probs"])]
                          for edge in d["edge_probs"][-1]}} for d in diagnoses]
    save_curves(panels, path)


def report(diagnoses, args):
    """diagnosis.md: what was run, the legend, the edges' table and the nodes' KL."""
    epochs = " / ".join(map(str, SHOWN_EPOCHS))
    return (f"# Diagnosis of the joint learner\n\nDAGs {', '.join(args.dags)}; arms "
            f"{', '.join(args.arms)}; seed {args.seed} (of the run and of the data's generator)."
            f"\n\n{LEGEND.format(batches=BATCHES, epochs=epochs)}\n\n"
            f"{markdown_table(table_rows(diagnoses))}\nThe validation KL of each node (nats per "
            f"image) after epochs {epochs}:\n\n{markdown_table(kl_rows(diagnoses))}")


def main(argv=None):
    parser = help_parser(__doc__)
    parser.add_argument("--out", required=True, help="the runs' checkpoints")
    parser.add_argument("--results", required=True,
                        help="the runs' results files; the diagnosis is written there")
    parser.add_argument("--dags", nargs="+", default=["n4_30-20", "n4_32-31-20"],
                        help="the DAGs diagnosed (names as in shapes.py)")
    parser.add_argument("--arms", nargs="+", default=["cost0.1", "paper"],
                        choices=list(runs.ARMS), help="the arms diagnosed (runs.ARMS)")
    parser.add_argument("--seed", type=int, default=100, help="the runs' seed")
    args = parser.parse_args(argv)
    for name in args.dags:  # every name checked before any training
        shapes.dag_edges(name)
    diagnoses = [diagnose(arm, name, args.seed, args.out, args.results)
                 for name in args.dags for arm in args.arms]
    results = Path(args.results)
    write_file(results / "diagnosis.json", json.dumps(diagnoses, indent=1))
    figure(diagnoses, results / "diagnosis.png")
    text = report(diagnoses, args)
    write_file(results / "diagnosis.md", text)
    print(text)


if __name__ == "__main__":
    from utils.errors import run_cli
    sys.exit(run_cli(main))
