"""Tests of the figure and export utilities: graph JSON/DOT, drawings, grids, tables."""
import copy
import re
import shutil
import subprocess

import pytest
import torch
from PIL import Image, ImageChops, ImageStat

from utils.drawing import (draw_graph, image_grid, plot_curve_panels, plot_curves,
                           reconstruction_grid)
from utils.graph_export import (graph_to_dot, read_graph_json, write_graph_dot,
                                write_graph_json)
from utils.report import markdown_table, write_markdown_table


@pytest.fixture
def graph():
    """Five nodes, node 4 the root, every higher -> lower edge; some kept, some dropped."""
    probs = {(4, 3): 0.97, (4, 2): 0.88, (4, 1): 0.12, (4, 0): 0.55, (3, 2): 0.71,
             (3, 1): 0.93, (3, 0): 0.08, (2, 1): 0.45, (2, 0): 0.99, (1, 0): 0.62}
    return {"nodes": [{"id": i, "dims": 16, "root": i == 4} for i in range(5)],
            "edges": [{"src": s, "dst": d, "prob": p, "kept": p > 0.5}
                      for (s, d), p in probs.items()]}


def _is_blank(image):
    """True when every pixel has the same value."""
    return all(low == high for low, high in ImageStat.Stat(image).extrema)


# ---------------------------------------------------------------------------------------------
# graph_export

def test_graph_json_round_trip(graph, tmp_path):
    path = tmp_path / "sub" / "graph.json"
    write_graph_json(graph, path)
    assert read_graph_json(path) == graph


# A tiny parser for the two kinds of statement graph_to_dot writes.
NODE_RE = re.compile(r'^\s*z(\d+) \[label="z(\d+)\\n(\d+)d", shape=(\w+)\];$')
EDGE_RE = re.compile(r'^\s*z(\d+) -> z(\d+) \[label="([0-9.]+)", style=(\w+), '
                     r'penwidth=([0-9.]+)\];$')


def _parse_dot(text):
    nodes, edges = [], []
    for line in text.splitlines():
        if match := NODE_RE.match(line):
            nodes.append(match.groups())
        elif match := EDGE_RE.match(line):
            edges.append(match.groups())
    return nodes, edges


def test_dot_lists_every_node_and_edge_once_with_its_style(graph):
    text = graph_to_dot(graph)
    assert text.startswith("digraph ") and text.rstrip().endswith("}")
    nodes, edges = _parse_dot(text)

    assert sorted(int(n[0]) for n in nodes) == [n["id"] for n in graph["nodes"]]
    for node_id, label_id, dims, shape in nodes:
        assert node_id == label_id and int(dims) == 16
        assert (shape == "doublecircle") == (node_id == "4")

    assert len(edges) == len(graph["edges"])
    by_pair = {(int(s), int(d)): (label, style, float(pw)) for s, d, label, style, pw in edges}
    assert len(by_pair) == len(edges)  # no edge written twice
    for edge in graph["edges"]:
        label, style, _ = by_pair[(edge["src"], edge["dst"])]
        assert label == f"{edge['prob']:.2f}"
        assert (style == "dashed") == (not edge["kept"])

    # Pen width grows with prob.
    widths = [pw for _, _, pw in sorted(by_pair.values(), key=lambda v: float(v[0]))]
    assert widths == sorted(widths)


