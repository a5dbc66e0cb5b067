"""Scoring a learned graph against the true DAG, honestly, and the benchmark's tables.

An edge of a joint learner's graph whose sigma(alpha) lies within UNDECIDED_BAND of 0.5 is
undecided: it counts as neither kept nor recovered, and is counted apart. Against the true
edges T, with K the edges decided kept:

  precision  |K & T| / |K|  (None when nothing is kept)
  recall     |K & T| / |T|  (an undecided true edge is not recovered; None when T is empty)
  SHD        |T - K| + |K - T|: true edges missed (undecided ones included) plus false edges
             kept; the node order fixes each edge's direction, so there are no reversals
  exact      K == T and no edge undecided
"""
import statistics

from model.edge_gates import UNDECIDED_BAND


def joint_graph(edge_probs):
    """(kept, undecided) edge names of a joint learner's graph from its sigma(alpha)."""
    undecided = {name for name, p in edge_probs.items() if abs(p - 0.5) < UNDECIDED_BAND}
    kept = {name for name, p in edge_probs.items() if p > 0.5} - undecided
    return kept, undecided


def recovery(kept, true_edges, undecided=()):
    kept, true, undecided = set(kept), set(true_edges), set(undecided)
    hits = len(kept & true)
    return {"precision": hits / len(kept) if kept else None,
            "recall": hits / len(true) if true else None,
            "shd": len(true - kept) + len(kept - true), "undecided": len(undecided),
            "exact": kept == true and not undecided}


def mean(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def summary(scores):
    """Mean precision, recall, SHD, undecided edges, and exact recoveries, of scores."""
    return {"runs": len(scores), "exact": sum(s["exact"] for s in scores),
            **{key: mean([s[key] for s in scores])
               for key in ("precision", "recall", "shd", "undecided")}}


def fmt(value, digits=2):
    return "—" if value is None else f"{value:.{digits}f}"


def cells(result):
    """A method's cells of a table row."""
    return {"exact": f"{result['exact']} of {result['runs']}", "SHD": fmt(result["shd"]),
            "precision": fmt(result["precision"]), "recall": fmt(result["recall"]),
            "undecided": fmt(result["undecided"], 1)}

