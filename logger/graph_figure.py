"""The learned graph as a matplotlib figure: the one style of every graph picture (TensorBoard,
test.py, reproduce.py)."""
import numpy as np
from matplotlib.lines import Line2D

from logger.graph_style import EDGE_STYLES, edge_label, edge_status, label_legend, legend_entries
from logger.plotting import FONT_SIZE, plt

# The picture's geometry, in data units (node i stands at height i): where the middle of the
# first arc on a side lies and how much wider each next one is, the distance between the
# columns of steps t-1 and t, and the drawing's scale.
ARC_FIRST = 0.6
ARC_STEP = 0.6
STEP_GAP = 3.0
INCHES_PER_UNIT = 1.5
MIN_WIDTH = 5.0  # inches: the legend's width
LEGEND_HEIGHT = 1.1  # inches below the drawing
# Data units from a crossing of lines and from another label that are far enough.
CROSSING_CLEARANCE = 0.4
LABEL_CLEARANCE = 1.0


def graph_figure(graph, title=None, epoch=None, seed=None):
    """The latent DAG layered by node index: the root on top and node i one layer above node
    i-1, so every within-step edge points down. Edges between adjacent layers are straight;
    one that skips layers is an arc, the wider the more it skips, so no arrow passes through a
    node. Every edge carries its label (logger/graph_style.py); its width and opacity grow
    with sigma(alpha). A graph with cross-step edges (RecurrentGraphVAE: z_j at t-1 -> z_i at
    t) gets a column of nodes for step t-1 on the left, its edges drawn from there (the
    within-step arcs then all bow to the right). The title gives the epoch and seed when
    known; the legend below says what the styles and labels mean."""
    n = len(graph["nodes"])
    cross = graph.get("cross_edges", [])
    reach = [arc_offset(span, bool(cross)) for span in range(2, n)]
    left = -STEP_GAP - 0.5 if cross else -max(reach[1::2] or reach[:1] or [0]) - 0.5
    right = max(reach or [0]) + 0.5
    width = max(MIN_WIDTH, INCHES_PER_UNIT * (right - left))
    figure, axes = plt.subplots(figsize=(width, INCHES_PER_UNIT * (n + 0.3) + LEGEND_HEIGHT),
                                layout="constrained")
    for edge in graph["edges"]:
        bend, label_at = within_step_arc(edge["src"], edge["dst"], bool(cross))
        draw_edge(axes, edge, (0.0, edge["src"]), (0.0, edge["dst"]), bend, label_at)
    for edge, label_at in zip(cross, cross_label_positions(cross)):
        draw_edge(axes, edge, (-STEP_GAP, edge["src"]), (0.0, edge["dst"]), 0.0, label_at)
    draw_nodes(axes, graph["nodes"], 0.0, "t" if cross else None)
    if cross:
        draw_nodes(axes, graph["nodes"], -STEP_GAP, "t-1")
    axes.set_xlim(left, right), axes.set_ylim(-0.5, n - 0.2)
    axes.set_aspect("equal"), axes.axis("off")
    axes.set_title(", ".join([title or f"{graph['structure']} graph"]
                             + [f"{name} {value}" for name, value in
                                (("epoch", epoch), ("seed", seed)) if value is not None]))
    figure.legend(handles=[Line2D([], [], lw=2, color=EDGE_STYLES[status]["color"],
                                  linestyle=EDGE_STYLES[status]["line"], label=meaning)
                           for status, meaning in legend_entries(graph)],
                  loc="outside lower center", ncol=1, frameon=False, title=label_legend(graph),
                  title_fontsize=FONT_SIZE)
    return figure


def arc_offset(span, one_side):
    """How far right or left of the nodes the middle of an edge skipping span - 1 layers
    lies. Spans alternate sides (even left, odd right) unless one_side, so that arcs of the
    same side differ in width by ARC_STEP."""
    rank = span - 1 if one_side else span // 2
    return ARC_FIRST + ARC_STEP * (rank - 1)


def within_step_arc(src, dst, one_side):
    """(matplotlib arc3 rad, label position) of the edge src -> dst of one step; the label
    sits at the middle of the curve."""
    span = src - dst
    if span == 1:
        return 0.0, (0.0, dst + 0.5)
    side = 1 if one_side or span % 2 else -1
    offset = arc_offset(span, one_side)
    # arc3 puts its control point rad * (length of the chord) beside the chord's middle,
    # on the right of a downward arrow for rad < 0; the curve's middle is half as far.
    return -side * 2 * offset / span, (side * offset, (src + dst) / 2)


def cross_label_positions(edges):
    """Where the labels of the cross-step edges src (t-1) -> dst (t) sit: each along its line,
    at a place (of some between the two columns) clear of where other lines cross or meet it,
    so that a label names one line, and of those the farthest from the labels placed before."""
    lines = [(edge["src"], edge["dst"]) for edge in edges]
    placed = []
    for line in lines:
        crossings = [point_on(line, a) for a in (along_crossing(line, o) for o in lines)
                     if a is not None]
        candidates = [point_on(line, a) for a in np.linspace(0.1, 0.9, 33)]
        placed.append(max(candidates, key=lambda p: (
            min([distance(p, c) for c in crossings] + [CROSSING_CLEARANCE]),
            min([distance(p, q) for q in placed] + [LABEL_CLEARANCE]))))
    return placed


def along_crossing(line, other):
    """Where along line (0 at step t-1, 1 at step t) other crosses it, or meets it at a node
    they share (where lines converge a label is as ambiguous), or None."""
    (s1, d1), (s2, d2) = line, other
    turn = (s1 - s2) - (d1 - d2)
    along = (s1 - s2) / turn if turn else None
    return along if along is not None and 0.0 <= along <= 1.0 else None


def point_on(line, along):
    src, dst = line
    return -STEP_GAP * (1 - along), src + along * (dst - src)


def distance(p, q):
    return float(np.hypot(p[0] - q[0], p[1] - q[1]))


def draw_edge(axes, edge, start, end, bend, label_at):
    """One arrow from start to end (bend: matplotlib's arc3 rad) and its label on it, which
    carries the edge's name as its gid."""
    prob = min(max(float(edge["prob"]), 0.0), 1.0)
    style = EDGE_STYLES[edge_status(edge)]
    axes.annotate("", xy=end, xytext=start,
                  arrowprops={"arrowstyle": "-|>", "shrinkA": 18, "shrinkB": 18,
                              "connectionstyle": f"arc3,rad={bend}", "color": style["color"],
                              "linestyle": style["line"], "lw": 0.5 + 3.0 * prob,
                              "alpha": 0.35 + 0.65 * prob})
    axes.text(*label_at, edge_label(edge), gid=edge["name"], ha="center", va="center",
              color=style["color"], zorder=4, linespacing=1.0,
              bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.9})


def draw_nodes(axes, nodes, x, step):
    """One column of nodes at x, node i at height i (the root on top), headed by its step."""
    for node in nodes:
        axes.scatter([x], [node["id"]], s=1100, zorder=2, edgecolors="black",
                     color="#fdd0a2" if node["root"] else "#deebf7")
        axes.text(x, node["id"], f"z{node['id']}", ha="center", va="center", zorder=3,
                  fontsize=FONT_SIZE + 1)
    if step is not None:
        axes.text(x, len(nodes) - 0.4, f"step {step}", ha="center")
