"""Pictures of generated sequences: pen strokes as lines, piano rolls as key-by-time images."""
import numpy as np
from PIL import Image, ImageDraw

from data_loader.sequence_datasets import strokes_to_positions
from utils.drawing import image_grid

import torch


def draw_strokes(steps, size=160, margin=8):
    """One (T, 3) (pen_lift, dx, dy) sequence as a white image with black pen lines."""
    image = Image.new("L", (size, size), 255)
    lines = strokes_to_positions(np.asarray(steps, dtype=np.float64))
    points = np.concatenate(lines) if lines else np.zeros((1, 2))
    low, span = points.min(0), max(float(np.ptp(points, axis=0).max()), 1e-6)
    scale = (size - 2 * margin) / span
    draw = ImageDraw.Draw(image)
    for line in lines:
        # y grows upwards in the data and downwards in images
        xy = [(margin + (x - low[0]) * scale, size - margin - (y - low[1]) * scale)
              for x, y in line]
        if len(xy) > 1:
            draw.line(xy, fill=0, width=2, joint="curve")
    return image


def strokes_grid(sequences, ncol=4, size=160):
    tiles = [np.asarray(draw_strokes(s, size), dtype=np.float32) / 255.0 for s in sequences]
    return image_grid(torch.tensor(np.stack(tiles)), nrow=ncol)


def piano_roll_image(roll):
    """(T, 88) binary roll as an image: time to the right, low keys at the bottom."""
    keys_by_time = np.asarray(roll, dtype=np.float32).T[::-1]
    return Image.fromarray((255 * (1 - keys_by_time)).astype(np.uint8), mode="L")


def piano_rolls_grid(rolls, ncol=1):
    tiles = [1 - np.asarray(piano_roll_image(r), dtype=np.float32) / 255.0 for r in rolls]
    return image_grid(torch.tensor(np.stack(tiles)), nrow=ncol, pad_value=0.5)
