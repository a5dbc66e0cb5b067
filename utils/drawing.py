"""Figures drawn with Pillow only: the latent graph, image grids, and training curves.

Pillow already comes with torchvision, so figures need no extra dependency (no matplotlib).
The graph and the plots are drawn at SUPERSAMPLE times the final size and shrunk at the end:
Pillow's lines and circles are not anti-aliased, and shrinking with a Lanczos filter smooths
their edges. Image grids are copied pixel for pixel instead.
"""
import math
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

SUPERSAMPLE = 3

# Matplotlib's "tab10" colours (distinct, and readable by most colour-blind viewers), then
# their light "tab20" partners, so that up to 20 curves get different colours.
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
           "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
           "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"]

KEPT_EDGE_COLOUR = (31, 78, 153)
DROPPED_EDGE_COLOUR = (150, 150, 150)
NODE_FILL = (222, 235, 247)
ROOT_FILL = (253, 208, 162)
INK = (30, 30, 30)
WHITE = (255, 255, 255)


# ---------------------------------------------------------------------------------------------
# Shared helpers

def _font(size):
    """DejaVu Sans when the system has it (most Linux images), else Pillow's bundled font."""
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def _text_size(draw, text, font):
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def _shrink(image, size):
    return image.resize(size, Image.LANCZOS)


def _dashed_line(draw, start, end, fill, width, dash, gap):
    """Pillow has no dashed lines: draw the dashes one by one along the segment."""
    (x0, y0), (x1, y1) = start, end
    length = math.hypot(x1 - x0, y1 - y0)
    if length == 0:
        return
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    pos = 0.0
    while pos < length:
        stop = min(pos + dash, length)
        draw.line([(x0 + ux * pos, y0 + uy * pos), (x0 + ux * stop, y0 + uy * stop)],
                  fill=fill, width=width)
        pos = stop + gap


