"""Building a run from a config: the one place that turns a validated config into data loaders,
a model, an optimiser and a trainer. train.py, test.py, sample.py, reproduce.py and every
bench script build through here.
"""
import logging
import os
from contextlib import contextmanager

import torch

from data_loader.data_loaders import DATA_LOADERS, PROGRAM_SET
from logger.mlflow_writer import require_mlflow
from model.likelihoods import likelihoods_for
from model.registry import MODELS
from trainer import Trainer
from trainer.epoch_log import logged_metrics
from trainer.fits import Misfit, check_model
from utils import distributed, ranks
from utils.errors import CheckpointError, ConfigError
from utils.factories import check_torch_sections, init_torch
from utils.model_size import check_model_size
from utils.settings import check_args

# cuBLAS is deterministic only with a fixed workspace, which ATen reads from the environment
# once, at a process's first GPU matmul: set here, when the entry points and the API are
# imported (before any GPU work), not when a deterministic run is built, which may come after
# an earlier run's matmuls (a notebook, pytest). ":4096:8" (32 MiB) is the workspace torch
# gives cuBLAS by itself on Hopper GPUs (and about 8 MiB on earlier ones).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

# Optimizers whose single-kernel (fused) implementation is used unless the config chooses
# (optimizer.args.fused / foreach): the for-loop form runs a dozen small kernels per parameter
# tensor, which dominates the optimiser's time on this model (docs/performance.md).
FUSED_BY_DEFAULT = ("Adam", "AdamW")


def seed_everything(config):
    """The run's seed drives initialisation and every random draw of training (gates,
    reparameterisation); with several processes each rank draws its own noise from it."""
    rank = ranks.world()[0]
    torch.manual_seed(config["seed"] + 1_000_003 * rank)
    # Either way: the setting is the process's, and a run built after a deterministic one
    # must not inherit it.
    torch.use_deterministic_algorithms(config["trainer"]["deterministic"])


def prepare_device(config):
    """This process's device from the config's n_gpu (utils/distributed.uses_gpu), made the
    current one on a GPU (evaluation and sampling run in one process)."""
    device = distributed.local_device(distributed.uses_gpu(config["n_gpu"]))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def check_processes(config):
    """n_gpu > 1 needs one process per GPU: a single process would train on one of them."""
    n_gpu = config["n_gpu"]
    if n_gpu and n_gpu > 1 and not distributed.launched_by_torchrun():
        devices = ",".join(str(i) for i in range(n_gpu))
        raise ConfigError(f"n_gpu is {n_gpu}, but this is one process, which trains on one GPU; "
                          f"start one per GPU with python train.py --device {devices} (or "
                          f"torchrun --nproc_per_node={n_gpu} train.py ...), or set n_gpu 1")


def build(config, section, registry, program_set, **given):
    """What config[section] names, from its registry, its args checked against the
    constructor's signature and filled in (the run's saved config then states every setting
    it ran with); a relation between settings that the constructor refuses is one line."""
    cfg = config[section]
    if cfg["type"] not in registry:
        raise ConfigError(f"unknown {section}.type {cfg['type']!r}; {registry.unknown(cfg['type'])}")
    factory = registry[cfg["type"]]
    cfg["args"] = check_args(factory, cfg["args"], f"{section}.args.", program_set)
    try:
        return factory(**cfg["args"], **given)
    except ValueError as e:
        raise ConfigError(f"{section}.args: {e}") from None


def build_loader(config, split, sharded=False, **overrides):
    """The data loader of one split; the run's seed orders it; overrides replace config args
    (e.g. batch_size, subset), in this loader only. sharded: this process's shard under DDP."""
    rank, world_size, _ = ranks.world() if sharded else (0, 1, 0)
    sections = {"data_loader": {"type": config["data_loader"]["type"],
                                "args": {**config["data_loader"]["args"], **overrides}}}
    loader = build(sections if overrides else config, "data_loader", DATA_LOADERS, PROGRAM_SET,
                   split=split, seed=config["seed"], num_replicas=world_size, rank=rank)
    return loader


def build_whole_loader(config, split, **overrides):
    """The loader of a whole split, whatever data_loader.args.subset says: a subset is for
    training quickly, and must not shrink the set a checkpoint is evaluated on."""
    if "subset" in config["data_loader"]["args"]:
        overrides.setdefault("subset", None)
    return build_loader(config, split, **overrides)


def build_model(config, input_dim, device="cpu"):
    """The configured model for data of input_dim values, its size checked before any memory
    is allocated (utils/model_size.py); the settings it derived are written into the config
    (the run's saved config states the values used)."""
    make = lambda: build(config, "arch", MODELS, ("input_dim",), input_dim=input_dim)  # noqa: E731
    check_model_size(make)
    model = make()
    config["arch"]["args"].update(model.derived_settings())
    return model.to(device)


