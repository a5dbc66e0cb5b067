"""What the entry points (train.py, test.py, sample.py, reproduce.py, bench/) share: their
command-line options and how a run's config is read from -c / --resume and the overrides.

Each script asks for the flags it uses (add_flags), so its --help offers nothing it ignores.
"""
import copy
import os
from pathlib import Path

from utils.checkpoint import load_checkpoint
from utils.config import ConfigParser, apply_overrides, load_json, set_by_path
from utils.errors import ConfigError
from utils.help_format import parser as help_parser

# Flags that set a config key; any key can be set with --set.
CONFIG_FLAGS = {
    "--lr": ("optimizer.args.lr", float),
    "--bs": ("data_loader.args.batch_size", int),
    "--epochs": ("trainer.epochs", int),
    "--seed": ("seed", int),
    "--name": ("name", str),
    "--data-dir": ("data_loader.args.data_dir", str),
    "--save-dir": ("trainer.save_dir", str),
}


def parser(description):
    """A script's parser: --help shows its docstring as written and every flag's default."""
    return help_parser(description)


LONG_NAMES = {"-c": "--config", "-r": "--resume", "-d": "--device"}
HELPS = {
    "-c": "config file (JSON)",
    "-r": "checkpoint to read",
    "-d": "'cpu', or the GPUs to use, e.g. 0 or 0,1 (sets CUDA_VISIBLE_DEVICES; default: the "
          "config's n_gpu)",
    "--run-id": "name of a new run's directory (default: date_time)",
    "--set": "override config keys, e.g. --set trainer.epochs=3",
}


def add_flags(parser, *flags, helps=None):
    """The common options a script uses: -c, -r, -d, --set, --run-id and CONFIG_FLAGS names.
    helps: {flag: text} for what a flag means in this script (e.g. -r: the checkpoint to
    evaluate), replacing the shared text."""
    texts = {**HELPS, **{flag: f"sets {key} (default: the config's)"
                         for flag, (key, _) in CONFIG_FLAGS.items()}, **(helps or {})}
    for flag in flags:
        if flag == "--set":
            parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                                help=texts[flag])
        elif flag in CONFIG_FLAGS:
            parser.add_argument(flag, type=CONFIG_FLAGS[flag][1], help=texts[flag])
        else:
            names = [flag] + ([LONG_NAMES[flag]] if flag in LONG_NAMES else [])
            parser.add_argument(*names, help=texts[flag])
    return parser


def load_run_config(args):
    """(ConfigParser, checkpoint or None) from -c / --resume and the overrides.

    Resuming continues the checkpoint's run: its config is taken from the checkpoint (or from
    -c when given, e.g. to fine-tune) and the run directory is the checkpoint's.
    """
    device = getattr(args, "device", None)
    if device is not None and device.lower() != "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    checkpoint, run_dir = None, None
    resume = getattr(args, "resume", None)
    if resume:
        checkpoint = load_checkpoint(resume)
        run_dir = Path(resume).parent
    if getattr(args, "config", None):
        config = load_json(args.config)
    elif checkpoint is not None:
        config = copy.deepcopy(checkpoint["config"])  # the checkpoint's stays as it was saved
    else:
        raise ConfigError("give a config with -c config.json, or a checkpoint with --resume")
    for flag, (key, _) in CONFIG_FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"), None)
        if value is not None:
            set_by_path(config, key, value)
    config = apply_overrides(config, getattr(args, "set", []))
    if device is not None:  # --device 0,1: those GPUs; --device cpu: the CPU
        config["n_gpu"] = 0 if device.lower() == "cpu" else len(device.split(","))
    parsed = ConfigParser(config, run_dir=run_dir)
    if getattr(args, "run_id", None) and checkpoint is None:
        parsed.name_run(args.run_id)
    return parsed, checkpoint