def _save(image, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


# ---------------------------------------------------------------------------------------------
# The latent graph

def _circle_layout(node_ids, centre, radius):
    """Nodes on a circle, highest id (the root) at the top, then clockwise by decreasing id.

    The model's DAG may be complete (every higher id -> every lower id). With all nodes on a
    circle no straight edge can pass through a node, which a layered layout cannot promise.
    """
    cx, cy = centre
    order = sorted(node_ids, reverse=True)
    if len(order) == 1:
        return {order[0]: centre}
    positions = {}
    for rank, node_id in enumerate(order):
        angle = -math.pi / 2 + 2 * math.pi * rank / len(order)
        positions[node_id] = (cx + radius * math.cos(angle), cy + radius * math.sin(angle))
    return positions


def _draw_edge(draw, edge, positions, node_radius, s):
    prob = min(max(float(edge["prob"]), 0.0), 1.0)
    (x0, y0), (x1, y1) = positions[edge["src"]], positions[edge["dst"]]
    length = math.hypot(x1 - x0, y1 - y0)
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    # Width and opacity grow with prob; the floors keep unlikely edges faintly visible.
    width = round(s * (1 + 4 * prob))
    alpha = round(70 + 185 * prob)
    colour = KEPT_EDGE_COLOUR if edge["kept"] else DROPPED_EDGE_COLOUR
    fill = colour + (alpha,)

    # The arrow stops at the border of the child node; its head is sized by the line width.
    tip = (x1 - ux * (node_radius + 2 * s), y1 - uy * (node_radius + 2 * s))
    head_len = 7 * s + 2 * width
    head_half = 3 * s + width
    base = (tip[0] - ux * head_len, tip[1] - uy * head_len)
    start = (x0 + ux * node_radius, y0 + uy * node_radius)
    if edge["kept"]:
        draw.line([start, base], fill=fill, width=width)
    else:
        _dashed_line(draw, start, base, fill, width, dash=8 * s, gap=6 * s)
    head = [tip,
            (base[0] - uy * head_half, base[1] + ux * head_half),
            (base[0] + uy * head_half, base[1] - ux * head_half)]
    draw.polygon(head, fill=fill)


def _boxes_overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _place_edge_label(draw, edge, positions, node_radius, taken, s, font):
    """Put the edge's prob on the edge where it hides no other label and no node.

    In a complete DAG the edges cross, and labels at the midpoints can land on each other;
    so try points further along the edge until one is free. `taken` collects the boxes used.
    """
    prob = min(max(float(edge["prob"]), 0.0), 1.0)
    label = f"{prob:.2f}"
    (x0, y0), (x1, y1) = positions[edge["src"]], positions[edge["dst"]]
    tw, th = _text_size(draw, label, font)
    pad = 2 * s
    node_boxes = [(x - node_radius, y - node_radius, x + node_radius, y + node_radius)
                  for x, y in positions.values()]
    candidates = [0.5, 0.4, 0.6, 0.3, 0.7, 0.25, 0.75]
    for fraction in candidates:
        cx, cy = x0 + (x1 - x0) * fraction, y0 + (y1 - y0) * fraction
        box = (cx - tw / 2 - pad, cy - th / 2 - pad, cx + tw / 2 + pad, cy + th / 2 + pad)
        if not any(_boxes_overlap(box, other) for other in taken + node_boxes):
            break
    # If no point is free, the last candidate is used anyway: a readable figure beats none.
    taken.append(box)
    colour = KEPT_EDGE_COLOUR if edge["kept"] else (110, 110, 110)
    draw.rounded_rectangle(box, radius=3 * s, fill=WHITE + (225,))
    draw.text((cx, cy), label, font=font, fill=colour, anchor="mm")


def _draw_node(draw, node, position, radius, s, name_font, dims_font):
    x, y = position
    fill = ROOT_FILL if node.get("root") else NODE_FILL
    box = [x - radius, y - radius, x + radius, y + radius]
    draw.ellipse(box, fill=fill, outline=INK, width=2 * s)
    if node.get("root"):
        # A double border marks the root, as in the DOT export.
        inner = 4 * s
        draw.ellipse([x - radius + inner, y - radius + inner, x + radius - inner,
                      y + radius - inner], outline=INK, width=s)
    draw.text((x, y - radius * 0.12), f"z{node['id']}", font=name_font, fill=INK, anchor="md")
    draw.text((x, y + radius * 0.12), f"{node['dims']}d", font=dims_font, fill=INK, anchor="ma")


def _draw_graph_legend(draw, left, y, s, font):
    """One line under the picture saying what solid, dashed and thickness mean."""
    x = left
    for kept, text in [(True, "kept"), (False, "dropped")]:
        colour = (KEPT_EDGE_COLOUR if kept else DROPPED_EDGE_COLOUR) + (255,)
        if kept:
            draw.line([(x, y), (x + 30 * s, y)], fill=colour, width=3 * s)
        else:
            _dashed_line(draw, (x, y), (x + 30 * s, y), colour, 3 * s, dash=8 * s, gap=6 * s)
        x += 36 * s
        draw.text((x, y), text, font=font, fill=INK, anchor="lm")
        x += _text_size(draw, text, font)[0] + 18 * s
    draw.text((x, y), "width & opacity ~ p(edge)", font=font, fill=INK, anchor="lm")


def draw_graph(graph, size=(480, 480), title="Latent graph"):
    """Return a picture of the latent DAG: root on top, edges as arrows weighted by prob.

    Kept edges are solid blue, dropped ones dashed grey; each is labelled with its prob.
    """
    s = SUPERSAMPLE
    width, height = size[0] * s, size[1] * s
    image = Image.new("RGB", (width, height), WHITE)
    # "RGBA" mode blends each shape into the picture, so translucent edges can overlap.
    draw = ImageDraw.Draw(image, "RGBA")

    unit = min(size) * s  # every length scales with the picture
    title_font = _font(max(10, round(unit * 0.045)))
    small_font = _font(max(8, round(unit * 0.03)))
    name_font = _font(max(9, round(unit * 0.04)))
    top = round(unit * 0.1)       # room for the title
    bottom = round(unit * 0.08)   # room for the legend
    draw.text((width / 2, top / 2), title, font=title_font, fill=INK, anchor="mm")

    # Nodes shrink when there are many, so that neighbours on the circle never touch.
    outer_radius = min(width / 2, (height - top - bottom) / 2) - unit * 0.03
    node_radius = unit * 0.065
    if len(graph["nodes"]) > 1:
        gap_limit = outer_radius * math.sin(math.pi / len(graph["nodes"])) / 1.8
        node_radius = min(node_radius, gap_limit)
    centre = (width / 2, (top + height - bottom) / 2)
    circle_radius = outer_radius - node_radius
    positions = _circle_layout([n["id"] for n in graph["nodes"]], centre, circle_radius)

    # Likely edges go on top of unlikely ones, so the structure that matters stays visible.
    for edge in sorted(graph["edges"], key=lambda e: (e["kept"], e["prob"])):
        _draw_edge(draw, edge, positions, node_radius, s)
    # Labels after all edges, so that no line is drawn across a label.
    taken = []
    for edge in sorted(graph["edges"], key=lambda e: -e["prob"]):
        _place_edge_label(draw, edge, positions, node_radius, taken, s, small_font)
    for node in graph["nodes"]:
        _draw_node(draw, node, positions[node["id"]], node_radius, s, name_font, small_font)
    _draw_graph_legend(draw, round(unit * 0.04), height - bottom / 2, s, small_font)
    return _shrink(image, size)


# ---------------------------------------------------------------------------------------------
# Image grids

def _as_batch(images):
    """(B,H,W) or (B,C,H,W) float tensor in [0,1] -> (B,C,H,W) on the CPU."""
    images = torch.as_tensor(images).detach().float().cpu()
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4:
        raise ValueError(f"expected (B,H,W) or (B,C,H,W) images, got shape {tuple(images.shape)}")
    return images.clamp(0, 1)


def image_grid(images, nrow, pad=2, pad_value=0.5):
    """Return a PIL image tiling a (B,1,H,W) or (B,H,W) batch in [0,1], `nrow` per row.

    The size is (pad + cols*(W+pad), pad + rows*(H+pad)). The grey padding separates
    white-on-black digits, which black padding would merge.
    """
    # Not torchvision's make_grid: it returns a lone image without padding, and turns grey
    # images into RGB; the few lines here keep the size formula above true for every batch.
    batch = _as_batch(images)
    count, channels, height, width = batch.shape
    cols = min(nrow, count)
    rows = math.ceil(count / cols)
    grid = torch.full((channels, pad + rows * (height + pad), pad + cols * (width + pad)),
                      float(pad_value))
    for index, image in enumerate(batch):
        y = pad + (index // cols) * (height + pad)
        x = pad + (index % cols) * (width + pad)
        grid[:, y:y + height, x:x + width] = image
    pixels = (grid * 255).round().to(torch.uint8)
    if channels == 1:
        return Image.fromarray(pixels[0].numpy())  # a 2-D uint8 array becomes "L"
    return Image.fromarray(pixels.permute(1, 2, 0).numpy())  # (H, W, 3) becomes "RGB"


def reconstruction_grid(inputs, recons, n, nrow=None, pad=2):
    """Return a grid of the first `n` inputs on the top row(s) and their reconstructions below.

    With `nrow` < n each half takes several rows; a half is filled up to whole rows with black
    images so that every reconstruction sits in the same column as its input.
    """
    inputs, recons = _as_batch(inputs)[:n], _as_batch(recons)[:n]
    if inputs.shape != recons.shape:
        raise ValueError(f"inputs {tuple(inputs.shape)} and reconstructions "
                         f"{tuple(recons.shape)} differ")
    nrow = nrow or len(inputs)
    rows_per_half = math.ceil(len(inputs) / nrow)
    filler = torch.zeros((rows_per_half * nrow - len(inputs),) + tuple(inputs.shape[1:]))
    return image_grid(torch.cat([inputs, filler, recons, filler]), nrow=nrow, pad=pad)


# ---------------------------------------------------------------------------------------------
# Line plots

def _nice_step(span, max_ticks):
    """The smallest of 1, 2, 2.5, 5 x 10^k that cuts `span` into at most `max_ticks` pieces."""
    raw = span / max_ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * magnitude >= raw:
            return factor * magnitude
    return 10 * magnitude


def _axis_limits(values, margin=0.05):
    """The data range widened by `margin` on each side, so no point sits on the frame."""
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12 * max(abs(lo), abs(hi), 1.0):
        # A constant curve: open a window around it rather than divide by zero.
        half = abs(lo) * 0.1 or 1.0
        return lo - half, hi + half
    pad = (hi - lo) * margin
    return lo - pad, hi + pad


def _nice_ticks(lo, hi, max_ticks=6):
    """Round tick values inside [lo, hi]; returns (ticks, step)."""
    step = _nice_step(hi - lo, max_ticks)
    first = math.ceil(lo / step - 1e-9) * step
    count = math.floor((hi - first) / step + 1e-9)
    return [first + i * step for i in range(count + 1)], step


def _format_tick(value, step):
    """As many decimals as the step needs: 0.25 -> 2, 5 -> 0, 2000 -> "2,000"."""
    if abs(value) < step * 1e-6:
        value = 0.0  # avoid "-0.0" from rounding
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if step != round(step, decimals):  # e.g. 0.25 needs one more than 0.2
        decimals += 1
    return f"{value:,.{decimals}f}"


def _finite_points(points):
    # A diverged run logs inf/nan; drop those points instead of breaking the axes.
    return [(float(x), float(y)) for x, y in points
            if math.isfinite(float(x)) and math.isfinite(float(y))]


def _legend_rows(draw, labels, font, max_width, s):
    """Split legend entries into rows that fit `max_width`; each entry is (label, width)."""
    rows, row, used = [], [], 0
    for index, label in enumerate(labels):
        entry = 28 * s + _text_size(draw, label, font)[0] + 16 * s
        if row and used + entry > max_width:
            rows.append(row)
            row, used = [], 0
        row.append((index, label, entry))
        used += entry
    if row:
        rows.append(row)
    return rows


def draw_curves(curves, title="", xlabel="", ylabel="", size=(640, 420)):
    """Return a line plot of `curves` = {label: [(x, y), ...]} with axes, ticks and a legend."""
    s = SUPERSAMPLE
    width, height = size[0] * s, size[1] * s
    image = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(image)
    font = _font(12 * s)
    title_font = _font(15 * s)

    series = {label: _finite_points(points) for label, points in curves.items()}
    all_points = [p for points in series.values() for p in points] or [(0.0, 0.0)]
    x_lo, x_hi = _axis_limits([p[0] for p in all_points])
    y_lo, y_hi = _axis_limits([p[1] for p in all_points])
    x_ticks, x_step = _nice_ticks(x_lo, x_hi)
    y_ticks, y_step = _nice_ticks(y_lo, y_hi)
    y_labels = [_format_tick(t, y_step) for t in y_ticks]

    # Margins: y label and y tick numbers on the left; x numbers, x label, legend below.
    line_h = _text_size(draw, "0,9", font)[1]
    left = 14 * s + line_h + max(_text_size(draw, t, font)[0] for t in y_labels) + 12 * s
    right = width - 20 * s
    legend = _legend_rows(draw, list(series), font, right - left, s)
    top = 40 * s if title else 16 * s
    bottom = height - (12 * s + 2 * (line_h + 10 * s) + len(legend) * (line_h + 10 * s))

    def to_px(x, y):
        px = left + (x - x_lo) / (x_hi - x_lo) * (right - left)
        py = bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top)
        return px, py

    if title:
        draw.text(((left + right) / 2, 20 * s), title, font=title_font, fill=INK, anchor="mm")

    # Grid lines and tick numbers.
    grid_colour = (225, 225, 225)
    for tick, text in zip(y_ticks, y_labels):
        _, py = to_px(x_lo, tick)
        draw.line([(left, py), (right, py)], fill=grid_colour, width=s)
        draw.line([(left - 5 * s, py), (left, py)], fill=INK, width=s)
        draw.text((left - 8 * s, py), text, font=font, fill=INK, anchor="rm")
    for tick in x_ticks:
        px, _ = to_px(tick, y_lo)
        draw.line([(px, top), (px, bottom)], fill=grid_colour, width=s)
        draw.line([(px, bottom), (px, bottom + 5 * s)], fill=INK, width=s)
        draw.text((px, bottom + 8 * s), _format_tick(tick, x_step), font=font, fill=INK,
                  anchor="ma")
    draw.rectangle([left, top, right, bottom], outline=INK, width=s)

    # Axis labels; the y label is drawn on its own strip and turned upright.
    x_label_y = bottom + 8 * s + line_h + 10 * s
    draw.text(((left + right) / 2, x_label_y), xlabel, font=font, fill=INK, anchor="ma")
    if ylabel:
        strip_size = (_text_size(draw, ylabel, font)[0] + 4 * s, line_h + 8 * s)
        strip = Image.new("RGB", strip_size, WHITE)
        ImageDraw.Draw(strip).text((2 * s, 0), ylabel, font=font, fill=INK)
        strip = strip.rotate(90, expand=True)
        image.paste(strip, (8 * s, round((top + bottom - strip.height) / 2)))

    # The curves; dots mark the points when there are few enough to tell apart.
    for index, points in enumerate(series.values()):
        colour = PALETTE[index % len(PALETTE)]
        pixels = [to_px(x, y) for x, y in sorted(points)]
        if len(pixels) > 1:
            draw.line(pixels, fill=colour, width=2 * s, joint="curve")
        if len(pixels) <= 40:
            r = 3 * s
            for px, py in pixels:
                draw.ellipse([px - r, py - r, px + r, py + r], fill=colour)

    # Legend rows under the x label, each entry a coloured stroke and its label.
    y = x_label_y + line_h + 18 * s
    for row in legend:
        x = left
        for index, label, entry in row:
            colour = PALETTE[index % len(PALETTE)]
            draw.line([(x, y), (x + 22 * s, y)], fill=colour, width=3 * s)
            draw.text((x + 28 * s, y), label, font=font, fill=INK, anchor="lm")
            x += entry
        y += line_h + 10 * s
    return _shrink(image, size)


def plot_curves(curves, path, title="", xlabel="", ylabel="", size=(640, 420)):
    """Save draw_curves(...) as a PNG at `path` and return the image."""
    image = draw_curves(curves, title, xlabel, ylabel, size)
    _save(image, path)
    return image


def plot_curve_panels(panels, path, panel_size=(480, 360)):
    """Save several plots side by side; `panels` is a list of dicts with the keys
    "curves" and optionally "title", "xlabel", "ylabel" (the arguments of draw_curves)."""
    images = [draw_curves(p["curves"], p.get("title", ""), p.get("xlabel", ""),
                          p.get("ylabel", ""), panel_size) for p in panels]
    canvas = Image.new("RGB", (panel_size[0] * len(images), panel_size[1]), WHITE)
    for index, image in enumerate(images):
        canvas.paste(image, (index * panel_size[0], 0))
    _save(canvas, path)
    return canvas
