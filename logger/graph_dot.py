"""The learned graph as Graphviz DOT text (for those who have Graphviz; test.py also writes a
picture of its own): the same statuses, colours and labels as the picture."""
from logger.graph_style import EDGE_STYLES, edge_label, edge_status


def graph_to_dot(graph):
    """Every edge, the cross-step ones (recurrent models) from a second row of nodes named
    z<j>(t-1) as their edges are; pen width grows with sigma(alpha), the root is
    double-circled."""
    cross = graph.get("cross_edges", [])
    lines = ["digraph latent_graph {", "  rankdir=TB;"]
    lines += node_lines(graph["nodes"], "", "")
    if cross:
        lines.append("  subgraph step_before { rank=same;")
        lines += node_lines(graph["nodes"], "(t-1)", "\\n(t-1)", indent="    ")
        lines.append("  }")
    lines += [edge_line(edge, f"z{edge['src']}") for edge in graph["edges"]]
    lines += [edge_line(edge, f"z{edge['src']}(t-1)") for edge in cross]
    return "\n".join(lines + ["}"]) + "\n"


def node_lines(nodes, suffix, label_suffix, indent="  "):
    return [f'{indent}"z{node["id"]}{suffix}" [label="z{node["id"]}{label_suffix}\\n'
            f'{node["dims"]}d", shape={"doublecircle" if node["root"] else "circle"}];'
            for node in nodes]


def edge_line(edge, source):
    style = EDGE_STYLES[edge_status(edge)]
    label = edge_label(edge).replace("\n", "\\n")
    return (f'  "{source}" -> "z{edge["dst"]}" [label="{label}", style={style["dot"]}, '
            f'color="{style["color"]}", penwidth={0.5 + 3.5 * float(edge["prob"]):.2f}];')
