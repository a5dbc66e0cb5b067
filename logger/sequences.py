"""Sequences drawn: pen strokes (pen_lift, dx, dy) as lines, piano rolls (T, 88) as key-by-time
images. sample.py writes them to files, TensorBoard shows them each epoch."""
import math

import numpy as np

from logger.plotting import plt, save_figure


def sequence_kind(model):
    """"strokes" for a model of pen strokes, "piano" for one of piano rolls (binary steps)."""
    return "strokes" if model.likelihood.data == "strokes" else "piano"


def sequence_figure(sequences, kind, title=None):
    """One panel per sequence: strokes in a square grid, piano rolls one above the other."""
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
                      interpolation="nearest", vmin=0, vmax=1)  # a key's probability, or 0/1
        ax.axis("off")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def save_sequence_figure(sequences, kind, path):
    """sequence_figure(sequences, kind) as a PNG."""
    save_figure(sequence_figure(sequences, kind), path, dpi=100)


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
