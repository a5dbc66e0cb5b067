"""What the entry points (train.py, test.py, sample.py, reproduce.py, bench/) share: their
command-line options and how a run's config is read from -c / --resume and the overrides.

Each script asks for the flags it uses (add_flags), so its --help offers nothing it ignores.

Paths are the user's: a checkpoint may come from anywhere, so the config stored in it never
says where anything is written or where data is read. A resumed run writes beside its
checkpoint (utils/run_dirs.save_dir_of), and data comes from --data-dir or the user's -c
config (by default data/).
"""
import copy
import inspect
from dataclasses import dataclass
from pathlib import Path

from data_loader.data_loaders import DATA_LOADERS
from trainer.checkpoint import load_checkpoint
from user_code import import_user_modules
from utils import distributed
from utils.config import (SECTION_DEFAULTS, ConfigParser, TrainerSettings, load_json,
                          run_settings)
from utils.overrides import apply_overrides, holds, parse_assignment
from utils.errors import ConfigError
from utils.help_format import add_overrides, parser as help_parser
from utils.run_dirs import save_dir_of
from utils.settings import path_keys

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
    "-d": "cpu, cuda (a GPU per process), cuda:N or N (one GPU), N,M (one process per GPU); "
          "indices among the visible GPUs (default: the config's n_gpu)",
    "--run-id": "name of a new run's directory (default: date_time)",
    "--set": "override config keys, e.g. --set trainer.epochs=3",
    "--import": "a module of yours to import first (a name, or a .py file; repeatable): it "
                "runs that code, and configs may name what it registers (docs/api.md)",
}


def add_flags(parser, *flags, helps=None):
    """The common options a script uses: -c, -r, -d, --set, --run-id and CONFIG_FLAGS names.
    helps: {flag: text} for what a flag means in this script (e.g. -r: the checkpoint to
    evaluate), replacing the shared text."""
    texts = {**HELPS, **{flag: f"sets {key} (default: the config's, else "
                               f"{declared_default(key)})"
                         for flag, (key, _) in CONFIG_FLAGS.items()}, **(helps or {})}
    for flag in flags:
        if flag == "--set":
            add_overrides(parser, texts[flag])
        elif flag == "--import":
            parser.add_argument("--import", dest="imports", action="append", default=[],
                                metavar="MODULE", help=texts[flag])
        elif flag in CONFIG_FLAGS:
            parser.add_argument(flag, type=CONFIG_FLAGS[flag][1], help=texts[flag])
        else:
            names = [flag] + ([LONG_NAMES[flag]] if flag in LONG_NAMES else [])
            parser.add_argument(*names, help=texts[flag])
    return parser


def declared_default(key):
    """What a CONFIG_FLAGS key is in a config that leaves it out, as its declaration says
    (utils/config.py, the data loaders' signatures), for --help."""
    section, _, name = key.rpartition(".")
    top = inspect.signature(run_settings).parameters
    if section == "trainer":
        return getattr(TrainerSettings, name)
    if section == "optimizer.args":
        return f"{SECTION_DEFAULTS['optimizer'].args[name]} with no optimizer section"
    if section == "data_loader.args":
        signatures = [inspect.signature(DATA_LOADERS[type_]).parameters
                      for type_ in DATA_LOADERS.names()]
        values = {p[name].default for p in signatures if name in p}
        return values.pop() if len(values) == 1 else "the data loader's"
    return "<arch type>_<data set>" if name == "name" else top[name].default


@dataclass(frozen=True)
class Devices:
    """What --device asks for: the CPU, or GPUs; indices among the visible ones (None: a GPU
    per process, by LOCAL_RANK)."""
    text: str
    gpu: bool
    indices: tuple = None

    @property
    def n_gpu(self):
        """The config's n_gpu for this choice."""
        return len(self.indices or (None,)) if self.gpu else 0


DEVICE_FORMS = "cpu, cuda, cuda:N, N or N,M (GPU indices among the visible ones)"


def parse_device(text):
    """--device as users type it (every script takes the same forms): cpu; cuda; cuda:N or N;
    N,M,... Indices count the visible GPUs, so within a scheduler's CUDA_VISIBLE_DEVICES=4,5
    --device 1 is physical GPU 5 (the variable itself is never changed)."""
    spec = text.strip().lower()
    if spec == "cpu":
        return Devices(text, gpu=False)
    if spec == "cuda":
        return Devices(text, gpu=True)
    parts = spec.removeprefix("cuda:").split(",")
    if not all(part.strip().isdigit() for part in parts):
        raise ConfigError(f"--device must be {DEVICE_FORMS}, got '{text}'")
    indices = tuple(int(part) for part in parts)
    if len(set(indices)) < len(indices):
        raise ConfigError(f"--device {text} names a GPU twice; give each GPU once")
    return Devices(text, gpu=True, indices=indices)


