"""Train a model: python train.py -c config.json [--set key=value ...] | --resume checkpoint.

Several processes (DDP): torchrun --nproc_per_node=N train.py -c config.json, or on a GPU
machine python train.py --device 0,1 -c config.json, which starts torchrun's workers itself.
"""
import subprocess
import sys

import torch
from torch.nn.parallel import DistributedDataParallel

from logger import get_logger, setup_logging
from trainer import Trainer
from utils import distributed
from utils.build import build_loader, build_loss, build_model, build_optimizer, prepare_device
from utils.cli import base_parser, load_run_config, run_cli


def main(argv=None):
    args = base_parser(__doc__).parse_args(argv)
    if args.device and "," in args.device and not distributed.launched_by_torchrun():
        return launch_workers(args.device, sys.argv[1:] if argv is None else argv)
    config, checkpoint = load_run_config(args)
    try:
        train(config, checkpoint, args.resume)
    finally:
        distributed.shutdown()


def train(config, checkpoint, resume_path):
    rank, world_size, local_rank = distributed.init(gpu=config["n_gpu"] > 0)
    torch.manual_seed(config["seed"])  # the same on every rank: their streams stay in step
    if config["trainer"]["deterministic"]:
        torch.use_deterministic_algorithms(True)

    # Everything is built (and so checked) before the run directory is created.
    shard = {"num_replicas": world_size, "rank": rank}
    train_loader = build_loader(config, "train", **shard)
    valid_loader = build_loader(config, "valid", **shard)
    device = prepare_device(config["n_gpu"], local_rank)
    model = build_model(config, train_loader.input_dim).to(device)
    train_forward = None
    if world_size > 1:
        if device.type == "cuda" and config["trainer"]["sync_batchnorm"]:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        train_forward = DistributedDataParallel(
            model, device_ids=[local_rank] if device.type == "cuda" else None,
            find_unused_parameters=config["trainer"]["freeze_graph_epoch"] is not None)
    optimizer, lr_scheduler = build_optimizer(config, model)
    trainer = Trainer(model, build_loss(config), optimizer, config, device, train_loader,
                      valid_loader, lr_scheduler, train_forward=train_forward)
    if checkpoint is not None:
        trainer.resume(checkpoint, resume_path)

    if distributed.is_main():
        config.make_run_dirs(resuming=checkpoint is not None)
        setup_logging(config.log_dir)
    config.save_dir, config.log_dir = distributed.broadcast((config.save_dir, config.log_dir))
    logger = get_logger("train", config["trainer"]["verbosity"] if rank == 0 else 0)
    logger.info(model)
    logger.info(f"Run directory: {config.save_dir}  (TensorBoard: {config.log_dir})"
                + (f"; {world_size} processes" if world_size > 1 else ""))
    trainer.train()
    logger.info(f"Done. Evaluate with: python test.py --resume {config.save_dir / 'model_best.pth'}")


def launch_workers(devices, argv):
    """python train.py --device 0,1 ...: one DDP worker per listed GPU, through torchrun."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={len(devices.split(','))}", __file__, *argv]
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(run_cli(main))
