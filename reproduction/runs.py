"""The runs of the table: which models and configs, one (model or sweep value, seed) run
trained, evaluated and written as a results file, and reading those files back.

A run whose results file exists with the same settings is never trained again, so the table
can be rebuilt from committed results on a machine without any checkpoint; an unfinished run
resumes from its checkpoint. Each run is a job of its own (launcher/).
"""
import io
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.files import write_file

REPO = Path(__file__).resolve().parents[1]
IMAGE_MODELS = {  # key: (display name, base config)
    "vae": ("VAE", "configs/vae_fashion_mnist.json"),
    "ladder_vae": ("Ladder VAE", "configs/ladder_vae_fashion_mnist.json"),
    "fc_vae": ("FC-VAE", "configs/fc_vae_fashion_mnist.json"),
    "noisy_full": ("Gate-noise control", "configs/noisy_full_vae_fashion_mnist.json"),
    "graph_vae": ("GraphVAE", "config.json"),
    # GraphVAE with the edge cost λ chosen on validation by docs/structure.md's rule
    "sparse_graph_vae": ("Sparse GraphVAE", "configs/sparse_graph_vae_fashion_mnist.json"),
    "graph_lstm_vae": ("GraphLSTMVAE", "configs/graph_lstm_vae_fashion_mnist.json"),
}
SEQUENCE_MODELS = {
    "vrnn": ("VRNN", "configs/vrnn_{dataset}.json"),
    "recurrent_graph_vae": ("RecurrentGraphVAE", "configs/recurrent_graph_vae_{dataset}.json"),
}
MODELS = {**IMAGE_MODELS, **SEQUENCE_MODELS}
IMAGE_DATASETS = ("fashion_mnist", "mnist", "omniglot", "cifar10", "synthetic_dag")
SEQUENCE_DATASETS = ("strokes", "piano")
# CIFAR-10 (docs/method.md §6): its own configs (input 3x32x32, the Gaussian likelihood on 8-bit
# pixels, the VAE's encoder widened for that input).
CIFAR10_CONFIGS = {"vae": "configs/vae_cifar10.json",
                   "ladder_vae": "configs/ladder_vae_cifar10.json",
                   "fc_vae": "configs/fc_vae_cifar10.json",
                   "noisy_full": "configs/noisy_full_vae_cifar10.json",
                   "graph_vae": "configs/graph_vae_cifar10.json"}
# The synthetic ground-truth DAG (data_loader/synthetic_dag.py): GraphVAE sized for its 4
# factors of 2 dims and 16 x 16 images.
SYNTHETIC_CONFIGS = {"graph_vae": "configs/graph_vae_synthetic_dag.json"}
DEFAULT_MODELS = {"image": ["vae", "ladder_vae", "fc_vae", "noisy_full", "graph_vae"],
                  "sequence": ["vrnn", "recurrent_graph_vae"]}
REFERENCES = ("graph_vae", "recurrent_graph_vae")  # paired differences are taken against it


@dataclass(frozen=True)
class Variant:
    """A model with the overrides of one combination of --sweep values."""
    model: str
    values: tuple = ()  # ((config key, value text), ...)

    @property
    def key(self):
        """The run's file name stem: the model, then each swept key's last part and value."""
        return "-".join([self.model] + [f"{k.rsplit('.', 1)[-1]}_{v}" for k, v in self.values])

    @property
    def name(self):
        label = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in self.values)
        return MODELS[self.model][0] + (f" ({label})" if label else "")

    @property
    def overrides(self):
        return [f"{k}={v}" for k, v in self.values]


def variants(models, sweeps):
    """Every model with every combination of the --sweep values, in the order given."""
    from utils.errors import ConfigError
    axes = []
    for sweep in sweeps:
        key, sep, values = sweep.partition("=")
        if not sep or not key or not values:
            raise ConfigError(f"--sweep '{sweep}' must look like key.path=value1,value2")
        axes.append([(key, value) for value in values.split(",")])
    return [Variant(model, combination) for model in models
            for combination in itertools.product(*axes)]


def settings_of(args, variant=None):
    """What makes two runs comparable: a results file is reused only with the same settings
    (a variant's swept values count as overrides)."""
    extra = variant.overrides if variant else []
    return {"dataset": args.dataset, "epochs": args.epochs, "samples": args.samples,
            "test_limit": args.test_limit, "overrides": sorted(args.set + extra),
            "validation_only": args.validation_only}


def as_variant(run):
    return run if isinstance(run, Variant) else Variant(run)


def model_config(run, seed, args):
    from utils.config import load_json
    from utils.overrides import apply_overrides
    variant = as_variant(run)
    name, path = MODELS[variant.model]
    path = {"cifar10": CIFAR10_CONFIGS, "synthetic_dag": SYNTHETIC_CONFIGS}.get(
        args.dataset, {}).get(variant.model, path)
    config = load_json(REPO / path.format(dataset=args.dataset))
    config["name"] = f"{name.replace(' ', '').replace('-', '')}_{args.dataset}" \
        + variant.key[len(variant.model):]
    config["seed"] = seed
    if args.dataset in IMAGE_DATASETS:
        config.setdefault("data_loader", {}).setdefault("args", {})["dataset"] = args.dataset
    config.setdefault("trainer", {}).update(early_stop=0, tensorboard=False)
    flags = [("--epochs", "trainer.epochs", args.epochs), ("--out", "trainer.save_dir", args.out)]
    return apply_overrides(config, args.set + variant.overrides, flags)


