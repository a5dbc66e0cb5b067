"""Line plots of training curves, and scatter plots of a trade-off."""
import math

import matplotlib
import numpy as np

from logger.plotting import plt, save_figure


def curves_figure(panels):
    """Line plots side by side; panels: [{"curves": {label: [(x, y), ...]}, "title", "xlabel",
    "ylabel", optional "ylim": (low, high) and "freeze_epoch": the epoch after which the graph
    was frozen, marked with a vertical line}]. Without ylim the y-range is that of the last
    half of every curve, so that the first epochs, far below, do not squash the differences
    the curves end with. Every curve of a panel has its own colour; the legend stands beside
    the panel, where it hides no curve."""
    figure, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.0), squeeze=False)
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
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                  ncol=2 if len(curves) > 12 else 1)
    figure.tight_layout()
    return figure


def save_curves(panels, path):
    """curves_figure(panels) as a PNG."""
    save_figure(curves_figure(panels), path)


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
    """A scatter plot, one colour per label, the legend beside it (where it hides no point);
    points: {label: [(x, y), ...]}."""
    figure, axes = plt.subplots(figsize=(10, 4.2))
    for label, xy in points.items():
        if xy:
            axes.plot(*zip(*xy), "o", label=label, alpha=0.8)
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    figure.tight_layout()
    save_figure(figure, path)