def test_dot_file_renders_with_graphviz_when_installed(graph, tmp_path):
    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("Graphviz `dot` is not installed")
    path = tmp_path / "graph.dot"
    write_graph_dot(graph, path)
    result = subprocess.run([dot, "-Tplain", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\nnode ") == len(graph["nodes"])
    assert result.stdout.count("\nedge ") == len(graph["edges"])


def test_write_graph_dot_writes_graph_to_dot(graph, tmp_path):
    path = tmp_path / "graph.dot"
    write_graph_dot(graph, path)
    assert path.read_text() == graph_to_dot(graph)


# ---------------------------------------------------------------------------------------------
# draw_graph

def test_draw_graph_has_requested_size_and_is_not_blank(graph):
    image = draw_graph(graph, size=(320, 240))
    assert isinstance(image, Image.Image)
    assert image.size == (320, 240)
    assert not _is_blank(image)


def test_draw_graph_changes_when_an_edge_is_dropped(graph):
    dropped = copy.deepcopy(graph)
    edge = next(e for e in dropped["edges"] if e["kept"])
    edge["kept"] = False
    before, after = draw_graph(graph), draw_graph(dropped)
    assert ImageChops.difference(before, after).getbbox() is not None


def test_draw_graph_handles_a_single_root():
    image = draw_graph({"nodes": [{"id": 0, "dims": 8, "root": True}], "edges": []},
                       size=(100, 100))
    assert image.size == (100, 100)


# ---------------------------------------------------------------------------------------------
# image grids

@pytest.mark.parametrize("shape", [(10, 1, 28, 28), (10, 28, 28)])
def test_image_grid_size(shape):
    pad, nrow = 2, 4
    image = image_grid(torch.rand(shape), nrow=nrow, pad=pad)
    cols, rows = 4, 3  # 10 images, 4 per row
    assert image.size == (pad + cols * (28 + pad), pad + rows * (28 + pad))
    assert image.mode == "L"


def test_image_grid_keeps_pixel_values():
    images = torch.zeros(1, 1, 4, 4)
    images[0, 0, 1, 2] = 1.0
    image = image_grid(images, nrow=1, pad=1)
    assert image.getpixel((1 + 2, 1 + 1)) == 255
    assert image.getpixel((1 + 0, 1 + 0)) == 0


def test_reconstruction_grid_puts_inputs_above_reconstructions():
    inputs, recons = torch.ones(8, 1, 5, 5), torch.zeros(8, 1, 5, 5)
    pad = 2
    image = reconstruction_grid(inputs, recons, n=6, nrow=3, pad=pad)
    # Six of each on rows of three: two rows of inputs, then two of reconstructions.
    assert image.size == (pad + 3 * (5 + pad), pad + 4 * (5 + pad))
    cell_y = [pad + row * (5 + pad) + 2 for row in range(4)]
    assert [image.getpixel((pad + 2, y)) for y in cell_y] == [255, 255, 0, 0]


def test_reconstruction_grid_aligns_columns_when_rows_are_not_full():
    image = reconstruction_grid(torch.ones(5, 4, 4), torch.ones(5, 4, 4), n=5, nrow=3, pad=0)
    assert image.size == (3 * 4, 4 * 4)
    # Input 4 sits in row 1, column 1; its reconstruction in row 3, column 1.
    assert image.getpixel((4 + 1, 4 + 1)) == 255 and image.getpixel((4 + 1, 12 + 1)) == 255
    # The cells after them are filler.
    assert image.getpixel((8 + 1, 4 + 1)) == 0 and image.getpixel((8 + 1, 12 + 1)) == 0


# ---------------------------------------------------------------------------------------------
# markdown tables

def test_markdown_table_exact_output():
    rows = [{"model": "graph-vae", "nll": 85.1234, "params": 1234567},
            {"model": "vae", "nll": 90.5, "params": 12}]
    expected = ("| model     |   nll |    params |\n"
                "| --------- | ----: | --------: |\n"
                "| graph-vae | 85.12 | 1,234,567 |\n"
                "| vae       | 90.50 |        12 |\n")
    assert markdown_table(rows, ["model", "nll", "params"]) == expected


def test_markdown_table_missing_values_and_formats():
    rows = [{"model": "a", "kl": 1.23456}, {"model": "b", "kl": None}]
    text = markdown_table(rows, ["model", "kl", "nll"], formats={"kl": ".3f"})
    lines = text.splitlines()
    assert lines[2] == "| a     | 1.235 | —   |"
    assert lines[3] == "| b     |     — | —   |"


def test_write_markdown_table(tmp_path):
    path = tmp_path / "results.md"
    rows = [{"model": "a", "nll": 1.0}]
    write_markdown_table(rows, ["model", "nll"], path, title="Results")
    assert path.read_text() == "# Results\n\n" + markdown_table(rows, ["model", "nll"])


# ---------------------------------------------------------------------------------------------
# curve plots

def test_plot_curves_writes_a_png(tmp_path):
    curves = {"graph-vae": [(e, 100 - e) for e in range(10)],
              "vae": [(e, 105 - 0.5 * e) for e in range(10)]}
    path = tmp_path / "plots" / "nelbo.png"
    plot_curves(curves, path, title="validation -ELBO", xlabel="epoch", ylabel="nats")
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert not _is_blank(image.convert("RGB"))


def test_plot_curves_survives_odd_data(tmp_path):
    curves = {"diverged": [(0, 1.0), (1, float("nan")), (2, float("inf"))],
              "constant": [(0, 3.0), (1, 3.0)], "empty": []}
    plot_curves(curves, tmp_path / "odd.png")
    with Image.open(tmp_path / "odd.png") as image:
        assert not _is_blank(image.convert("RGB"))


def test_plot_curve_panels_side_by_side(tmp_path):
    panel = {"curves": {"a": [(0, 0), (1, 1)]}, "title": "t"}
    image = plot_curve_panels([panel, panel], tmp_path / "panels.png", panel_size=(200, 150))
    assert image.size == (400, 150)
    with Image.open(tmp_path / "panels.png") as saved:
        assert saved.size == (400, 150)