def run_one(run, seed, args, threads):
    """Train (or resume) and evaluate one (model or variant, seed); write its results file.
    Runs in a job of its own (launcher/run.py)."""
    import torch

    import test as test_script
    import train
    from trainer.checkpoint import load_checkpoint
    from utils.config import ConfigParser
    from utils.errors import UserError

    torch.set_num_threads(threads)
    variant = as_variant(run)
    key = variant.key
    config = model_config(variant, seed, args)
    if args.device is not None and args.device.strip().lower() == "cpu":
        config["n_gpu"] = 0  # not a setting of the run: the results file does not record it
    run_dir = Path(args.out) / "models" / config["name"] / f"seed{seed}"
    latest = run_dir / "checkpoint-latest.safetensors"
    checkpoint = load_checkpoint(latest) if latest.is_file() else None
    parsed = ConfigParser(config, run_dir=run_dir)
    if not finished(checkpoint, args.epochs):
        print(f"[{key} seed {seed}] {'resuming' if checkpoint else 'training'}", flush=True)
        train.train(parsed, checkpoint, latest if checkpoint else None, reuse_dir=True)
        checkpoint = load_checkpoint(latest)
        if not finished(checkpoint, args.epochs):  # stopped (Ctrl-C, SIGTERM): no results
            raise UserError(f"{key} seed {seed} stopped at epoch {checkpoint['epoch']}; run "
                            f"reproduce.py again to resume it")
    history = checkpoint["history"]
    record = {"model": key, "seed": seed, "settings": settings_of(args, variant),
              "epochs": checkpoint["epoch"], "seconds": sum(h["seconds"] for h in history),
              "history": [{k: v for k, v in h.items() if not k.startswith("kl_per")}
                          for h in history]}
    per_example = {}
    if not args.validation_only:
        results = test_script.evaluate_checkpoint(parsed, checkpoint, latest, args.samples,
                                                  limit=args.test_limit)
        per_example = results.pop("per_example")
        record["test"] = results
    write_run(Path(args.results), key, seed, record, per_example)
    print(f"[{key} seed {seed}] done", flush=True)


def finished(checkpoint, epochs):
    """Whether a run's latest checkpoint ends its whole budget."""
    return checkpoint is not None and checkpoint["epoch"] >= epochs \
        and not checkpoint["batches_done"]


def run_key(key, seed):
    """A run's name: its results file's stem, its job's name."""
    return f"{key}_seed{seed}"


def run_path(results_dir, key, seed):
    return results_dir / "runs" / f"{run_key(key, seed)}.json"


def write_run(results_dir, key, seed, record, per_example):
    """The results file of a finished run (and its per-example values), each written whole."""
    path = run_path(results_dir, key, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if per_example:
        arrays = io.BytesIO()
        np.savez_compressed(arrays, **{k: np.asarray(v, dtype=np.float32)
                                       for k, v in per_example.items()})
        write_file(path.with_suffix(".npz"), arrays.getvalue())
    write_file(path, json.dumps(record, indent=1))


def read_run(results_dir, key, seed, settings):
    """A finished run's record (and per-example arrays), or None if it has not finished."""
    from utils.config import parse_json
    from utils.errors import ConfigError
    path = run_path(results_dir, key, seed)
    if not path.is_file():
        return None
    damaged = (f"{path} is not a whole results file of reproduce.py ({{}}); delete it (and "
               f"{path.with_suffix('.npz').name} beside it) to train and evaluate that run again")
    try:
        record = parse_json(path.read_text(encoding="utf-8"), str(path))
    except (ConfigError, OSError, UnicodeDecodeError) as e:
        raise ConfigError(damaged.format(str(e).split(": ", 1)[-1][:80])) from None
    problem = record_problem(record, settings)
    if problem:
        raise ConfigError(damaged.format(problem))
    if record["settings"] != settings or record["epochs"] != settings["epochs"]:
        raise ConfigError(f"{path} was made with other settings ({record['settings']}); "
                          f"choose another --results directory")
    npz = path.with_suffix(".npz")
    if npz.is_file():
        try:
            with np.load(npz, allow_pickle=False) as arrays:
                record["per_example"] = {k: arrays[k] for k in arrays.files}
        except (ValueError, OSError, EOFError, KeyError) as e:
            raise ConfigError(f"{npz} is not a whole per-image results file "
                              f"({type(e).__name__}); delete it and {path.name} to train "
                              f"and evaluate that run again") from None
    return record


def record_problem(record, settings):
    """What a results record lacks for the tables, or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    needed = {"settings": dict, "epochs": int, "seconds": (int, float), "history": list}
    if not settings["validation_only"]:
        needed["test"] = dict
    for key, kind in needed.items():
        if not isinstance(record.get(key), kind):
            return f"no '{key}'"
    if not record["history"] or not all(isinstance(h, dict) for h in record["history"]):
        return "an empty or damaged 'history'"
    return None


# -- statistics ------------------------------------------------------------------------------


def check_configs(variants_in_order, args):
    """Every run's config (--set, --sweep values included) passes the config checks before
    any run trains."""
    from utils.config import ConfigParser
    for variant in variants_in_order:
        for seed in args.seeds:
            ConfigParser(model_config(variant, seed, args))
