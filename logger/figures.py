"""Every figure of the project: matplotlib for the graph, curves and sequences,
torchvision.utils for image grids; and the graph as Graphviz DOT text.

TensorBoard gets, each validation epoch, the learned graph, reconstructions (inputs above) and
samples from the prior with the current discrete graph (log_epoch_figures).
"""
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files and TensorBoard only: no screen needed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid, save_image  # noqa: E402

from utils.files import atomic_write  # noqa: E402


N_RECONSTRUCTIONS = 16
N_SAMPLES = 64
EDGE_STYLES = {"kept": {"color": "#1f4e99", "linestyle": "-"},
               "dropped": {"color": "#969696", "linestyle": "--"},
               "undecided": {"color": "#d95f02", "linestyle": ":"}}
# The graph picture's geometry, in data units (node i stands at height i): where the middle
# of the first arc on a side lies and how much wider each next one is, the distance between
# the columns of steps t-1 and t, and the drawing's scale.
ARC_FIRST = 0.6
ARC_STEP = 0.6
STEP_GAP = 3.0
INCHES_PER_UNIT = 1.2


@torch.no_grad()
def log_epoch_figures(writer, model, x_valid, image_shape, epoch, seed=None):
    """x_valid: a few validation inputs; image_shape: (C, H, W), or None for non-images;
    seed: the run's, for the graph's title."""
    was_training = model.training
    model.eval()
    writer.add_figure("graph", graph_figure(model.describe_graph(), epoch=epoch, seed=seed),
                      epoch)
    if image_shape is not None:
        as_images = lambda t: model.likelihood.mean(t).view(-1, *image_shape).cpu()  # noqa: E731
        x = x_valid[:N_RECONSTRUCTIONS]
        recons = as_images(model(x)["x_params"])
        inputs = x.view(-1, *image_shape).cpu()
        writer.add_image("reconstructions", make_grid(torch.cat([inputs, recons]), nrow=len(x)),
                         epoch)
        samples, _ = model.sample_prior(N_SAMPLES)
        writer.add_image("samples", make_grid(as_images(samples), nrow=8), epoch)
    model.train(was_training)


def save_images(images, path, nrow=8):
    """(n, C, H, W) images in [0, 1] as one PNG grid."""
    with atomic_write(path) as f:
        save_image(images, f, format=Path(path).suffix[1:] or "png", nrow=nrow, pad_value=0.5)


def graph_figure(graph, title=None, epoch=None, seed=None):
    """The latent DAG layered by node index: the root on top and node i one layer above node
    i-1, so every within-step edge points down. Edges between adjacent layers are straight;
    one that skips layers is an arc, the wider the more it skips, so no arrow passes through a
    node. Every edge carries a label on it: sigma(alpha) and, where measured, its value now
    (v) and at the freeze (f), in nats; its width and opacity grow with sigma(alpha). Kept
    edges are solid, dropped ones dashed grey, undecided ones dotted orange. A graph with
    cross-step edges (RecurrentGraphVAE: z_j at t-1 -> z_i at t) gets a column of nodes for
    step t-1 on the left, its edges drawn from there (the within-step arcs then all bow to the
    right). The title gives the epoch and seed when known."""
    n = len(graph["nodes"])
    cross = graph.get("cross_edges", [])
    reach = [arc_offset(span, bool(cross)) for span in range(2, n)]
    left = -STEP_GAP - 0.5 if cross else -max(reach[1::2] or reach[:1] or [0]) - 0.5
    right = max(reach or [0]) + 0.5
    figure, axes = plt.subplots(figsize=(INCHES_PER_UNIT * (right - left) + 0.4,
                                         INCHES_PER_UNIT * (n + 0.3) + 0.6))
    for edge in graph["edges"]:
        bend, label_at = within_step_arc(edge["src"], edge["dst"], bool(cross))
        draw_edge(axes, edge, (0.0, edge["src"]), (0.0, edge["dst"]), bend, label_at)
    for edge in cross:
        draw_edge(axes, edge, (-STEP_GAP, edge["src"]), (0.0, edge["dst"]), 0.0,
                  cross_label_position(edge["src"], edge["dst"], n))
    draw_nodes(axes, graph["nodes"], 0.0, "t" if cross else None)
    if cross:
        draw_nodes(axes, graph["nodes"], -STEP_GAP, "t-1")
    axes.set_xlim(left, right), axes.set_ylim(-0.5, n - 0.2)
    axes.set_aspect("equal"), axes.axis("off")
    axes.set_title(", ".join([title or f"{graph['structure']} graph"]
                             + [f"{name} {value}" for name, value in
                                (("epoch", epoch), ("seed", seed)) if value is not None]),
                   fontsize=9)
    axes.legend(handles=[Line2D([], [], lw=1.5, label=status, **style)
                         for status, style in EDGE_STYLES.items()],
                loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=7,
                frameon=False, title="on each edge: σ(α); v: its value, f: its value at the "
                                     "freeze (nats)", title_fontsize=7)
    figure.tight_layout()
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


