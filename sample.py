"""Draw from a trained model: python sample.py --resume checkpoint -n 64 [--out samples.png]

Without --out the figure goes beside the checkpoint: <checkpoint stem>-samples.png, and
<checkpoint stem>-traversal-z<k>.png for a traversal of node k.

Images: samples come from the prior with the discrete graph (ancestral sampling, root first)
and are shown as the likelihood's means. Sequences (RecurrentGraphVAE): --sequence-length
steps are generated; pen strokes are drawn as lines, piano rolls as key-by-time images.
--traverse K shows what node K controls: every row (--rows) keeps one draw of all other
nodes fixed and the --traversal-steps columns resample node K from its prior given its
(fixed) parents; --traverse all writes one such image per node. A traversal's title names
the model, its checkpoint and the node; its labels say what the rows and columns are.
"""
import sys

if __name__ == "__main__":  # before the slow imports: a Ctrl-C at any moment is one line
    from utils.signals import exit_on_interrupt
    exit_on_interrupt()

from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from cli import add_flags, load_run_config, parser  # noqa: E402
from data_loader.image_datasets import square_image_shape  # noqa: E402
from experiment import load_model, prepare_device  # noqa: E402
from logger.figures import save_images, traversal_figure  # noqa: E402
from logger.plotting import save_figure  # noqa: E402
from logger.sequences import save_sequence_figure, sequence_kind  # noqa: E402
from utils.errors import ConfigError, run_cli, writing  # noqa: E402

IMAGE_SUFFIXES = (".png", ".jpg")
MAX_IMAGES = 10_000  # images in one figure: a 100 x 100 grid
MAX_SEQUENCES = 400  # generated sequences in one figure, each a plot of its own
MAX_LENGTH = 10_000  # steps of a generated sequence (generated one after another)
# Flags that apply to some models only: None when not given (a given flag that does not apply
# is refused, not ignored), then these.
DEFAULTS = {"rows": 8, "traversal_steps": 10, "sequence_length": 100}
OUT_FIX = "choose a writable --out path"


def parse_args(argv):
    args = add_flags(parser(__doc__), "-r", "-d", "--seed", "--import", helps={
        "-r": "checkpoint to sample from",
        "-d": "cpu, cuda, cuda:N or N: the one device to sample on (default: the "
              "checkpoint's n_gpu)",
        "--seed": "seed of the random draws (default: the checkpoint's run seed)"})
    args.add_argument("-n", "--n-samples", type=int, default=64,
                      help="samples (images or sequences) to draw")
    args.add_argument("--out",
                      help="PNG or JPEG file to write (--traverse all: one per node, "
                           "<name>_z<k>.png; default: beside the checkpoint, "
                           "<stem>-samples.png or <stem>-traversal-z<k>.png)")
    args.add_argument("--traverse",
                      help="node index, or 'all': vary that node, fix the others (images; "
                           "default: samples from the prior)")
    args.add_argument("--rows", type=int, help=f"traversal rows: draws of the other nodes, each "
                                               f"kept along its row (default {DEFAULTS['rows']})")
    args.add_argument("--traversal-steps", type=int,
                      help=f"traversal columns: draws of the traversed node per row (default "
                           f"{DEFAULTS['traversal_steps']})")
    args.add_argument("--sequence-length", type=int,
                      help=f"steps of each generated sequence (sequence models; default "
                           f"{DEFAULTS['sequence_length']})")
    args = args.parse_args(argv)
    args.given = {name for name in DEFAULTS if getattr(args, name) is not None}
    for name, value in DEFAULTS.items():
        setattr(args, name, value if name not in args.given else getattr(args, name))
    return args


def check_flags_apply(args, model):
    """A flag that does not apply to this model (it would be ignored) is one line."""
    sequences = hasattr(model, "generate")
    given = {"--traverse": args.traverse is not None,
             **{f"--{name.replace('_', '-')}": name in args.given for name in DEFAULTS}}
    for flag in (["--traverse", "--rows", "--traversal-steps"] if sequences
                 else ["--sequence-length"]):
        if given[flag]:
            raise ConfigError(f"{flag} does not apply to {type(model).__name__}, "
                              f"{'a sequence' if sequences else 'an image'} model: leave it out")
    for flag in ("--rows", "--traversal-steps"):
        if given[flag] and not given["--traverse"]:
            raise ConfigError(f"{flag} shapes a traversal: give --traverse too, or leave it "
                              f"out")


