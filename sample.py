"""Draw from a trained model: python sample.py --resume checkpoint -n 64 --out samples.png

Images: samples come from the prior with the discrete graph (ancestral sampling, root first)
and are shown as Bernoulli means. Sequences (RecurrentGraphVAE): --length steps are
generated; pen strokes are drawn as lines, piano rolls as key-by-time images.
--traverse K shows what node K controls: every row keeps one draw of all other nodes fixed
and the columns resample node K from its prior given its (fixed) parents; --traverse all
writes one such image per node.
"""
import sys
from pathlib import Path

import torch

from utils.build import build_model
from utils.checkpoint import restore_model
from utils.cli import base_parser, load_run_config, run_cli
from data_loader.image_datasets import square_image_shape
from data_loader.sequence_datasets import PIANO_KEYS
from utils.drawing import image_grid
from utils.sequence_drawing import piano_rolls_grid, strokes_grid
from utils.errors import ConfigError


def parse_args(argv):
    parser = base_parser(__doc__)
    parser.add_argument("-n", "--n-samples", type=int, default=64, help="samples to draw")
    parser.add_argument("--out", default="samples.png", help="PNG file to write")
    parser.add_argument("--traverse", help="node index, or 'all': vary one node, fix the others")
    parser.add_argument("--rows", type=int, default=8, help="traversal rows (fixed draws)")
    parser.add_argument("--steps", type=int, default=10, help="traversal columns")
    parser.add_argument("--length", type=int, default=100, help="steps of generated sequences")
    return parser.parse_args(argv)


def as_images(x_params):
    """Bernoulli means as (n, 1, side, side) images (e.g. 28 x 28)."""
    return torch.sigmoid(x_params).view(-1, *square_image_shape(x_params.shape[-1]))


@torch.no_grad()
def traversal(model, node, rows, steps):
    """(rows*steps) images: row r fixes every node but `node` to draw r; columns resample it."""
    _, base = model.sample_prior(rows)
    fixed = base.repeat_interleave(steps, dim=0)
    overrides = {i: fixed[:, i] for i in range(model.n_nodes) if i != node}
    x_params, _ = model.sample_prior(rows * steps, node_overrides=overrides)
    return as_images(x_params)


def input_dim(config, checkpoint):
    """The data width the model was built for, as its checkpoint records it; checkpoints
    written before that was recorded: 28x28 images, or a sequence loader's width."""
    if "input_dim" in checkpoint:
        return checkpoint["input_dim"]
    kind = config["data_loader"]["type"]
    return {"StrokesDataLoader": 3, "PianoRollDataLoader": PIANO_KEYS}.get(kind, 28 * 28)


def write_sequences(model, config, n, length, out):
    sequences = model.generate(n, length).cpu().numpy()
    if config["data_loader"]["type"] == "StrokesDataLoader":
        strokes_grid(sequences, ncol=int(n ** 0.5) or 1).save(out)
    else:
        piano_rolls_grid(sequences).save(out)
    print(f"{n} generated sequences of {length} steps written to {out}")


def parse_nodes(text, n_nodes):
    if text == "all":
        return list(range(n_nodes))
    if not text.isdigit() or int(text) >= n_nodes:
        raise ConfigError(f"--traverse must be 'all' or a node index in 0..{n_nodes - 1}")
    return [int(text)]


def main(argv=None):
    args = parse_args(argv)
    if not args.resume:
        raise ConfigError("give the checkpoint to sample from with --resume")
    if min(args.n_samples, args.rows, args.steps) <= 0:
        raise ConfigError("-n, --rows and --steps must be positive")
    config, checkpoint = load_run_config(args)
    torch.manual_seed(config["seed"])
    model = build_model(config, input_dim(config, checkpoint))
    restore_model(model, checkpoint, args.resume)
    model.eval()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "generate"):
        return write_sequences(model, config, args.n_samples, args.length, out)
    if args.traverse is None:
        x_params, _ = model.sample_prior(args.n_samples)
        image_grid(as_images(x_params), nrow=int(args.n_samples ** 0.5)).save(out)
        print(f"{args.n_samples} samples written to {out}")
        return
    for node in parse_nodes(args.traverse, model.n_nodes):
        path = out if args.traverse != "all" else out.with_name(f"{out.stem}_z{node}{out.suffix}")
        image_grid(traversal(model, node, args.rows, args.steps), nrow=args.steps).save(path)
        print(f"node z{node}: {args.rows} rows x {args.steps} draws written to {path}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
