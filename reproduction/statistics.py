"""The statistics of the table: means and standard deviations over seeds, paired per-example
differences with their standard errors, and a learned graph against a known DAG."""
import math
import statistics

import numpy as np


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