def check_data_fits_model(loader, model):
    """The likelihood models the data the loader gives (their `data`), or a one-line
    ConfigError: e.g. a Bernoulli likelihood for 8-bit pixels."""
    if loader.input_dim != model.input_dim:
        shape = getattr(loader, "image_shape", None)
        raise ConfigError(f"the data gives {loader.input_dim} values per example"
                          + (f" (images of {tuple(shape)})" if shape else "")
                          + f", but the model takes {model.input_dim}; use the data the "
                          f"model was trained on (data_loader.args.dataset)")
    likelihood = model.likelihood
    if loader.data == likelihood.data:
        return
    fits = " or ".join(repr(name) for name in likelihoods_for(loader.data))
    other_data = {"8-bit": "data_loader.args.binarize 'none' (8-bit images)",
                  "binary": "data_loader.args.binarize 'dynamic' (binary images)"}
    raise ConfigError(f"arch.args.likelihood '{likelihood.name}' models {likelihood.data} data, "
                      f"but the data loader gives {loader.data} data: use likelihood {fits}, "
                      f"or {other_data.get(likelihood.data, 'other data_loader.args')}")


def check_batches_train(loader, model):
    """A model with BatchNorm trains on batches of two examples or more (the statistics of one
    example are undefined): a last batch of one is left out of each epoch, and a batch size
    or a training split that leaves no such batch is one line."""
    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return
    if loader.batch_size < 2:
        raise ConfigError(f"data_loader.args.batch_size {loader.batch_size} cannot train "
                          f"{type(model).__name__}, whose BatchNorm layers need at least 2 "
                          f"examples per batch; use --bs 2 or more")
    loader.drop_batches_below(2)
    if len(loader) == 0:
        raise ConfigError(f"the training split holds {loader.examples()} example(s) per "
                          f"process, fewer than the 2 a batch needs for BatchNorm; use more "
                          f"data (data_loader.args.subset, a smaller validation_size)")


def load_model(config, checkpoint, path, device="cpu"):
    """The checkpoint's model in evaluation mode, rebuilt from the data width it records."""
    model = build_model(config, checkpoint["input_dim"])
    with naming(path):
        check_model(model, checkpoint)
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval()


@contextmanager
def naming(path):
    """A checkpoint that does not fit (trainer/resume.Misfit) as one line naming its file."""
    try:
        yield
    except Misfit as e:
        raise CheckpointError(f"{path} does not fit this run: {e}") from None


def build_optimizer(config, model):
    """(optimizer, scheduler, structure optimizer): the configured torch.optim optimizer over
    the model's parameter groups (the structure logits with their own rate if the gate schedule
    gives one), its scheduler, and the structure logits' own optimizer when the config has a
    structure_optimizer (the logits are then not in the first; None otherwise)."""
    args = config["optimizer"]["args"]
    overrides = {}
    if config["optimizer"]["type"] in FUSED_BY_DEFAULT and "fused" not in args \
            and "foreach" not in args and fused_supported(model):
        overrides["fused"] = True
    separate = config["structure_optimizer"] is not None and bool(model.structure_parameters())
    if separate and any(g.schedule.lr is not None for g in model.gate_sets().values()):
        raise ConfigError("arch.args.gate_schedule.lr and structure_optimizer both set the "
                          "structure logits' rate; give it as structure_optimizer.args.lr")
    optimizer = init_torch(config, "optimizer",
                           model.parameter_groups(without_structure=separate), **overrides)
    scheduler = None
    if config["lr_scheduler"] is not None:
        scheduler = init_torch(config, "lr_scheduler", optimizer)
    structure = init_torch(config, "structure_optimizer", model.structure_parameters()) \
        if separate else None
    return optimizer, scheduler, structure


def fused_supported(model):
    """Fused Adam takes floating-point parameters on the CPU or a CUDA device."""
    return all(p.is_floating_point() and p.device.type in ("cpu", "cuda")
               for p in model.parameters())


def build_trainer(config, checkpoint=None, resume_path=None, validate=True):
    """Everything a training run needs, in this process (one of several under torchrun):
    sharded loaders, the model on its device (wrapped for DDP), optimiser, scheduler, and the
    trainer, resumed from checkpoint when given. Nothing is written yet. validate=False: a
    trainer for timing steps (bench/), with no validation loader and no monitor check."""
    check_torch_sections(config)
    check_processes(config)
    if config["trainer"]["mlflow"]:
        require_mlflow()  # before anything is built: one line naming the install
    gpu = distributed.uses_gpu(config["n_gpu"])
    world_size = distributed.init(gpu)[1]
    seed_everything(config)
    device = distributed.local_device(gpu)
    with distributed.local_main_first():  # one process per machine builds the data caches
        train_loader = build_loader(config, "train", sharded=True).to(device)
        valid_loader = build_loader(config, "valid", sharded=True).to(device) if validate else None
    config.name_after(getattr(train_loader, "name", "data"))
    model = build_model(config, train_loader.input_dim, device)
    check_data_fits_model(train_loader, model)
    check_batches_train(train_loader, model)
    if world_size > 1 and device.type == "cuda" and config["trainer"]["sync_batchnorm"]:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer, lr_scheduler, structure_optimizer = build_optimizer(config, model)
    trainer = Trainer(model, optimizer, config, device, train_loader, valid_loader,
                      lr_scheduler, structure_optimizer, data_parallel=world_size > 1)
    if validate:
        trainer.monitor.check(logged_metrics(valid_loader is not None), lr_scheduler)
    if checkpoint is not None:
        with naming(resume_path):
            trainer.load_state_dict(checkpoint)
        trainer.notes.insert(0, (logging.INFO, f"Resumed from {resume_path}"))
    return trainer
