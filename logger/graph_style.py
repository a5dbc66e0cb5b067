"""How an edge of the learned graph is shown, the same in the matplotlib picture and in the
DOT export: its status (kept, dropped, undecided) sets colour and line style, its label is
sigma(alpha) and, where measured, its value now (v) and at the freeze (f), in nats."""
from model import edge_gates
from model.edge_gates import UNDECIDED_BAND

# line: matplotlib's line style, dot: Graphviz's.
EDGE_STYLES = {"kept": {"color": "#1f4e99", "line": "-", "dot": "solid"},
               "dropped": {"color": "#969696", "line": "--", "dot": "dashed"},
               "undecided": {"color": "#d95f02", "line": ":", "dot": "dotted"}}
STATUS_MEANING = {"kept": "kept", "dropped": "dropped",
                  "undecided": f"undecided: |σ(α) − 0.5| < {UNDECIDED_BAND}"}
# Three decimals: an undecided 0.549 and a kept 0.551 read apart.
PROB_FORMAT = "{:.3f}"


def all_edges(graph):
    """Every edge of the graph: within the step, then (recurrent models) from step t-1."""
    return graph["edges"] + graph.get("cross_edges", [])


def edge_status(edge):
    """kept, dropped or undecided: as the model said, or, for a graph saved before edges had
    a status, by the model's rule (a fixed graph's probabilities are 0 or 1, never
    undecided)."""
    return edge.get("status") or edge_gates.edge_status(float(edge["prob"]), edge["kept"], True)


def edge_label(edge):
    """sigma(alpha), and the edge's values in nats where they were measured, one a line."""
    values = [f"{tag} {edge[key]:+.2f}" for key, tag in (("value", "v"), ("value_at_freeze", "f"))
              if edge.get(key) is not None]
    return "\n".join([PROB_FORMAT.format(float(edge["prob"]))] + values)


def legend_entries(graph):
    """[(status, what it means)] to show: the statuses drawn, and the undecided band whenever
    the graph is learned (so that a reader knows what would be drawn dotted)."""
    drawn = {edge_status(edge) for edge in all_edges(graph)}
    learned = "learned" in (graph.get("structure"), graph.get("cross_structure"))
    return [(status, meaning) for status, meaning in STATUS_MEANING.items()
            if status in drawn or (status == "undecided" and learned)]


def label_legend(graph):
    """What the label on each edge says, only what is drawn."""
    measured = [tag for key, tag in (("value", "v: its value now"),
                                     ("value_at_freeze", "f: at the freeze"))
                if any(edge.get(key) is not None for edge in all_edges(graph))]
    return "on each edge: σ(α)" + (f"; {', '.join(measured)} (nats)" if measured else "")
