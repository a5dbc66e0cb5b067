"""Every figure of the project: matplotlib for the graph, curves and sequences,
torchvision.utils for image grids; and the graph as Graphviz DOT text.

TensorBoard gets, each validation epoch, the learned graph, reconstructions (inputs above) and
samples from the prior with the current discrete graph (log_epoch_figures).
"""
import math

import matplotlib

matplotlib.use("Agg")  # files and TensorBoard only: no screen needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid, save_image  # noqa: E402


N_RECONSTRUCTIONS = 16
N_SAMPLES = 64
KEPT, DROPPED = "#1f4e99", "#969696"


@torch.no_grad()
def log_epoch_figures(writer, model, x_valid, image_shape, epoch):
    """x_valid: a few validation inputs; image_shape: (C, H, W), or None for non-images."""
    was_training = model.training
    model.eval()
    writer.add_figure("graph", graph_figure(model.describe_graph()), epoch)
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
    save_image(images, str(path), nrow=nrow, pad_value=0.5)


def graph_figure(graph):
    """The latent DAG: nodes on a circle (the root on top), every candidate edge an arrow whose
    width and opacity grow with its probability; dropped edges dashed and grey."""
    n = len(graph["nodes"])
    angles = [math.pi / 2 - 2 * math.pi * k / n for k in range(n)]
    position = {node["id"]: (math.cos(a), math.sin(a))
                for node, a in zip(sorted(graph["nodes"], key=lambda v: -v["id"]), angles)}
    figure, axes = plt.subplots(figsize=(4, 4))
    for edge in graph["edges"]:
        prob = min(max(float(edge["prob"]), 0.0), 1.0)
        axes.annotate("", xy=position[edge["dst"]], xytext=position[edge["src"]],
                      arrowprops={"arrowstyle": "-|>", "shrinkA": 17, "shrinkB": 17,
                                  "lw": 0.5 + 3.5 * prob, "alpha": 0.3 + 0.7 * prob,
                                  "color": KEPT if edge["kept"] else DROPPED,
                                  "linestyle": "-" if edge["kept"] else "--"})
    for node in graph["nodes"]:
        x, y = position[node["id"]]
        axes.scatter([x], [y], s=900, zorder=2, edgecolors="black",
                     color="#fdd0a2" if node["root"] else "#deebf7")
        axes.text(x, y, f"z{node['id']}", ha="center", va="center", zorder=3)
    axes.set_xlim(-1.4, 1.4), axes.set_ylim(-1.4, 1.4), axes.set_aspect("equal"), axes.axis("off")
    axes.set_title(f"{graph['structure']} graph (dashed: dropped)", fontsize=9)
    return figure


def save_curves(panels, path):
    """Line plots side by side; panels: [{"curves": {label: [(x, y), ...]}, "title", "xlabel",
    "ylabel"}]."""
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for label, points in panel["curves"].items():
            if points:
                ax.plot(*zip(*points), label=label)
        ax.set(title=panel.get("title", ""), xlabel=panel.get("xlabel", ""),
               ylabel=panel.get("ylabel", ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


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
    figure.savefig(path, dpi=110)
    plt.close(figure)


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
    figure.savefig(path, dpi=100)
    plt.close(figure)


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
