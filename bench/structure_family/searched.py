"""The graph search (trainer/graph_search.py) on a benchmark run's checkpoint at the freeze,
and its results file: <results>/search/<arm>/<dag>_seed<k>.json. It trains no GraphVAE: it
reads the run's checkpoint-latest.safetensors (the end of the epochs before the freeze)."""
import json
from pathlib import Path

import torch

from bench.structure_family.runs import checkpoint_config, run_dir
from trainer.graph_search import EDGE_COST
from utils.files import write_file


def search_path(results, arm, name, seed):
    return Path(results) / "search" / arm / f"{name}_seed{seed}.json"


def search_run(arm, name, seed, out, results, redo=False, edge_cost=EDGE_COST):
    """Search the graph of one trained run unless its search file exists; returns the path
    (None when the run has not finished training)."""
    from experiment import build_loader, load_model
    from trainer.graph_search import search_graph
    from trainer.checkpoint import load_checkpoint
    path = search_path(results, arm, name, seed)
    if path.is_file() and not redo:
        return path
    directory = run_dir(out, arm, name, seed)
    latest = directory / "checkpoint-latest.safetensors"
    if not latest.is_file():
        return None
    checkpoint = load_checkpoint(latest)
    if checkpoint["epoch"] < checkpoint["config"]["trainer"]["epochs"]:
        return None
    torch.set_num_threads(1)
    torch.manual_seed(checkpoint["config"]["seed"])
    config = checkpoint_config(checkpoint, directory)
    device = torch.device("cpu")
    model = load_model(config, checkpoint, latest, device)
    found = search_graph(model, build_loader(config, "train"), build_loader(config, "valid"),
                         device, edge_cost)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, json.dumps({"arm": arm, "dag": name, "seed": seed, **found}, indent=1))
    return path
