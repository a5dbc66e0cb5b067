"""matplotlib without a screen (files and TensorBoard only), the text size every figure uses,
and writing a figure to a file."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from utils.files import atomic_write  # noqa: E402

FONT_SIZE = 9  # points: readable at 100 %
matplotlib.rcParams.update({"font.size": FONT_SIZE, "legend.fontsize": FONT_SIZE,
                            "axes.titlesize": FONT_SIZE + 1})


def save_figure(figure, path, dpi=110):
    """Write a matplotlib figure to path (utils/files.atomic_write), nothing of it cut off
    (legends outside the axes included), and free it."""
    with atomic_write(path) as f:
        figure.savefig(f, format=Path(path).suffix[1:] or "png", dpi=dpi, bbox_inches="tight",
                       pad_inches=0.1)
    plt.close(figure)
