"""Command-line options shared by the entry points, and their one-line error reporting."""
import argparse
import os
import sys
from pathlib import Path

from utils.checkpoint import load_checkpoint
from utils.config import ConfigParser, apply_overrides, load_json, set_by_path
from utils.errors import ConfigError, UserError

# Short flags for the keys people change most; any key can be set with --set.
SHORT_FLAGS = {
    "--lr": ("optimizer.args.lr", float),
    "--bs": ("data_loader.args.batch_size", int),
    "--epochs": ("trainer.epochs", int),
    "--seed": ("seed", int),
    "--name": ("name", str),
    "--data-dir": ("data_loader.args.data_dir", str),
    "--save-dir": ("trainer.save_dir", str),
}


def base_parser(description):
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", help="config file (JSON)")
    parser.add_argument("-r", "--resume", help="checkpoint to resume from / evaluate")
    parser.add_argument("-d", "--device",
                        help="GPUs to use, e.g. 0,1 (CUDA_VISIBLE_DEVICES; several start one "
                             "DDP worker each), or cpu")
    parser.add_argument("--run-id", help="name of a new run's directory (default: date_time)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config keys, e.g. --set trainer.epochs=3 arch.args.n_nodes=4")
    for flag, (key, kind) in SHORT_FLAGS.items():
        parser.add_argument(flag, type=kind, help=f"sets {key}")
    return parser


def load_run_config(args):
    """(ConfigParser, checkpoint or None) from -c / --resume and the overrides.

    Resuming continues the checkpoint's run: its config is taken from the checkpoint (or from
    -c when given, e.g. to fine-tune) and the run directory is the checkpoint's.
    """
    if args.device is not None and args.device.lower() != "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = args.device
    checkpoint, run_dir = None, None
    if args.resume:
        checkpoint = load_checkpoint(args.resume)
        run_dir = Path(args.resume).parent
    if args.config:
        config = load_json(args.config)
    elif checkpoint is not None:
        config = checkpoint["config"]
    else:
        raise ConfigError("give a config with -c config.json, or a checkpoint with --resume")
    for flag, (key, _) in SHORT_FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            set_by_path(config, key, value)
    config = apply_overrides(config, args.set)
    if args.device is not None and args.device.lower() != "cpu":
        config["n_gpu"] = len(args.device.split(","))  # --device 0,1 means: use those GPUs
    parsed = ConfigParser(config, run_dir=run_dir)
    if args.run_id and checkpoint is None:
        parsed.name_run(args.run_id)
    return parsed, checkpoint


def run_cli(main):
    """Run main(); a UserError becomes one line on stderr and exit status 2."""
    try:
        return main() or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
