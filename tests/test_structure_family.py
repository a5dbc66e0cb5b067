"""The structure benchmark's DAGs and its honest scoring (bench/structure_family)."""
import itertools

from bench.structure_family import shapes
from reproduction import statistics


def test_every_dag_shape_appears_once_in_the_node_order():
    for n, count in ((2, 2), (3, 6), (4, 31)):
        dags = shapes.dag_shapes(n)
        assert len(dags) == count  # unlabelled DAGs on n nodes (OEIS A003087)
        forms = {shapes.canonical_form(edges, n) for _, edges in dags}
        assert len(forms) == count
        assert all(j > i for _, edges in dags for j, i in edges)
        labelled = [tuple(e for e, keep in zip(shapes.candidate_edges(n), mask) if keep)
                    for mask in itertools.product((0, 1), repeat=n * (n - 1) // 2)]
        assert {shapes.canonical_form(e, n) for e in labelled} == forms
    assert shapes.dag_shapes(4) == shapes.dag_shapes(4)  # the same labelling every time


def test_an_undecided_edge_is_neither_kept_nor_recovered():
    probs = {"z3->z1": 0.97, "z1->z0": 0.52, "z3->z0": 0.46, "z2->z0": 0.1}
    kept, undecided = statistics.joint_graph(probs)
    assert kept == {"z3->z1"} and undecided == {"z1->z0", "z3->z0"}
    score = statistics.recovery(kept, ["z3->z1", "z1->z0"], undecided)
    assert score == {"precision": 1.0, "recall": 0.5, "shd": 1, "undecided": 2, "exact": False}
    clean = statistics.recovery({"z3->z1", "z1->z0"}, ["z3->z1", "z1->z0"])
    assert clean["exact"] and clean["shd"] == 0
    assert statistics.recovery(set(), [])["exact"]
    assert statistics.recovery({"z1->z0"}, [])["precision"] == 0.0
