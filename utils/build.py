"""Building the run's objects from a validated config, shared by every entry point."""
import torch

import data_loader.data_loaders as module_data
import model as module_arch
from model.loss import LOSSES
from utils.errors import ConfigError


def prepare_device(n_gpu, local_rank=0):
    """This process's GPU (cuda:local_rank) when n_gpu > 0 and one is there, else the CPU
    (with a warning if a GPU was asked for)."""
    available = torch.cuda.device_count()
    if n_gpu > 0 and available == 0:
        print("warning: n_gpu > 0 but no GPU is available; training on the CPU")
    return torch.device(f"cuda:{local_rank}" if n_gpu > 0 and available > 0 else "cpu")


def build_loader(config, split, **overrides):
    """The data loader of one split; overrides replace config args (e.g. batch_size)."""
    return config.init_obj("data_loader", module_data, split=split, overrides=overrides)


def build_model(config, input_dim):
    return config.init_obj("arch", module_arch, input_dim=input_dim)


def build_loss(config):
    if config["loss"] not in LOSSES:
        raise ConfigError(f"unknown loss '{config['loss']}' (choices: {', '.join(LOSSES)})")
    return LOSSES[config["loss"]]


def parameter_groups(model, structure_lr):
    """Network weights, and the structure logits alpha with their own rate if one is given."""
    gates = getattr(model, "gates", None)
    structure = [gates.logits] if gates is not None and gates.learned else []
    if structure_lr is None or not structure:
        return [{"params": list(model.parameters())}]
    ids = {id(p) for p in structure}
    network = [p for p in model.parameters() if id(p) not in ids]
    return [{"params": network}, {"params": structure, "lr": structure_lr}]


# Optimizers whose single-kernel (fused) implementation is used unless the config chooses
# (optimizer.args.fused / foreach). On a CPU the default for-loop Adam costs ~9 ms a step on
# the paper-sized model (a dozen small kernels per parameter tensor); fused Adam ~2 ms.
FUSED_BY_DEFAULT = ("Adam", "AdamW")


def build_optimizer(config, model):
    params = parameter_groups(model, config["optimizer"]["structure_lr"])
    args = config["optimizer"]["args"]
    overrides = {}
    if config["optimizer"]["type"] in FUSED_BY_DEFAULT and "fused" not in args \
            and "foreach" not in args and fused_supported(model):
        overrides["fused"] = True
    optimizer = config.init_obj("optimizer", torch.optim, params, overrides=overrides)
    scheduler = None
    if config["lr_scheduler"] is not None:
        scheduler = config.init_obj("lr_scheduler", torch.optim.lr_scheduler, optimizer)
    return optimizer, scheduler


def fused_supported(model):
    """Fused Adam takes floating-point parameters on the CPU or a CUDA device."""
    return all(p.is_floating_point() and p.device.type in ("cpu", "cuda")
               for p in model.parameters())
