"""The epoch loop shared by every trainer: monitoring, early stop, checkpoints and resume."""
import math

import torch

from logger import TensorboardWriter, get_logger
from utils.checkpoint import atomic_save, restore_model
from utils.errors import CheckpointError, ConfigError


class BaseTrainer:
    def __init__(self, model, optimizer, config, lr_scheduler=None):
        self.config = config
        cfg = config["trainer"]
        self.logger = get_logger("trainer", cfg["verbosity"])
        self.model, self.optimizer, self.lr_scheduler = model, optimizer, lr_scheduler
        self.epochs = cfg["epochs"]
        self.save_period = cfg["save_period"]
        self.early_stop = cfg["early_stop"] or math.inf
        self.monitor_mode, self.monitor_metric = parse_monitor(cfg["monitor"])
        self.monitor_best = math.inf if self.monitor_mode == "min" else -math.inf
        self.not_improved_count = 0
        self.start_epoch = 1
        self.writer = None  # opened in train(), once the run directory exists

    @property
    def checkpoint_dir(self):
        return self.config.save_dir

    def _train_epoch(self, epoch):
        """Train one epoch; return a dict of plain-number metrics for the log."""
        raise NotImplementedError

    def train(self):
        self.writer = TensorboardWriter(self.config.log_dir, self.config["trainer"]["tensorboard"])
        for epoch in range(self.start_epoch, self.epochs + 1):
            log = {"epoch": epoch, **self._train_epoch(epoch)}
            for key, value in log.items():
                self.logger.info(f"    {key:24s}: {format_value(value)}")
            best = self._update_monitor(log)
            self._save_checkpoint(epoch, best)
            if self.not_improved_count > self.early_stop:
                self.logger.info(f"Validation {self.monitor_metric} did not improve for "
                                 f"{self.early_stop} epochs: training stops.")
                break
        self.writer.close()

    def _update_monitor(self, log):
        """Whether this epoch is the best so far by the monitored metric."""
        if self.monitor_mode == "off":
            return False
        if self.monitor_metric not in log:
            raise ConfigError(f"trainer.monitor names '{self.monitor_metric}', which is not "
                              f"logged; choose one of {', '.join(sorted(log))}")
        value = log[self.monitor_metric]
        improved = value < self.monitor_best if self.monitor_mode == "min" \
            else value > self.monitor_best
        if improved:
            self.monitor_best, self.not_improved_count = value, 0
        else:
            self.not_improved_count += 1
        return improved

    # -- checkpoints ----------------------------------------------------------------------
    def _checkpoint_state(self, epoch):
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "arch": type(self.model).__name__,
            "epoch": epoch,
            "state_dict": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler else None,
            "monitor_best": self.monitor_best,
            "not_improved_count": self.not_improved_count,
            "config": self.config.config,
            "rng": rng,
        }

    def _save_checkpoint(self, epoch, save_best):
        """checkpoint-latest.pth every epoch, checkpoint-epochK.pth every save_period epochs,
        model_best.pth when the monitored metric improves; every write is atomic."""
        state = self._checkpoint_state(epoch)
        atomic_save(state, self.checkpoint_dir / "checkpoint-latest.pth")
        if epoch % self.save_period == 0 or epoch == self.epochs:
            path = self.checkpoint_dir / f"checkpoint-epoch{epoch}.pth"
            atomic_save(state, path)
            self.logger.info(f"Saving checkpoint: {path} ...")
        if save_best:
            atomic_save(state, self.checkpoint_dir / "model_best.pth")
            self.logger.info("Saving current best: model_best.pth ...")

    def resume(self, checkpoint, path):
        """Continue the run saved in checkpoint (loaded from path): weights, optimizer,
        scheduler, epoch, best-so-far and RNG states."""
        restore_model(self.model, checkpoint, path)
        try:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"{path}: optimizer state does not fit the configured "
                                  f"optimizer: {e}") from None
        if self.lr_scheduler and checkpoint["lr_scheduler"]:
            self.lr_scheduler.load_state_dict(checkpoint["lr_scheduler"])
        self.start_epoch = checkpoint["epoch"] + 1
        self.monitor_best = checkpoint["monitor_best"]
        self.not_improved_count = checkpoint["not_improved_count"]
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if "cuda" in checkpoint["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])
        self.logger.info(f"Resumed from {path}: training continues at epoch {self.start_epoch}")


def parse_monitor(monitor):
    if monitor == "off":
        return "off", None
    mode, _, metric = monitor.partition(" ")
    if mode not in ("min", "max") or not metric:
        raise ConfigError(f"trainer.monitor must be 'off' or 'min|max <metric>', got '{monitor}'")
    return mode, metric


def format_value(value):
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)