def cross_label_position(src, dst, n):
    """Where the label of the cross-step edge src (t-1) -> dst (t) sits: along the line at a
    fraction that depends on the target, so that the N x N labels stand in N columns, the
    labels of a column at least 0.45 of a layer apart."""
    along = 0.15 + 0.4 * dst / max(1, n - 1)
    return -STEP_GAP * (1 - along), src + along * (dst - src)


def edge_status(edge):
    return edge.get("status", "kept" if edge["kept"] else "dropped")


def edge_label(edge):
    """sigma(alpha), and the edge's values in nats where they were measured."""
    values = [f"{tag} {edge[key]:+.2f}" for key, tag in (("value", "v"), ("value_at_freeze", "f"))
              if edge.get(key) is not None]
    return "\n".join([f"{float(edge['prob']):.2f}"] + values)


def draw_edge(axes, edge, start, end, bend, label_at):
    """One arrow from start to end (bend: matplotlib's arc3 rad) and its label on it, which
    carries the edge's name as its gid."""
    prob = min(max(float(edge["prob"]), 0.0), 1.0)
    style = EDGE_STYLES[edge_status(edge)]
    axes.annotate("", xy=end, xytext=start,
                  arrowprops={"arrowstyle": "-|>", "shrinkA": 16, "shrinkB": 16,
                              "connectionstyle": f"arc3,rad={bend}",
                              "lw": 0.5 + 3.0 * prob, "alpha": 0.35 + 0.65 * prob, **style})
    axes.text(*label_at, edge_label(edge), gid=edge["name"], fontsize=6.5, ha="center",
              va="center", color=style["color"], zorder=4, linespacing=1.0,
              bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.9})


def draw_nodes(axes, nodes, x, step):
    """One column of nodes at x, node i at height i (the root on top), headed by its step."""
    for node in nodes:
        axes.scatter([x], [node["id"]], s=900, zorder=2, edgecolors="black",
                     color="#fdd0a2" if node["root"] else "#deebf7")
        axes.text(x, node["id"], f"z{node['id']}", ha="center", va="center", zorder=3)
    if step is not None:
        axes.text(x, len(nodes) - 0.45, f"step {step}", ha="center", fontsize=8)


