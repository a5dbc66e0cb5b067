"""A run's config: a JSON file and command-line overrides, checked before anything runs.

The top level and the trainer section are declared here (run_settings, TrainerSettings): each
key's type, range and default in one place (utils/settings.py checks them). The sections that
name what to build ({"type": ..., "args": {...}}) are checked by what builds them, against the
signature of the registered class they name (experiment.py). A config names registered things
only, never code to import; anything wrong is one ConfigError naming the key.
"""
import copy
import inspect
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from utils import run_dirs
from utils.bounds import MAX_EPOCHS
from utils.errors import ConfigError
from utils.files import not_a_file
from utils.settings import FilePath, check_args, shorten

MAX_CONFIG_BYTES = 1_000_000  # a config is a few kilobytes of JSON
SEED = "[0, 9223372036854775807]"  # 0 .. 2**63 - 1: what torch's generators take
VERBOSITY = (0, 1, 2)  # logger/logger.py: warnings, info, debug
# torch.compile's modes; "reduce-overhead" replays the compiled step as CUDA graphs on a GPU.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
NAME_MAX = 255  # bytes in one file name, on every common file system
FOLDER_NAME = ("one folder name (no '/', '\\', '..', control characters or leading '~'; at "
               "most 255 bytes)")
Count = Annotated[int, "[1, inf)"]
NonNegative = Annotated[int, "[0, inf)"]
SplitSeed = Annotated[int, SEED]  # a data split's seed


@dataclass(frozen=True)
class Section:
    """What to build: a registered (or torch.optim) name and its arguments."""
    type: str
    args: dict | None = None


@dataclass(frozen=True)
class TrainerSettings:
    """config: trainer. docs/training.md says what each key does."""
    epochs: Annotated[int, f"[1, {MAX_EPOCHS}]"] = 100
    save_dir: FilePath = "saved/"
    save_period: Count = 10
    verbosity: Literal[VERBOSITY] = 2
    monitor: str = "min val_loss"  # "min <metric>", "max <metric>" or "off"
    early_stop: NonNegative = 0
    tensorboard: bool = True
    mlflow: bool = False  # also log to MLflow, <save_dir>/mlruns (the package is optional)
    deterministic: bool = False
    checkpoint_every_steps: Count | None = None
    max_nonfinite_steps: Count = 10
    tbptt_steps: Count | None = None
    kl_warmup_epochs: NonNegative = 10  # chosen on validation (docs/results/fashion_mnist_protocol)
    free_bits: Annotated[float, "[0, inf)"] = 0.0
    amp: bool = False
    log_every_steps: Count = 50  # TensorBoard: training loss, gradient norm
    sync_batchnorm: bool = True
    compile: bool | Literal["auto"] = "auto"  # "auto": if the run repays it (trainer/compiling.py)
    compile_mode: Literal[COMPILE_MODES] | None = None  # implies compile
    edge_values: bool = True  # each learned edge's value at the freeze and the end

    def __post_init__(self):
        mode, _, metric = self.monitor.partition(" ")
        if self.monitor != "off" and (mode not in ("min", "max") or not metric):
            raise ValueError(f"monitor must be 'off' or 'min|max <metric>', got {self.monitor!r}")


def run_settings(name: str | None = None,  # null: <arch type>_<data set> (ConfigParser.name_after)
                 *, arch: Section, data_loader: Section,
                 # null: a GPU per process if one is visible (saved: the number used)
                 n_gpu: NonNegative | None = None,
                 seed: Annotated[int, SEED] = 0,
                 optimizer: Section = Section("Adam", {"lr": 3e-4}),
                 # The structure logits' own optimiser, e.g. {"type": "SGD", "args": {"lr": 1}};
                 # null: `optimizer` trains them (at arch.args.gate_schedule.lr if given).
                 structure_optimizer: Section | None = None,
                 lr_scheduler: Section | None = None,
                 trainer: TrainerSettings | None = None):
    """The top level of a config (a declaration: utils/settings.py reads its signature)."""


SECTION_DEFAULTS = {name: p.default for name, p in
                    inspect.signature(run_settings).parameters.items()
                    if isinstance(p.default, Section)}


