"""The benchmark's summaries of scored runs. Each run is scored by reproduction/statistics.py
(joint_graph, recovery), as reproduce.py scores its runs: an edge whose sigma(alpha) lies within
UNDECIDED_BAND of 0.5 is undecided, neither kept nor recovered, and counted apart; exact is the
kept edges being the true DAG with no edge undecided."""
from reproduction.statistics import fmt, mean_sd


def summary(scores):
    """Mean precision, recall, SHD, undecided edges, and exact recoveries, of scores."""
    return {"runs": len(scores), "exact": sum(s["exact"] for s in scores),
            **{key: mean_sd([s[key] for s in scores])[0]
               for key in ("precision", "recall", "shd", "undecided")}}


def cells(result):
    """A method's cells of a table row."""
    return {"exact": f"{result['exact']} of {result['runs']}", "SHD": fmt(result["shd"]),
            "precision": fmt(result["precision"]), "recall": fmt(result["recall"]),
            "undecided": fmt(result["undecided"], digits=1)}

