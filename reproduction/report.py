"""The table and figures of a set of finished runs: results.md, results.json, curves.png,
graph_seed<k>.png and, for a sweep of learned graphs, sparsity.png."""
import json
import statistics

import numpy as np

from reproduction.runs import REFERENCES, as_variant, model_config, settings_of
from reproduction.statistics import (
    fmt,
    final_graph,
    mean_sd,
    paired_difference,
    structure_cells,
)
from utils.errors import ConfigError
from utils.files import write_file


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
        row.update(structure_cells([final_graph(r) for r in runs], true_dag))
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
        row.update(structure_cells([final_graph(r) for r in runs], true_dag))
    return row


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


def table_settings(args):
    """What a table was made with: its runs' settings, and which models, seeds and sweep."""
    return {**settings_of(args), "models": args.models, "seeds": args.seeds,
            "sweep": args.sweep}


def check_replaceable(results_dir, args):
    """A table made with other settings is never replaced without --overwrite (found out
    before anything trains)."""
    existing = results_dir / "results.json"
    if args.overwrite or not existing.is_file():
        return
    try:
        old = json.loads(existing.read_text(encoding="utf-8")).get("settings")
    except (ValueError, OSError, AttributeError):
        old = None
    new = table_settings(args)
    if old != new:
        differ = sorted(k for k in new if not isinstance(old, dict) or old.get(k) != new[k])
        raise ConfigError(f"{results_dir} holds a table made with other settings "
                          f"({', '.join(differ) or 'unreadable'}); give another --results, "
                          f"or --overwrite to replace it")


def write_outputs(results_dir, runs_by_variant, args):
    from logger.curves import save_curves, save_tradeoff
    from logger.graph_figure import graph_figure
    from logger.plotting import save_figure
    reference_variant = next((v for v in runs_by_variant if v.model in REFERENCES), None)
    reference = runs_by_variant[reference_variant] if reference_variant else []
    reference_name = reference_variant.name if reference_variant else "—"
    learned = {v: is_learned(v, args) for v in runs_by_variant}
    true_dag = known_dag(next(iter(runs_by_variant)), args)
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
    summary = {"settings": table_settings(args), "rows": rows}
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
    write_file(results_dir / "results.md", text)
    write_file(results_dir / "results.json", json.dumps(summary, indent=1))
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
        save_tradeoff({v.name: [(len(final_graph(r)[0]), -r["history"][-1]["val_loss"]) for r in runs]
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


def known_dag(variant, args):
    """The true DAG's edge names of a data set made from one (the variant's
    data_loader.args.dag), else None."""
    if args.dataset != "synthetic_dag":
        return None
    from data_loader.synthetic_dag import SyntheticDAG
    return SyntheticDAG.of(model_config(variant, 0, args)["data_loader"]["args"].get("dag"))\
        .true_dag()


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