def validate(config):
    """The config with the top level and the trainer checked and every default filled in."""
    if not isinstance(config, dict):
        raise ConfigError("the config must be a JSON object")
    filled = check_args(run_settings, config, "")
    for key, section in filled.items():
        if isinstance(section, Section):
            filled[key] = {"type": section.type, "args": dict(section.args or {})}
        elif isinstance(section, dict) and set(section) <= {"type", "args"}:
            section["args"] = section.get("args") or {}
    if filled["name"] is not None and not is_folder_name(filled["name"]):
        raise ConfigError(f"'name' must be {FOLDER_NAME}, got {shorten(filled['name'])}")
    return copy.deepcopy(filled)


def is_folder_name(name):
    """Whether name is one path component that every file system and shell takes as it is:
    a run's directory can never leave save_dir, and its name is what was typed."""
    return (name not in ("", ".", "..") and not any(c in name for c in "/\\")
            and name.isprintable() and not name.startswith("~")
            and len(name.encode("utf-8", "surrogatepass")) <= NAME_MAX)


def load_json(path):
    path = Path(path)
    if why := not_a_file(path, "config file"):
        raise ConfigError(f"{why} (pass a config file with -c)")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is larger than any config ({MAX_CONFIG_BYTES:,} bytes at "
                          f"most); a config is small, plain JSON")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text (byte {e.start}); save it as UTF-8 "
                          f"JSON") from None
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from None
    return parse_json(text, str(path))


def parse_json(text, where):
    """JSON text as plain data, each object's keys given once and no NaN or infinity; otherwise
    a ConfigError naming `where` (a file, or a --set value)."""
    def refuse(constant):
        raise ConfigError(f"{where} holds {constant}; a setting is a finite number")
    try:
        return json.loads(text, object_pairs_hook=unique_keys, parse_constant=refuse)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where} is not valid JSON: {e.msg} at line {e.lineno}, "
                          f"column {e.colno}") from None
    except DuplicateKey as e:
        raise ConfigError(f"{where} gives the key '{e}' twice in one object; keep "
                          f"one") from None
    except RecursionError:
        raise ConfigError(f"{where} nests too deep; a config is a few levels of "
                          f"objects") from None
    except ValueError:  # Python refuses to parse integers of over 4300 digits
        raise ConfigError(f"{where} holds an integer of thousands of digits; a config is "
                          f"small, plain JSON") from None


class DuplicateKey(ValueError):
    pass


def unique_keys(pairs):
    """json's object_pairs_hook: an object whose keys are all different (JSON itself would
    keep the last of a repeated key and drop the others without a word)."""
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise DuplicateKey(key)
        obj[key] = value
    return obj


class ConfigParser:
    """The checked config plus where the run writes (models/ and log/ under save_dir)."""

    def __init__(self, config, run_dir=None):
        self.config, self.run_dir = validate(config), run_dir
        save_dir = Path(self.config["trainer"]["save_dir"])
        if run_dir is None:
            run_id = datetime.now().strftime("%m%d_%H%M%S")
            name = self.config["name"] or self.config["arch"]["type"]  # until name_after
            self.save_dir = save_dir / "models" / name / run_id
            self.log_dir = save_dir / "log" / name / run_id
        else:  # an existing run's directory (a resume): its logs lie beside it
            self.save_dir, self.log_dir = Path(run_dir), run_dirs.log_dir_of(run_dir)
        self.exact_run_id = False  # a run id the user chose is never replaced by another

    def name_run(self, run_id):
        """Use run_id instead of the date and time; an existing run is never reused."""
        if not is_folder_name(run_id):
            raise ConfigError(f"--run-id must be {FOLDER_NAME}, got {run_id!r}")
        self.save_dir = self.save_dir.with_name(run_id)
        self.log_dir = self.log_dir.with_name(run_id)
        self.exact_run_id = True
        for path in (self.save_dir, self.log_dir):
            if path.exists():
                raise run_dirs.exists_error(path)

    def name_after(self, data_name):
        """A new run whose config names none is named <arch type>_<data set> (data_name: the
        data loader's, e.g. fashion_mnist or the stem of the user's file), and filed so."""
        if self.config["name"] is not None:
            return
        name = f"{self.config['arch']['type']}_{data_name}"
        self.config["name"] = name if is_folder_name(name) else self.config["arch"]["type"]
        if self.run_dir is None:
            self.save_dir, self.log_dir = (path.parent.parent / self.config["name"] / path.name
                                           for path in (self.save_dir, self.log_dir))
            if self.exact_run_id:
                self.name_run(self.save_dir.name)

    def __getitem__(self, key):
        return self.config[key]
