"""The statistics of the table: means and standard deviations over seeds, paired per-example
differences with their standard errors, and a learned graph against a known DAG."""
import math
import statistics

import numpy as np

from model.edge_gates import edge_status


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


def joint_graph(edge_probs):
    """(kept, undecided) edge names of a learned graph from its sigma(alpha), by the model's
    own rule (model/edge_gates.edge_status, which the graph figures draw): an undecided edge is
    neither kept nor recovered."""
    status = {name: edge_status(p, p > 0.5, learned=True) for name, p in edge_probs.items()}
    return ({name for name, s in status.items() if s == "kept"},
            {name for name, s in status.items() if s == "undecided"})


def final_graph(record):
    """joint_graph of a run's graph after its last epoch."""
    return joint_graph(record["history"][-1]["edge_probs"])


def recovery(kept, true_edges, undecided=()):
    """A learned graph against the true DAG T, with K the edges decided kept:
    precision |K & T| / |K| (None when nothing is kept), recall |K & T| / |T| (an undecided
    true edge is not recovered; None when T is empty), SHD |T - K| + |K - T| (the node order
    fixes each edge's direction, so there are no reversals), the undecided edges apart, and
    exact: K == T with no edge undecided."""
    kept, true, undecided = set(kept), set(true_edges), set(undecided)
    hits = len(kept & true)
    return {"precision": hits / len(kept) if kept else None,
            "recall": hits / len(true) if true else None, "shd": len(kept ^ true),
            "undecided": len(undecided), "exact": kept == true and not undecided}


def structure_cells(graphs, true_dag=None):
    """Columns of learned graphs ((kept, undecided) per seed): edges kept and undecided, and
    against a known DAG their recovery."""
    cells = {"edges kept": fmt(*mean_sd([len(kept) for kept, _ in graphs]), digits=1),
             "undecided": fmt(*mean_sd([len(undecided) for _, undecided in graphs]), digits=1)}
    if true_dag is not None:
        scores = [recovery(kept, true_dag, undecided) for kept, undecided in graphs]
        for name in ("precision", "recall", "shd"):
            cells[name] = fmt(*mean_sd([s[name] for s in scores]))
        cells["true DAG found"] = f"{sum(s['exact'] for s in scores)} of {len(scores)}"
    return cells
