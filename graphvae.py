"""The Python API: what a notebook or a script of one's own does with graphvae (docs/api.md).

    import graphvae
    run_dir, trainer = graphvae.train({"arch": {"type": "GraphVAE"},
                                       "data_loader": {"type": "ImageDataLoader"}},
                                      **{"trainer.epochs": 1})
    model = graphvae.load(run_dir / "model_best.safetensors")
    images = graphvae.sample(model, 16)
    graph = model.describe_graph()

A config is a dict or a JSON file's path; keyword overrides set dotted keys as --set does
(Python has no dots in keyword names, hence the ** form). The registries are here too, so that
one's own data set or network is one decorator away:

    @graphvae.IMAGE_DATASETS.register()
    def my_images(data_dir, train): ...

The command-line scripts build through the same functions (experiment.py, train.py, test.py).
"""
import copy
from pathlib import Path

import train as training
from data_loader.data_loaders import DATA_LOADERS
from data_loader.image_sets import IMAGE_DATASETS
from experiment import build_loader, build_model, build_trainer, load_model
from model.registry import DECODERS, ENCODERS, LIKELIHOODS, MODELS, STRUCTURES, TOP_DOWN
from test import evaluate_checkpoint
from trainer.checkpoint import load_checkpoint
from utils.config import ConfigParser, load_json
from utils.overrides import set_by_path

__all__ = ["config", "build", "train", "load", "evaluate", "sample", "MODELS", "ENCODERS",
           "DECODERS", "TOP_DOWN", "LIKELIHOODS", "STRUCTURES", "IMAGE_DATASETS",
           "DATA_LOADERS"]


def config(source, **overrides):
    """A checked config (utils/config.ConfigParser) from a dict, a JSON file's path or another
    checked config, with overrides {"dotted.key": value}; a bad key or value raises a
    ConfigError (one line)."""
    if isinstance(source, ConfigParser):
        source = source.config
    raw = copy.deepcopy(source) if isinstance(source, dict) else load_json(source)
    for key, value in overrides.items():
        set_by_path(raw, key, value)
    return ConfigParser(raw)


def build(source, split="train", **overrides):
    """(model, data loader of split) as a run of this config would build them, untrained."""
    run = config(source, **overrides)
    loader = build_loader(run, split)
    return build_model(run, loader.input_dim), loader


def train(source, **overrides):
    """Train the config's run; returns (its run directory, the trainer: trainer.model is the
    trained model)."""
    run = config(source, **overrides)
    trainer = build_trainer(run)
    return Path(training.fit(trainer, run)), trainer


def load(checkpoint_path, device="cpu"):
    """The model of a checkpoint (.safetensors, as training writes them), in evaluation mode."""
    checkpoint = load_checkpoint(checkpoint_path)
    return load_model(ConfigParser(checkpoint["config"]), checkpoint, checkpoint_path, device)


def evaluate(checkpoint_path, n_samples=100, limit=None, edge_values=True, **overrides):
    """test.py's results of a checkpoint (a dict: elbo, log_likelihood, kl_per_node, graph,
    ...) on its test split, or its first `limit` examples; edge_values: each learned edge's
    value on the validation split too (a pass over it per edge); overrides as in config()."""
    checkpoint = load_checkpoint(checkpoint_path)
    run = config(checkpoint["config"], **overrides)
    return evaluate_checkpoint(run, checkpoint, checkpoint_path, n_samples, limit=limit,
                               measure_edges=edge_values)


def sample(model, n):
    """n draws from the model's prior (the discrete graph), as the likelihood's means: images
    as (n, C*H*W) values in [0, 1]."""
    params, _ = model.sample_prior(n)
    return model.likelihood.mean(params)
