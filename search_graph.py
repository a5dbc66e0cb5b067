"""Choose a jointly trained GraphVAE's graph by a search over graphs, then train on it:

    python search_graph.py --resume saved/models/<run>/checkpoint-epoch20.safetensors
    python train.py --resume saved/models/<run>/checkpoint-epoch20-searched.safetensors

scores every graph in the node order by its importance-weighted validation bound L_K with its
prior networks refitted, less --edge-cost nats per image per edge (docs/method.md §7,
trainer/graph_search.py), and writes beside the checkpoint <stem>-search.json (the graph, each
edge's refitted value ± its standard error, the bound) and <stem>-searched.safetensors: the
checkpoint with its gates set to the chosen graph. Take a checkpoint from before the graph's freeze
(gate_schedule.freeze_epoch): resumed, the run then freezes to the chosen graph at its next
epoch and trains its networks on it; from a frozen checkpoint the chosen graph replaces the
frozen one at once.
"""
import sys

if __name__ == "__main__":  # before the slow imports: a Ctrl-C at any moment is one line
    from utils.signals import exit_on_interrupt
    exit_on_interrupt()

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from cli import add_flags, load_run_config, parser  # noqa: E402
from experiment import build_loader, load_model, prepare_device  # noqa: E402
from trainer.graph_search import EDGE_COST, SAMPLES, search_graph  # noqa: E402
from trainer.checkpoint import save_checkpoint  # noqa: E402
from utils.errors import ConfigError, run_cli, writing  # noqa: E402
from utils.files import write_file  # noqa: E402

GRAPH_LOGIT = 10.0  # a chosen edge's logit (sigmoid 0.99995), a dropped one's is its negative


def parse_args(argv):
    args = add_flags(parser(__doc__), "-r", "-d", "--set", "--data-dir",
                     helps={"-r": "checkpoint of a GraphVAE with a learned graph"})
    args.add_argument("--edge-cost", type=float, default=EDGE_COST,
                      help="the cost of an edge, nats per image, in the graph's score")
    args.add_argument("-k", "--samples", type=int, default=SAMPLES,
                      help="posterior samples per image of the bound L_K")
    return args.parse_args(argv)


def impose_graph(checkpoint, graph):
    """The checkpoint with its gate logits set to the graph (one 0/1 per candidate edge):
    +GRAPH_LOGIT for a kept edge, -GRAPH_LOGIT for a dropped one."""
    logits = torch.tensor(graph) * 2 * GRAPH_LOGIT - GRAPH_LOGIT
    weights = dict(checkpoint["model"])
    weights["gates.logits"] = logits.to(weights["gates.logits"].dtype)
    return {**checkpoint, "model": weights}


def main(argv=None):
    args = parse_args(argv)
    if not args.resume:
        raise ConfigError("give the checkpoint to search with --resume")
    if args.edge_cost < 0 or args.samples < 1:
        raise ConfigError("--edge-cost must be >= 0 and -k >= 1")
    config, checkpoint = load_run_config(args, max_devices=1, script="search_graph.py")
    if "gates.logits" not in checkpoint["model"] or checkpoint["arch"] not in (
            "GraphVAE", "GraphLSTMVAE"):
        raise ConfigError(f"{args.resume} holds no GraphVAE with a learned graph "
                          f"(arch.args.structure 'learned'): there is no graph to search")
    torch.manual_seed(config["seed"])
    device = prepare_device(config)
    model = load_model(config, checkpoint, args.resume, device)
    found = search_graph(model, build_loader(config, "train").to(device),
                         build_loader(config, "valid").to(device), device, args.edge_cost,
                         args.samples)
    stem = Path(args.resume).with_suffix("")
    report, searched = Path(f"{stem}-search.json"), Path(f"{stem}-searched.safetensors")
    with writing(report, "search a copy of the checkpoint in a writable folder"):
        write_file(report, json.dumps(found, indent=2))
    save_checkpoint(impose_graph(checkpoint, found["graph"]), searched)
    print(f"kept {len(found['kept'])} of {len(found['graph'])} edges: "
          f"{', '.join(found['kept']) or 'none'}")
    for name, value in found["refitted_values"].items():
        print(f"  {name:12s} refitted value {value:+.3f} ± {found['refitted_se'][name]:.3f}")
    print(f"Written: {report} and {searched}; continue training on the chosen graph with\n"
          f"    python train.py --resume {searched}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
