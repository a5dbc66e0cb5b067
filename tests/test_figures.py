"""Figures and exports: the graph as a matplotlib figure and as DOT, curves, sequences, and
the statistics and table reproduce.py reports."""
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from logger.figures import (
    curves_figure,
    graph_figure,
    graph_to_dot,
    save_curves,
    save_sequence_figure,
)
from reproduction import report, statistics


@pytest.fixture
def graph():
    """Five nodes, node 4 the root, every higher -> lower edge; some kept, some dropped."""
    probs = {(4, 3): 0.97, (4, 2): 0.88, (4, 1): 0.12, (4, 0): 0.55, (3, 2): 0.71,
             (3, 1): 0.93, (3, 0): 0.08, (2, 1): 0.45, (2, 0): 0.99, (1, 0): 0.62}
    return {"nodes": [{"id": i, "dims": 16, "root": i == 4} for i in range(5)],
            "edges": [{"src": s, "dst": d, "name": f"z{s}->z{d}", "prob": p, "kept": p > 0.5}
                      for (s, d), p in probs.items()], "structure": "learned"}


EDGE_RE = re.compile(r'^\s*z(\d+) -> z(\d+) \[label="([0-9.]+)", style=(\w+), penwidth=([0-9.]+)\];$')


def test_dot_lists_every_edge_once_with_its_style_and_a_width_growing_with_prob(graph):
    text = graph_to_dot(graph)
    edges = [m.groups() for m in map(EDGE_RE.match, text.splitlines()) if m]
    by_pair = {(int(s), int(d)): (float(label), style, float(pw)) for s, d, label, style, pw in edges}
    assert len(by_pair) == len(edges) == len(graph["edges"])
    for edge in graph["edges"]:
        label, style, _ = by_pair[(edge["src"], edge["dst"])]
        assert label == round(edge["prob"], 2) and (style == "dashed") == (not edge["kept"])
    widths = [pw for _, _, pw in sorted(by_pair.values())]
    assert widths == sorted(widths)
    assert text.count("doublecircle") == 1 and text.count("shape=circle") == 4


