"""The configurable ground truth (data_loader/synthetic_dag.py): any DAG in the node order,
each edge carrying the information it states, one-line errors for a DAG it cannot be."""
import json
import re

import pytest
import torch

import train
from data_loader.synthetic_dag import SyntheticDAG, mechanism
from tests.conftest import write_config
from trainer.checkpoint import load_checkpoint
from utils.errors import ConfigError, run_cli

COLLIDER = [[3, 0], [1, 0]]
TRIANGLE = [[3, 2], [3, 1], [2, 1]]  # z1's parents are correlated (z3 -> z2)


def factors_of(true_edges, **settings):
    spec = SyntheticDAG(true_edges=true_edges, train_size=40000, **settings)
    return spec, spec.images(train=True)[1].double()


def residual_log_variance(z, child, parents, features=lambda v: v):
    """log det of the covariance of z_child's least-squares residual on features of the
    parents (with a constant): log det Cov(child | parents) for Gaussian factors."""
    columns = [torch.ones(len(z), 1, dtype=z.dtype)] + [features(z[:, j]) for j in parents]
    design, target = torch.cat(columns, dim=1), z[:, child]
    residual = target - design @ torch.linalg.lstsq(design, target).solution
    return torch.logdet(residual.T.cov()).item()


@pytest.mark.parametrize("true_edges", [COLLIDER, TRIANGLE])
def test_each_true_edge_carries_the_information_it_states(true_edges):
    spec, z = factors_of(true_edges)
    assert torch.allclose(z.flatten(1).var(0), torch.ones(8, dtype=z.dtype), atol=0.03)
    for (j, i), (name, (nats, exact)) in zip(spec.true_edges, spec.edge_information().items()):
        others = [p for p in spec.parents(i) if p != j]
        measured = 0.5 * (residual_log_variance(z, i, others)
                          - residual_log_variance(z, i, others + [j]))
        assert exact and name == f"z{j}->z{i}"
        assert measured == pytest.approx(nats, abs=0.03) and nats > 0.8


def test_a_colliders_child_depends_on_both_parents_under_either_mechanism():
    for kind in ("linear", "swirl"):
        spec, z = factors_of(COLLIDER, mechanism=kind)
        features = lambda v: mechanism(kind, v)  # noqa: E731
        both = residual_log_variance(z, 0, [3, 1], features)
        for alone in ([3], [1]):  # leaving either parent out leaves z0 less explained
            assert residual_log_variance(z, 0, alone, features) - both > 1.5
        # Given its parents, z0 is what the stated strength leaves: (1 - rho^2) I.
        assert both == pytest.approx(2 * torch.log(torch.tensor(1 - 0.81)).item(), abs=0.05)
        # Independent of z2, which is no parent.
        assert residual_log_variance(z, 0, [3, 1, 2], features) == pytest.approx(both, abs=0.01)


def test_the_swirl_is_nonlinear_and_keeps_the_parents_law():
    spec, z = factors_of([[1, 0]], mechanism="swirl")
    linear = residual_log_variance(z, 0, [1])
    swirled = residual_log_variance(z, 0, [1], lambda v: mechanism("swirl", v))
    assert linear - swirled > 1.0  # a linear fit of the parent misses most of the edge
    z1 = z[:, 1].float()
    assert torch.allclose(mechanism("swirl", z1).norm(dim=1), z1.norm(dim=1), atol=1e-5)


def synthetic_run_config(tmp_path, dag):
    config = json.loads(open("configs/graph_vae_synthetic_dag.json").read())
    config["arch"]["args"].update(encoder_hidden=[16], feature_dim=8, bottom_up_hidden=8,
                                  top_down_hidden=8, decoder_hidden=[8], decoder="block")
    config["data_loader"]["args"].update(subset=200, validation_size=100, batch_size=100,
                                         dag=dag)
    config["trainer"] = {"epochs": 1, "save_dir": str(tmp_path / "saved")}
    return config


@pytest.mark.parametrize("dag, message", [
    ({"true_edges": [[0, 1]]}, "z0 -> z1 goes against the node order"),
    ({"true_edges": [[2, 1], [1, 0], [0, 2]]}, "not a DAG: it has the cycle z2 -> z1 -> z0 -> z2"),
    ({"true_edges": [[4, 0]]}, r"\[4, 0\] names a factor outside 0..3"),
    ({"true_edges": [[1, 0], [1, 0]]}, "given twice"),
    ({"true_edges": [3, 1]}, "list of \\[parent, child\\] pairs"),
    ({"true_edges": [], "strength": 1}, "dag.strength' must be in \\(0, 1\\)"),
    ({"true_edges": [], "mechanism": "swirl", "factor_dim": 3}, "even factor_dim"),
    ({"edges": []}, "dag.edges'; did you mean 'true_edges'"),
    ({"n_factors": 5}, "missing key 'data_loader.args.dag.true_edges'"),
])
def test_a_dag_it_cannot_be_is_one_line(tmp_path, capsys, dag, message):
    path = write_config(tmp_path, synthetic_run_config(tmp_path, dag))
    assert run_cli(lambda: train.main(["-c", str(path)])) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert "data_loader.args.dag" in err and re.search(message, err)


def test_a_configured_dag_trains_with_its_own_image_layout(tmp_path):
    dag = {"true_edges": COLLIDER, "n_factors": 5, "block_rows": 2, "width": 8,
           "train_size": 300, "test_size": 10}
    config = synthetic_run_config(tmp_path, dag)
    config["arch"]["args"]["n_nodes"] = 5
    assert run_cli(lambda: train.main(["-c", str(write_config(tmp_path, config))])) == 0
    run = next((tmp_path / "saved" / "models").glob("*/*"))
    checkpoint = load_checkpoint(run / "checkpoint-latest.safetensors")
    assert checkpoint["image_shape"] == [1, 10, 8] and checkpoint["input_dim"] == 80
    with pytest.raises(ConfigError, match="data set .fashion_mnist. takes no dag"):
        from data_loader.image_loader import ImageDataLoader
        ImageDataLoader(dataset="fashion_mnist", dag={})