def curves_figure(panels):
    """Line plots side by side; panels: [{"curves": {label: [(x, y), ...]}, "title", "xlabel",
    "ylabel", optional "ylim": (low, high) and "freeze_epoch": the epoch after which the graph
    was frozen, marked with a vertical line}]. Without ylim the y-range is that of the last
    half of every curve, so that the first epochs, far below, do not squash the differences
    the curves end with. Every curve of a panel has its own colour."""
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        curves = {label: points for label, points in panel["curves"].items() if points}
        for (label, points), colour in zip(curves.items(), distinct_colours(len(curves))):
            ax.plot(*zip(*points), label=label, color=colour)
        if panel.get("freeze_epoch") is not None:
            ax.axvline(panel["freeze_epoch"], color="black", lw=0.8, ls=":",
                       label=f"graph frozen after epoch {panel['freeze_epoch']}")
        limits = panel.get("ylim") or focus_limits(curves.values())
        if limits is not None:
            ax.set_ylim(*limits)
        ax.set(title=panel.get("title", ""), xlabel=panel.get("xlabel", ""),
               ylabel=panel.get("ylabel", ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2 if len(curves) > 6 else 1)
    figure.tight_layout()
    return figure


def save_curves(panels, path):
    """curves_figure(panels) as a PNG."""
    save_figure(curves_figure(panels), path, dpi=110)


def save_figure(figure, path, dpi=100):
    """Write a matplotlib figure to path (utils/files.atomic_write) and free it."""
    with atomic_write(path) as f:
        figure.savefig(f, format=Path(path).suffix[1:] or "png", dpi=dpi)
    plt.close(figure)


def distinct_colours(n):
    """n colours that differ: tab10 up to 10 curves, tab20 up to 20, else samples of turbo."""
    if n <= 10:
        return [matplotlib.colormaps["tab10"](k) for k in range(n)]
    if n <= 20:
        return [matplotlib.colormaps["tab20"](k) for k in range(n)]
    return [matplotlib.colormaps["turbo"](x) for x in np.linspace(0.0, 1.0, n)]


def focus_limits(curves):
    """(low, high) around the finite values of the last half of every curve, padded by a
    tenth of their range; None without any."""
    tail = [y for points in curves for _, y in points[len(points) // 2:] if math.isfinite(y)]
    if not tail:
        return None
    low, high = min(tail), max(tail)
    pad = 0.1 * (high - low) if high > low else max(0.05 * abs(high), 0.05)
    return low - pad, high + pad


def save_tradeoff(points, path, xlabel, ylabel, title=""):
    """A scatter plot, one colour per label; points: {label: [(x, y), ...]}."""
    figure, axes = plt.subplots(figsize=(6, 4))
    for label, xy in points.items():
        if xy:
            axes.plot(*zip(*xy), "o", label=label, alpha=0.8)
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path, dpi=110)


def save_sequence_figure(sequences, kind, path):
    """Generated sequences: pen strokes (pen_lift, dx, dy) drawn as lines, or piano rolls
    (T, 88) as key-by-time images."""
    n = len(sequences)
    columns = max(1, int(math.sqrt(n))) if kind == "strokes" else 1
    rows = math.ceil(n / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.5 * columns if kind == "strokes" else 8,
                                                        2.5 * rows), squeeze=False)
    for ax, steps in zip(axes.flat, sequences):
        if kind == "strokes":
            for line in strokes_to_positions(np.asarray(steps, dtype=np.float64)):
                ax.plot(line[:, 0], line[:, 1], color="black")
            ax.set_aspect("equal")
        else:
            ax.imshow(np.asarray(steps).T, origin="lower", aspect="auto", cmap="Greys",
                      interpolation="nearest")
        ax.axis("off")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    figure.tight_layout()
    save_figure(figure, path)


def strokes_to_positions(strokes):
    """Pen-stroke steps (pen_lift, dx, dy) as a list of (T_k, 2) polylines from the origin,
    for drawing (a pen lift ends a polyline)."""
    positions = np.cumsum(np.asarray(strokes)[:, 1:], axis=0)
    lines, start = [], 0
    for end in np.flatnonzero(np.asarray(strokes)[:, 0] > 0.5).tolist() + [len(strokes) - 1]:
        if end >= start:
            lines.append(positions[start:end + 1])
        start = end + 1
    return lines


def graph_to_dot(graph):
    """Graphviz DOT text of the graph (render: dot -Tpng graph.dot -o graph.png): dropped
    edges dashed, pen width growing with the probability, the root double-circled."""
    lines = ["digraph latent_graph {", "  rankdir=TB;"]
    for node in graph["nodes"]:
        shape = "doublecircle" if node["root"] else "circle"
        lines.append(f'  z{node["id"]} [label="z{node["id"]}\\n{node["dims"]}d", shape={shape}];')
    for edge in graph["edges"]:
        style = "solid" if edge["kept"] else "dashed"
        lines.append(f'  z{edge["src"]} -> z{edge["dst"]} [label="{edge["prob"]:.2f}", '
                     f'style={style}, penwidth={0.5 + 3.5 * edge["prob"]:.2f}];')
    return "\n".join(lines + ["}"]) + "\n"
