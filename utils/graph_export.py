"""Save the learned latent graph as JSON (to reload) and as Graphviz DOT (to render).

The graph is the plain dict the model produces:
    {"nodes": [{"id": 0, "dims": 16, "root": False}, ...],
     "edges": [{"src": 4, "dst": 0, "prob": 0.93, "kept": True}, ...]}
Only the standard library is used, so these files can be written anywhere, even without torch.
"""
import json
from pathlib import Path

# Edge widths in points for prob = 0 and prob = 1; the range keeps weak edges visible.
_MIN_PENWIDTH = 0.5
_MAX_PENWIDTH = 4.0


def write_graph_json(graph, path):
    """Write `graph` as indented JSON; parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(graph, f, indent=2)
        f.write("\n")


def read_graph_json(path):
    """Read a graph written by write_graph_json."""
    with open(path) as f:
        return json.load(f)


def _node_line(node):
    # The root gets a double border: it is the only node without parents.
    shape = "doublecircle" if node.get("root") else "circle"
    label = f"z{node['id']}\\n{node['dims']}d"
    return f'  z{node["id"]} [label="{label}", shape={shape}];'


def _edge_line(edge):
    prob = float(edge["prob"])
    penwidth = _MIN_PENWIDTH + (_MAX_PENWIDTH - _MIN_PENWIDTH) * prob
    style = "solid" if edge["kept"] else "dashed"
    return (f'  z{edge["src"]} -> z{edge["dst"]} '
            f'[label="{prob:.2f}", style={style}, penwidth={penwidth:.2f}];')


def graph_to_dot(graph):
    """Return Graphviz DOT text: nodes "z<id>" labelled with their dims, edges with their prob.

    Dropped edges (kept=False) are dashed; the pen width grows with prob.
    """
    lines = ["digraph latent_graph {",
             "  rankdir=TB;",
             "  node [fontname=Helvetica];",
             "  edge [fontname=Helvetica, fontsize=10];"]
    lines += [_node_line(node) for node in graph["nodes"]]
    lines += [_edge_line(edge) for edge in graph["edges"]]
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_graph_dot(graph, path):
    """Write graph_to_dot(graph) to `path`; render with e.g. `dot -Tpng graph.dot -o graph.png`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(graph_to_dot(graph))
