"""The benchmark's summaries of scored runs. Each run is scored by reproduction/statistics.py
(joint_graph, recovery), as reproduce.py scores its runs: an edge whose sigma(alpha) lies within
UNDECIDED_BAND of 0.5 is undecided, neither kept nor recovered, and counted apart; exact is the
kept edges being the true DAG with no edge undecided."""
import statistics



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

