"""Train a model: python train.py -c config.json [--set key=value ...] | --resume checkpoint."""
import sys

import torch

from logger import get_logger, setup_logging
from trainer import Trainer
from utils.build import build_loader, build_loss, build_model, build_optimizer, prepare_device
from utils.cli import base_parser, load_run_config, run_cli


def main(argv=None):
    args = base_parser(__doc__).parse_args(argv)
    config, checkpoint = load_run_config(args)
    torch.manual_seed(config["seed"])
    if config["trainer"]["deterministic"]:
        torch.use_deterministic_algorithms(True)

    # Everything is built (and so checked) before the run directory is created.
    train_loader = build_loader(config, "train")
    valid_loader = build_loader(config, "valid")
    device = prepare_device(config["n_gpu"])
    model = build_model(config, train_loader.input_dim).to(device)
    optimizer, lr_scheduler = build_optimizer(config, model)
    trainer = Trainer(model, build_loss(config), optimizer, config, device, train_loader,
                      valid_loader, lr_scheduler)
    if checkpoint is not None:
        trainer.resume(checkpoint, args.resume)

    config.make_run_dirs(resuming=checkpoint is not None)
    setup_logging(config.log_dir)
    logger = get_logger("train", config["trainer"]["verbosity"])
    logger.info(model)
    logger.info(f"Run directory: {config.save_dir}  (TensorBoard: {config.log_dir})")
    trainer.train()
    logger.info(f"Done. Evaluate with: python test.py --resume {config.save_dir / 'model_best.pth'}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