def test_dot_renders_with_graphviz_when_installed(graph, tmp_path):
    if shutil.which("dot") is None:
        pytest.skip("Graphviz `dot` is not installed")
    path = tmp_path / "graph.dot"
    path.write_text(graph_to_dot(graph))
    result = subprocess.run(["dot", "-Tplain", str(path)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.count("\nedge ") == len(graph["edges"])


def test_the_graph_figure_draws_every_edge_dropped_ones_dashed(graph):
    figure = graph_figure(graph)
    arrows = [a.arrow_patch for a in figure.axes[0].texts if getattr(a, "arrow_patch", None)]
    assert len(arrows) == len(graph["edges"])
    dashed = sum(a.get_linestyle() not in ("-", "solid") for a in arrows)
    assert dashed == sum(not e["kept"] for e in graph["edges"])
    widths = {e["name"]: a.get_linewidth() for e, a in zip(graph["edges"], arrows)}
    assert widths["z2->z0"] > widths["z3->z0"]  # p 0.99 against 0.08


def edge_labels(figure):
    """{edge name: label text} of a graph figure (each label carries its edge's name)."""
    return {t.get_gid(): t.get_text() for t in figure.axes[0].texts if t.get_gid()}


def arrows_of(figure):
    return [a for a in figure.axes[0].texts if getattr(a, "arrow_patch", None)]


def test_every_edge_is_labelled_with_its_probability_and_its_values_when_measured(graph):
    graph["edges"][0].update(value=0.1234, value_at_freeze=-0.5)  # z4->z3
    graph["edges"][1].update(value=-2.0)  # z4->z2: no value at the freeze
    labels = edge_labels(graph_figure(graph))
    assert set(labels) == {e["name"] for e in graph["edges"]}
    for edge in graph["edges"]:
        assert labels[edge["name"]].splitlines()[0] == f"{edge['prob']:.2f}"
    assert labels["z4->z3"].splitlines()[1:] == ["v +0.12", "f -0.50"]
    assert labels["z4->z2"].splitlines()[1:] == ["v -2.00"]
    assert labels["z3->z0"] == "0.08"


def test_undecided_edges_have_a_third_style_and_the_title_names_epoch_and_seed(graph):
    graph["edges"][3]["status"] = "undecided"  # z4->z0, p = 0.55
    figure = graph_figure(graph, epoch=100, seed=2)
    styles = [a.arrow_patch.get_linestyle() for a in arrows_of(figure)]
    kept, dropped = styles[0], styles[2]  # z4->z3 kept, z4->z1 dropped
    assert len({kept, dropped, styles[3]}) == 3
    assert figure.axes[0].get_title() == "learned graph, epoch 100, seed 2"
    assert graph_figure(graph, title="GraphVAE graph").axes[0].get_title() == "GraphVAE graph"


def test_the_recurrent_models_cross_step_edges_are_drawn_from_a_column_for_step_t_minus_1():
    from model import RecurrentGraphVAE
    graph = RecurrentGraphVAE(n_nodes=3, node_dim=2, rnn_hidden=8, hidden=8,
                              feature_dim=4).describe_graph()
    figure = graph_figure(graph)
    names = [e["name"] for e in graph["edges"] + graph["cross_edges"]]
    assert len(names) == 3 + 9 and set(edge_labels(figure)) == set(names)
    starts = [a.xyann for a in arrows_of(figure)]  # where each arrow leaves, in edge order
    assert len(starts) == 12
    assert all(x == 0 for x, _ in starts[:3]) and all(x < 0 for x, _ in starts[3:])
    assert [y for _, y in starts[3:]] == [e["src"] for e in graph["cross_edges"]]


def test_curves_focus_on_where_they_end_and_mark_the_freeze():
    epochs = range(1, 21)
    elbo = {"early outlier": [(e, -295.0 if e == 1 else -232.0 + 0.01 * e) for e in epochs],
            "better": [(e, -231.0 - 10.0 / e) for e in epochs]}
    figure = curves_figure([{"curves": elbo, "freeze_epoch": 10}])
    low, high = figure.axes[0].get_ylim()
    tails = [y for points in elbo.values() for _, y in points[10:]]  # -231.91 ... -231.50
    assert low < min(tails) and high > max(tails) and high - low < 1  # not down to -295
    assert [line.get_xdata()[0] for line in figure.axes[0].lines[2:]] == [10]
    assert curves_figure([{"curves": elbo, "ylim": (0, 1)}]).axes[0].get_ylim() == (0, 1)


def test_twelve_curves_get_twelve_colours():
    curves = {f"z{k}(t-1)->z0": [(1, k / 12), (2, k / 11)] for k in range(12)}
    lines = curves_figure([{"curves": curves}]).axes[0].lines
    assert len(lines) == 12 and len({line.get_color() for line in lines}) == 12


def test_curves_and_sequences_are_written_as_pngs(tmp_path):
    save_curves([{"curves": {"a": [(1, 2.0), (2, 1.0)], "b": [(1, 3.0), (2, float("nan"))]},
                  "title": "t"}, {"curves": {"c": [(1, 1.0)]}}], tmp_path / "curves.png")
    strokes = np.zeros((4, 30, 3), dtype=np.float32)
    strokes[..., 1:] = np.random.default_rng(0).normal(size=(4, 30, 2))
    strokes[:, 10, 0] = 1.0
    save_sequence_figure(strokes, "strokes", tmp_path / "strokes.png")
    save_sequence_figure(np.random.default_rng(0).random((2, 40, 88)) > 0.9, "piano",
                   tmp_path / "rolls.png")
    for name in ("curves", "strokes", "rolls"):
        assert Image.open(tmp_path / f"{name}.png").size[0] > 200


def test_paired_differences_are_per_image_differences_averaged_over_seeds():
    rng = np.random.default_rng(0)
    base = [{"seed": s, "per_example": {"log_likelihood": rng.normal(-240, 80, 500)}} for s in (0, 1)]
    # The other model is 0.5 nats better on every image, plus small per-image noise.
    other = [{"seed": r["seed"], "per_example": {"log_likelihood": r["per_example"]["log_likelihood"]
                                                 + 0.5 + rng.normal(0, 0.1, 500)}} for r in base]
    mean, se_images, se_seeds, per_seed = statistics.paired_difference(other, base)
    diffs = np.mean([o["per_example"]["log_likelihood"] - b["per_example"]["log_likelihood"]
                     for o, b in zip(other, base)], axis=0)
    assert mean == pytest.approx(diffs.mean()) and mean == pytest.approx(0.5, abs=0.02)
    assert se_images == pytest.approx(diffs.std(ddof=1) / np.sqrt(500))
    assert se_images < 0.01  # pairing removes the 80-nat spread between images
    assert len(per_seed) == 2
    assert se_seeds == pytest.approx(abs(per_seed[0] - per_seed[1]) / 2)  # SD/sqrt(2) of two


def test_markdown_table_lines_up():
    table = report.markdown_table([{"Model": "VAE", "log p(x)": "-1.00"},
                                      {"Model": "GraphVAE", "log p(x)": "-0.50 ± 0.10"}])
    lines = table.splitlines()
    assert lines[0].startswith("| Model ") and set(lines[1]) <= {"|", "-", " "}
    assert len({len(line) for line in lines}) == 1