def use_devices(text, at_most=None, script="this script"):
    """Parse --device, check that its GPUs exist and make them this process's (see
    utils/distributed.choose_gpus); returns the Devices, or None without the flag.
    at_most: how many GPUs the script can use in one process."""
    distributed.use_all_gpus()
    if text is None:
        return None
    devices = parse_device(text)
    if at_most is not None and len(devices.indices or ()) > at_most:
        raise ConfigError(f"{script} runs in one process, on one device: give one, e.g. "
                          f"--device {devices.indices[0]}")
    if devices.gpu:
        distributed.choose_gpus(devices.indices, text)
    return devices


def load_run_config(args, max_devices=None, script="this script"):
    """(ConfigParser, checkpoint or None) from -c / --resume and the overrides.

    Resuming continues the checkpoint's run: its config is taken from the checkpoint (or from
    -c when given, e.g. to fine-tune), the run directory is the checkpoint's and its logs go
    beside it; the data directory is --data-dir, -c's, or the default, never the checkpoint's.
    --device sets n_gpu (max_devices: how many GPUs the script can use).
    """
    import_user_modules(getattr(args, "imports", []))  # before the config names what they add
    devices = use_devices(getattr(args, "device", None), max_devices, script)
    checkpoint, run_dir = None, None
    resume = getattr(args, "resume", None)
    if resume:
        refuse_new_run_flags(args, Path(resume).parent)
        checkpoint = load_checkpoint(resume)
        run_dir = Path(resume).parent
    if getattr(args, "config", None):
        config = load_json(args.config)
    elif checkpoint is not None:
        config = copy.deepcopy(checkpoint["config"])  # the checkpoint's stays as it was saved
        files = without_paths(config)
    else:
        raise ConfigError("give a config with -c config.json, or a checkpoint with --resume")
    flags = [(flag, key, getattr(args, flag[2:].replace("-", "_"), None))
             for flag, (key, _) in CONFIG_FLAGS.items()]
    config = apply_overrides(config, getattr(args, "set", []),
                             [flag for flag in flags if flag[2] is not None])
    if not getattr(args, "config", None) and checkpoint is not None:
        ask_for_files(config, files)
    if devices is not None:  # --device 0,1: those GPUs; --device cpu: the CPU
        config["n_gpu"] = devices.n_gpu
    if run_dir is not None and isinstance(config, dict) \
            and isinstance(config.setdefault("trainer", {}), dict):
        config["trainer"]["save_dir"] = str(save_dir_of(run_dir))
    parsed = ConfigParser(config, run_dir=run_dir)
    if getattr(args, "run_id", None) and checkpoint is None:
        parsed.name_run(args.run_id)
    return parsed, checkpoint


def refuse_new_run_flags(args, run_dir):
    """--run-id and --save-dir choose a new run's directory: with --resume they would be
    ignored, so they are refused."""
    given = [flag for flag, value in (("--run-id", getattr(args, "run_id", None)),
                                      ("--save-dir", getattr(args, "save_dir", None)))
             if value is not None]
    given += [f"--set {key}" for _, key, value in map(parse_assignment, getattr(args, "set", []))
              if key == "trainer.save_dir" or key == "trainer" and holds(value, "save_dir")]
    if given:
        raise ConfigError(f"{' and '.join(given)} {'choose' if len(given) > 1 else 'chooses'} "
                          f"where a new run goes; a resumed run "
                          f"continues in its checkpoint's directory {run_dir}: leave "
                          f"{'them' if len(given) > 1 else 'it'} out (to continue elsewhere, "
                          f"copy that directory there and resume the copy)")


def without_paths(config):
    """A checkpoint's config without the paths it names (the settings annotated FilePath):
    where a resumed run writes comes from the checkpoint's location, where its data is from the
    user (--data-dir, --set, or the defaults). Returns {key: value} of the files (not folders)
    it named, which the user must name again."""
    if isinstance(config.get("trainer"), dict):
        config["trainer"].pop("save_dir", None)
    section = config.get("data_loader") if isinstance(config.get("data_loader"), dict) else {}
    args = section.get("args") if isinstance(section.get("args"), dict) else {}
    if section.get("type") not in DATA_LOADERS:
        return {}
    parameters = inspect.signature(DATA_LOADERS[section["type"]]).parameters
    files = {}
    for key in path_keys(DATA_LOADERS[section["type"]]):
        value = args.pop(key, None)
        if key != "data_dir" and value is not None and value != parameters[key].default:
            files[key] = value
    return files


def ask_for_files(config, files):
    """Every file the checkpoint's run read its data from is named again by the user."""
    for key, value in files.items():
        if key not in config["data_loader"]["args"]:
            raise ConfigError(f"the checkpoint's run read data_loader.args.{key} {value!r}, and "
                              f"paths are never taken from a checkpoint: name the file with "
                              f"--set data_loader.args.{key}=PATH")