def image_shape_of(checkpoint):
    """(C, H, W) of the images the checkpoint's model was trained on, as the checkpoint records
    it (older checkpoints: a square grey image of its input width)."""
    shape = checkpoint.get("image_shape")
    return tuple(shape) if shape else square_image_shape(checkpoint["input_dim"])


def as_images(model, x_params, shape):
    """The likelihood's means as (n, C, H, W) images, e.g. (n, 3, 32, 32) for CIFAR-10."""
    return model.likelihood.mean(x_params).view(-1, *shape)


def out_path(args, node=None):
    """Where the figure goes (node: the node of a traversal): --out, or beside the checkpoint
    with a name that says what it holds."""
    if args.out is None:
        checkpoint = Path(args.resume)
        what = "samples" if node is None else f"traversal-z{node}"
        return checkpoint.with_name(f"{checkpoint.stem}-{what}.png")
    out = Path(args.out)
    return out if node is None or args.traverse != "all" else \
        out.with_name(f"{out.stem}_z{node}{out.suffix}")


@torch.no_grad()
def traversal(model, node, rows, steps, shape):
    """(rows*steps) images: row r fixes every node but `node` to draw r; columns resample it."""
    _, base = model.sample_prior(rows)
    fixed = base.repeat_interleave(steps, dim=0)
    overrides = {i: fixed[:, i] for i in range(model.n_nodes) if i != node}
    x_params, _ = model.sample_prior(rows * steps, node_overrides=overrides)
    return as_images(model, x_params, shape)


def check_counts(args):
    """What is drawn fits in memory and in one figure: bounded before anything is drawn."""
    traversal = args.rows * args.traversal_steps
    for what, count, limit in (("-n", args.n_samples, MAX_IMAGES),
                               ("--rows x --traversal-steps", traversal, MAX_IMAGES),
                               ("--sequence-length", args.sequence_length, MAX_LENGTH)):
        if count > limit:
            raise ConfigError(f"{what} asks for {count:,}, more than the {limit:,} one "
                              f"figure holds; draw fewer (run sample.py more than once "
                              f"for more)")


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
    if min(args.n_samples, args.rows, args.traversal_steps, args.sequence_length) <= 0:
        raise ConfigError("-n, --rows, --traversal-steps and --sequence-length must be positive")
    check_counts(args)
    if args.out is not None and Path(args.out).suffix.lower() not in IMAGE_SUFFIXES:
        raise ConfigError(f"--out must name a {' or '.join(IMAGE_SUFFIXES)} file, got "
                          f"{args.out}")
    config, checkpoint = load_run_config(args, max_devices=1, script="sample.py")
    torch.manual_seed(config["seed"])
    model = load_model(config, checkpoint, args.resume, prepare_device(config))
    check_flags_apply(args, model)
    if hasattr(model, "generate") and args.n_samples > MAX_SEQUENCES:
        raise ConfigError(f"-n asks for {args.n_samples:,} sequences, more than the "
                          f"{MAX_SEQUENCES} one figure holds; draw fewer")
    out = out_path(args)
    with writing(out, OUT_FIX):
        out.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "generate"):
        sequences = model.generate(args.n_samples, args.sequence_length).cpu().numpy()
        with writing(out, OUT_FIX):
            save_sequence_figure(sequences, sequence_kind(model), out)
        print(f"{args.n_samples} generated sequences of {args.sequence_length} steps written to "
              f"{out}")
        return
    shape = image_shape_of(checkpoint)
    if args.traverse is None:
        x_params, _ = model.sample_prior(args.n_samples)
        with writing(out, OUT_FIX):
            save_images(as_images(model, x_params, shape), out, nrow=int(args.n_samples ** 0.5))
        print(f"{args.n_samples} samples written to {out}")
        return
    edges = model.describe_graph()["edges"]
    title = f"{checkpoint['arch']} ({Path(args.resume).name}, epoch {checkpoint['epoch']})"
    for node in parse_nodes(args.traverse, model.n_nodes):
        path = out_path(args, node)
        parents = [edge["src"] for edge in edges if edge["dst"] == node and edge["kept"]]
        images = traversal(model, node, args.rows, args.traversal_steps, shape)
        with writing(path, OUT_FIX):
            save_figure(traversal_figure(images, node, parents, args.traversal_steps, title),
                        path)
        print(f"node z{node}: {args.rows} rows x {args.traversal_steps} draws written to {path}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
