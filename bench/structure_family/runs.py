"""One run of the structure benchmark: GraphVAE (block decoder) trained on one ground-truth
DAG with one seed up to the graph's freeze, the learned graph, and its results file.

A run is the committed synthetic protocol (configs/graph_vae_synthetic_dag.json: τ annealed
over 20 epochs, the graph frozen after epoch 20, logits at Adam rate 3e-3) with the block
decoder and an arm's settings (ARMS), trained for the epochs before the freeze only: after
the freeze the graph no longer changes, so what the benchmark scores is all there. The seed
sets the run (initial weights, data order, binarization) and the generator of the data
(generator_seed), so that seeds vary the data set as well.

The run trains in <out>/<arm>/<dag>/seed<k>/ (checkpoint-latest.safetensors every epoch: a
killed run resumes from it) and writes <results>/runs/<arm>/<dag>_seed<k>.json when done.
"""
import json
from pathlib import Path

import torch

from bench.common import REPO
from utils.files import write_file

BASE_CONFIG = REPO / "configs" / "graph_vae_synthetic_dag.json"
FREEZE_EPOCH = 20
# The joint learner's settings: an arm is a training of every (DAG, seed).
ARMS = {
    # the paper's objective: no edge cost, nothing chosen
    "paper": {},
    # the committed edge cost, λ = 0.1: chosen on the chain it was scored on (a reference,
    # not a method whose knob was chosen without the answer)
    "cost0.1": {"arch.args.structure_prior": {"edge_penalty": 0.1}},
}


def run_config(arm, name, edges, n_factors, seed, out, dag_settings=None, save_period=10 ** 6):
    """The run's config (a dict) for one (arm, DAG, seed); save_period: keep
    checkpoint-epochK every save_period epochs (by default only the last)."""
    from utils.config import load_json
    from utils.overrides import set_by_path
    config = load_json(BASE_CONFIG)
    config["name"] = f"structure_{arm}_{name}"
    config["seed"] = seed
    config["arch"]["args"].update(decoder="block", n_nodes=n_factors)
    dag = {"true_edges": [list(e) for e in edges], "n_factors": n_factors,
           "generator_seed": seed, **(dag_settings or {})}
    config["arch"]["args"]["node_dim"] = dag.get("factor_dim", 2)
    config["data_loader"]["args"]["dag"] = dag
    config["trainer"].update(epochs=FREEZE_EPOCH, save_dir=str(out), tensorboard=False,
                             early_stop=0, save_period=save_period, verbosity=1, monitor="off")
    for key, value in ARMS[arm].items():
        set_by_path(config, key, value)
    return config


def run_dir(out, arm, name, seed):
    return Path(out) / arm / name / f"seed{seed}"


def results_path(results, arm, name, seed):
    return Path(results) / "runs" / arm / f"{name}_seed{seed}.json"


def train_run(config, directory):
    """Train (or resume) the run in directory to its last epoch; returns its checkpoint."""
    import train
    from trainer.checkpoint import load_checkpoint
    from utils.config import ConfigParser
    from utils.errors import UserError
    latest = directory / "checkpoint-latest.safetensors"
    checkpoint = load_checkpoint(latest) if latest.is_file() else None
    epochs = config["trainer"]["epochs"]
    if checkpoint is None or checkpoint["epoch"] < epochs or checkpoint["batches_done"]:
        train.train(ConfigParser(config, run_dir=directory), checkpoint,
                    latest if checkpoint else None, reuse_dir=True)
        checkpoint = load_checkpoint(latest)
        if checkpoint["epoch"] < epochs:  # stopped on request
            raise UserError(f"{directory} stopped at epoch {checkpoint['epoch']}; run the "
                            f"benchmark again to resume it")
    return checkpoint


def checkpoint_config(checkpoint, directory):
    """The checked config of a run's checkpoint without the paths it names (cli.without_paths:
    paths come from the user, never from a checkpoint), for the run in directory."""
    import copy

    from cli import without_paths
    from utils.config import ConfigParser
    config = copy.deepcopy(checkpoint["config"])
    without_paths(config)
    return ConfigParser(config, run_dir=directory)


def record_of(config, checkpoint, arm, name, edges, seed):
    """The results file's contents: what was run, the learned graph and its history."""
    from data_loader.synthetic_dag import SyntheticDAG
    spec = SyntheticDAG.of(config["data_loader"]["args"]["dag"])
    history = checkpoint["history"]
    keep = ("epoch", "val_loss", "val_kl", "val_recon", "val_kl_per_node", "tau", "edge_probs",
            "edge_values", "seconds", "structure_cost")
    return {"arm": arm, "dag": name, "true_edges": spec.true_dag(), "seed": seed,
            "n_factors": spec.n_factors, "overrides": ARMS[arm],
            "information": {k: v[0] for k, v in spec.edge_information().items()},
            "epochs": checkpoint["epoch"], "seconds": sum(h["seconds"] for h in history),
            "edge_probs": history[-1]["edge_probs"],
            "edge_values": history[-1].get("edge_values", {}),
            "history": [{k: h[k] for k in keep if k in h} for h in history]}


def run_one(arm, name, edges, n_factors, seed, out, results, retrain=False,
            dag_settings=None, save_period=10 ** 6):
    """Train and record one (arm, DAG, seed) unless its results file exists (retrain: train
    it again from the start). Returns the results file's path."""
    path = results_path(results, arm, name, seed)
    directory = run_dir(out, arm, name, seed)
    if retrain:
        path.unlink(missing_ok=True)
        for old in directory.glob("*.safetensors"):
            old.unlink()
    if path.is_file():
        return path
    torch.set_num_threads(1)
    config = run_config(arm, name, edges, n_factors, seed, out, dag_settings, save_period)
    checkpoint = train_run(config, directory)
    record = record_of(config, checkpoint, arm, name, edges, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, json.dumps(record, indent=1))  # whole or absent: a file means done
    return path
