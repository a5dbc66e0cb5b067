"""The structure benchmark's DAGs, its honest scoring and its diagnosis' runs
(bench/structure_family)."""
import itertools
import json

from bench.structure_family import diagnosis, runs, shapes
from reproduction import statistics
from trainer import graph_search


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


def test_the_diagnosis_trains_its_runs_with_the_checkpoints_it_reads(tmp_path, monkeypatch):
    config = json.loads(runs.BASE_CONFIG.read_text())
    config["arch"]["args"].update(encoder_hidden=[16], feature_dim=8, bottom_up_hidden=8,
                                  top_down_hidden=8, decoder_hidden=[8],
                                  gate_schedule={"anneal_epochs": 3, "freeze_epoch": 3})
    config["data_loader"]["args"].update(subset=200, validation_size=100, batch_size=100)
    (tmp_path / "base.json").write_text(json.dumps(config))
    monkeypatch.setattr(runs, "BASE_CONFIG", tmp_path / "base.json")
    monkeypatch.setattr(runs, "FREEZE_EPOCH", 3)
    monkeypatch.setattr(diagnosis, "GRADIENT_EPOCHS", (1, 2))
    monkeypatch.setattr(graph_search, "FIT_IMAGES", 100)
    monkeypatch.setattr(graph_search, "EPOCHS", 2)
    out, results = tmp_path / "out", tmp_path / "results"
    directory = runs.run_dir(out, "paper", "n3_21-10", 0)
    read = {diagnosis.epoch_checkpoint(directory, e) for e in (1, 2, 3)}
    search = diagnosis.train_diagnosed("paper", "n3_21-10", 0, out, results)
    assert all(path.is_file() for path in read)
    assert json.loads(search.read_text())["dag"] == "n3_21-10"
    # A run trained without them (as the benchmark trains) is trained again, its search redone.
    for path in read:
        path.unlink()
    search.write_text("stale")
    assert diagnosis.train_diagnosed("paper", "n3_21-10", 0, out, results) == search
    assert all(path.is_file() for path in read) and search.read_text() != "stale"
    done = runs.results_path(results, "paper", "n3_21-10", 0).read_bytes()
    diagnosis.train_diagnosed("paper", "n3_21-10", 0, out, results)  # complete: nothing redone
    assert runs.results_path(results, "paper", "n3_21-10", 0).read_bytes() == done


def test_the_tables_of_a_dags_subset_are_of_those_dags_only(tmp_path, capsys):
    """A check on chosen DAGs (--dags) is complete when those DAGs are, not partial against
    every shape of the benchmark."""
    from bench.structure_family.__main__ import main
    main(["--tables-only", "--dags", "n4_32", "n4_empty", "--seeds", "0", "1",
          "--results", str(tmp_path)])
    table = capsys.readouterr().out
    assert "2 DAG shapes on 4 ordered factors (--dags)" in table
    assert "0 of the 4 (DAG, seed) runs" in table and "seed 1: 0 of 2" in table
