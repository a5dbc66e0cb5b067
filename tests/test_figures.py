"""Figures and exports: the graph as a matplotlib figure and as DOT, curves, sequences, and
the statistics and table reproduce.py reports."""
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from matplotlib.text import Text
from PIL import Image

from logger.curves import curves_figure, save_curves
from logger.figures import log_sequences
from logger.plotting import plt
from logger.graph_dot import graph_to_dot
from logger.graph_figure import graph_figure
from logger.sequences import save_sequence_figure
from model.recurrent_graph_vae import RecurrentGraphVAE
from reproduction import report, statistics


@pytest.fixture
def graph():
    """Five nodes, node 4 the root, every higher -> lower edge; some kept, some dropped."""
    probs = {(4, 3): 0.97, (4, 2): 0.88, (4, 1): 0.12, (4, 0): 0.58, (3, 2): 0.71,
             (3, 1): 0.93, (3, 0): 0.08, (2, 1): 0.40, (2, 0): 0.99, (1, 0): 0.62}
    return {"nodes": [{"id": i, "dims": 16, "root": i == 4} for i in range(5)],
            "edges": [{"src": s, "dst": d, "name": f"z{s}->z{d}", "prob": p, "kept": p > 0.5}
                      for (s, d), p in probs.items()], "structure": "learned"}


DOT_EDGE = re.compile(r'^\s*"(z\d+(?:\(t-1\))?)" -> "(z\d+)" \[label="([^"]*)", '
                      r'style=(\w+), color="([^"]+)", penwidth=([0-9.]+)\];$')


def dot_edges(text):
    """{(source, target): (label, style, colour, pen width)} of every edge line of a DOT text,
    each pair once."""
    edges = [m.groups() for m in map(DOT_EDGE.match, text.splitlines()) if m]
    by_pair = {(s, d): (label, style, colour, float(pw))
               for s, d, label, style, colour, pw in edges}
    assert len(by_pair) == len(edges)
    return by_pair


def test_dot_lists_every_edge_once_with_its_style_and_a_width_growing_with_prob(graph):
    graph["edges"][3]["status"] = "undecided"  # z4->z0, p = 0.58
    text = graph_to_dot(graph)
    by_pair = dot_edges(text)
    assert len(by_pair) == len(graph["edges"])
    for edge in graph["edges"]:
        label, style, _, _ = by_pair[(f"z{edge['src']}", f"z{edge['dst']}")]
        assert label == f"{edge['prob']:.3f}"
        assert style == {"kept": "solid", "dropped": "dashed", "undecided": "dotted"}[
            edge.get("status", "kept" if edge["kept"] else "dropped")]
    assert by_pair[("z4", "z0")][1] == "dotted"  # as the picture draws it
    widths = [pw for _, _, _, pw in sorted(by_pair.values())]
    assert widths == sorted(widths)
    assert text.count("doublecircle") == 1 and text.count("shape=circle") == 4


def test_the_recurrent_models_dot_has_every_edge_the_cross_step_ones_from_step_t_minus_1():
    from model import RecurrentGraphVAE
    graph = RecurrentGraphVAE(n_nodes=3, node_dim=2, rnn_hidden=8, hidden=8,
                              feature_dim=4).describe_graph()
    by_pair = dot_edges(graph_to_dot(graph))
    n = 3
    assert len(by_pair) == n * (n - 1) // 2 + n * n  # within a step, and from t-1 to t
    assert {(s, d) for s, d in by_pair if s.endswith("(t-1)")} == {
        (f"z{j}(t-1)", f"z{i}") for i in range(n) for j in range(n)}
    # gate_init_prob 0.5: nothing is learned yet, every edge is undecided, drawn dotted.
    assert {style for _, style, _, _ in by_pair.values()} == {"dotted"}


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
        assert labels[edge["name"]].splitlines()[0] == f"{edge['prob']:.3f}"
    assert labels["z4->z3"].splitlines()[1:] == ["v +0.12", "f -0.50"]
    assert labels["z4->z2"].splitlines()[1:] == ["v -2.00"]
    assert labels["z3->z0"] == "0.080"


def test_undecided_edges_have_a_third_style_and_the_title_names_epoch_and_seed(graph):
    graph["edges"][3]["status"] = "undecided"  # z4->z0, p = 0.58
    figure = graph_figure(graph, epoch=100, seed=2)
    styles = [a.arrow_patch.get_linestyle() for a in arrows_of(figure)]
    kept, dropped = styles[0], styles[2]  # z4->z3 kept, z4->z1 dropped
    assert len({kept, dropped, styles[3]}) == 3
    assert figure.axes[0].get_title() == "learned graph, epoch 100, seed 2"
    assert graph_figure(graph, title="GraphVAE graph").axes[0].get_title() == "GraphVAE graph"


def test_a_graph_saved_without_statuses_shows_its_undecided_edges_as_undecided(graph):
    """Runs written before edges had a status: the model's rule decides, the same in the
    picture and in DOT."""
    graph["edges"][3].update(prob=0.549, kept=True)  # z4->z0
    graph["edges"][7].update(prob=0.451, kept=False)  # z2->z1
    undecided = {"z4->z0", "z2->z1"}
    styles = {e["name"]: a.arrow_patch.get_linestyle()
              for e, a in zip(graph["edges"], arrows_of(graph_figure(graph)))}
    dotted = {name for name, style in styles.items() if style == styles["z4->z0"]}
    assert dotted == undecided
    dot = dot_edges(graph_to_dot(graph))
    dotted_in_dot = {f"{s}->{d}" for (s, d), (_, style, _, _) in dot.items() if style == "dotted"}
    assert dotted_in_dot == undecided


