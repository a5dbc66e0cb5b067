"""The DAGs of the structure benchmark: every DAG shape on N ordered factors, one labelling
each, and random DAGs for checks outside the benchmark.

A shape is a DAG up to isomorphism (relabelling its nodes). GraphVAE's node order fixes each
edge's direction (parents have higher indices), so a shape is placed in the order by one of
its topological labellings; which one is not a symmetry of the learner (the root's prior is
N(0, I), a node's candidate parents are the nodes above it). The labelling is chosen without
looking at any result: the labelled DAGs are visited in a fixed random order (SHAPE_SEED) and
each shape keeps the first of its labellings met. On 4 factors there are 31 shapes
(OEIS A003087).
"""
import itertools
import random

from model.edge_gates import candidate_edges  # the gates' order: grouped by child

SHAPE_SEED = 0


def canonical_form(edges, n):
    """A key equal for isomorphic DAGs on n nodes: the smallest relabelled edge list."""
    return min(tuple(sorted((p[j], p[i]) for j, i in edges))
               for p in itertools.permutations(range(n)))


def dag_shapes(n, seed=SHAPE_SEED):
    """One labelled DAG per shape on n ordered nodes, [(name, edges)], fewest edges first."""
    labelled = [tuple(e for e, keep in zip(candidate_edges(n), mask) if keep)
                for mask in itertools.product((0, 1), repeat=len(candidate_edges(n)))]
    random.Random(seed).shuffle(labelled)
    shapes = {}
    for edges in labelled:
        shapes.setdefault(canonical_form(edges, n), edges)
    chosen = sorted(shapes.values(), key=lambda e: (len(e), sorted(e, reverse=True)))
    return [(dag_name(edges, n), list(edges)) for edges in chosen]


def random_dags(n, density, count, seed):
    """count DAGs on n ordered nodes, each candidate edge kept with probability density,
    [(name, edges)] (repeats possible), from seed."""
    generator = random.Random(seed)
    dags = []
    for _ in range(count):
        edges = [e for e in candidate_edges(n) if generator.random() < density]
        dags.append((dag_name(edges, n), edges))
    return dags


def dag_name(edges, n):
    """A file-safe name: n, then the edges as parent-child digits ("n4_31-10"; "n4_empty")."""
    body = "-".join(f"{j}{i}" if n <= 10 else f"{j}.{i}" for j, i in sorted(edges, reverse=True))
    return f"n{n}_{body or 'empty'}"


def dag_edges(name):
    """(edges, n) of the DAG that dag_name calls name; a name it does not make is one line."""
    from utils.errors import ConfigError
    head, _, body = name.partition("_")
    try:
        n = int(head[1:]) if head.startswith("n") else 0
        pairs = [] if body == "empty" else [p.split(".") if n > 10 else list(p)
                                            for p in body.split("-")]
        edges = [(int(j), int(i)) for j, i in pairs]
    except ValueError:
        edges = None
    if edges is None or n < 2 or dag_name(edges, n) != name or len(set(edges)) < len(edges) \
            or not all(n > j > i >= 0 for j, i in edges):
        raise ConfigError(f"{name} is not a DAG's name (n<nodes>_<parent><child>-..., parents "
                          f"above their children, e.g. n4_31-10 or n4_empty)")
    return edges, n


def kind_of(edges):
    """What the DAG contains, for reading the table: 'empty', 'one edge', or of chain / fork /
    collider the patterns it has (a chain: a path of two edges; a fork: a node with two
    children; a collider: a node with two parents), else 'disjoint edges'."""
    if not edges:
        return "empty"
    if len(edges) == 1:
        return "one edge"
    children = [sum(1 for j, _ in edges if j == k) for k in {j for j, _ in edges}]
    parents = [sum(1 for _, i in edges if i == k) for k in {i for _, i in edges}]
    kinds = []
    if any(j == i2 for j, _ in edges for _, i2 in edges):
        kinds.append("chain")
    if max(children) > 1:
        kinds.append("fork")
    if max(parents) > 1:
        kinds.append("collider")
    return "+".join(kinds) or "disjoint edges"