def legend_of(figure):
    (legend,) = figure.legends
    return legend.get_title().get_text(), [text.get_text() for text in legend.get_texts()]


def test_the_legend_says_what_is_drawn_and_the_undecided_band_of_a_learned_graph(graph):
    title, entries = legend_of(graph_figure(graph))
    assert title == "on each edge: σ(α)"  # no values measured: none promised
    assert entries == ["kept", "dropped", "undecided: |σ(α) − 0.5| < 0.05"]
    graph["edges"][0]["value"] = 0.5
    assert legend_of(graph_figure(graph))[0] == "on each edge: σ(α); v: its value now (nats)"
    fixed = dict(graph, structure="full",
                 edges=[dict(e, prob=1.0, kept=True) for e in graph["edges"]])
    assert legend_of(graph_figure(fixed))[1] == ["kept"]


def test_the_picture_is_readable_and_nothing_of_it_lies_outside_the_canvas(graph):
    """TensorBoard draws the figure's canvas as it is: a legend beyond it would be cut off."""
    for nodes in (2, 4, 5):
        small = dict(graph, nodes=graph["nodes"][-nodes:],
                     edges=[e for e in graph["edges"] if e["dst"] >= 5 - nodes])
        figure = graph_figure(small)
        figure.canvas.draw()
        canvas = figure.bbox
        renderer = figure.canvas.get_renderer()
        texts = [t for t in figure.findobj(Text) if t.get_text()]
        assert min(t.get_fontsize() for t in texts) >= 9
        for artist in [*figure.legends, figure.axes[0].title]:
            box = artist.get_window_extent(renderer)
            assert box.x0 >= canvas.x0 and box.x1 <= canvas.x1 and box.y0 >= canvas.y0, nodes


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


@pytest.mark.parametrize("n", [3, 4])
def test_no_cross_step_label_sits_where_lines_cross(n):
    """A label on a crossing could name either line."""
    from model import RecurrentGraphVAE
    graph = RecurrentGraphVAE(n_nodes=n, node_dim=2, rnn_hidden=8, hidden=8,
                              feature_dim=4).describe_graph()
    figure = graph_figure(graph)
    at = {t.get_gid(): np.array(t.get_position()) for t in figure.axes[0].texts if t.get_gid()}
    arrows = arrows_of(figure)[len(graph["edges"]):]
    lines = [(np.array(a.xyann), np.array(a.xy)) for a in arrows]  # start, end
    for edge, (start, end) in zip(graph["cross_edges"], lines):
        label = at[edge["name"]]
        assert abs(np.cross(end - start, label - start)) < 1e-9  # on its own line
        for other_start, other_end in lines:
            # where the other line crosses this one, if it does between the columns
            d, e = end - start, other_end - other_start
            if abs(np.cross(d, e)) < 1e-12:
                continue
            along = np.cross(other_start - start, e) / np.cross(d, e)
            if 0 < along < 1:
                assert np.linalg.norm(start + along * d - label) > 0.3, edge["name"]


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


def test_twelve_curves_get_twelve_colours_and_a_legend_that_hides_none_of_them():
    curves = {f"z{k}(t-1)->z0": [(1, k / 12), (2, k / 11)] for k in range(12)}
    figure = curves_figure([{"curves": curves}])
    lines = figure.axes[0].lines
    assert len(lines) == 12 and len({line.get_color() for line in lines}) == 12
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legend = figure.axes[0].get_legend().get_window_extent(renderer)
    assert legend.x0 >= figure.axes[0].get_window_extent(renderer).x1  # beside the panel


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


class FigureRecorder:
    """A TensorBoard writer that keeps the figures it is given, by tag."""

    def __init__(self):
        self.figures = {}

    def add_figure(self, tag, figure, step):
        self.figures[tag] = figure


@pytest.mark.parametrize("likelihood, width", [("strokes", 3), ("bernoulli", 88)])
def test_sequence_models_show_their_reconstructions_of_the_validation_sequences(likelihood,
                                                                               width):
    """Pen strokes and piano rolls: a reconstruction panel per validation sequence, as long as
    its valid steps (the padded steps of a shorter one left out)."""
    torch.manual_seed(0)
    model = RecurrentGraphVAE(input_dim=width, n_nodes=2, node_dim=2, rnn_hidden=8, hidden=8,
                              feature_dim=4, likelihood=likelihood).eval()
    x = torch.rand(3, 12, width).round()
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[1, 7:] = False
    writer = FigureRecorder()
    with torch.no_grad():
        log_sequences(writer, model, {"x": x, "mask": mask}, epoch=1)
    assert {"sequences/validation", "sequences/reconstructed", "sequences/generated"} <= \
        set(writer.figures)
    panels = [ax for ax in writer.figures["sequences/reconstructed"].axes if ax.has_data()]
    assert len(panels) == 3
    if likelihood == "bernoulli":  # piano rolls: keys by valid steps, probabilities in [0, 1]
        rolls = [ax.get_images()[0].get_array() for ax in panels]
        assert [roll.shape for roll in rolls] == [(88, 12), (88, 7), (88, 12)]
        assert all(0 <= roll.min() and roll.max() <= 1 for roll in rolls)
    for figure in writer.figures.values():  # TensorBoard's add_figure closes what it is given
        plt.close(figure)
