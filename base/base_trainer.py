"""The epoch loop shared by every trainer: monitoring, early stop, checkpoints, resume, stops.

A run never loses more than it must:
  * every checkpoint write is atomic (utils/checkpoint.py), and checkpoint-latest.pth is
    rewritten at the end of every epoch and, with trainer.checkpoint_every_steps, inside it;
  * SIGINT/SIGTERM finish the current step, save checkpoint-latest.pth and exit 0 with the
    command that resumes;
  * a checkpoint taken inside an epoch stores the position in the epoch, the partial sums of
    the epoch's metrics and the RNG state, so resuming reproduces the uninterrupted run exactly.
"""
import math
import signal
import time

import torch

from logger import TensorboardWriter, get_logger
from utils import distributed
from utils.checkpoint import atomic_save, restore_model
from utils.errors import CheckpointError, ConfigError, UserError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(Exception):
    """Raised at a step boundary after SIGINT/SIGTERM, once the checkpoint is saved."""


class TrainingDiverged(UserError):
    """Too many non-finite losses; the last good state is saved."""


class BaseTrainer:
    def __init__(self, model, optimizer, config, device, lr_scheduler=None):
        self.config, self.device = config, device
        cfg = config["trainer"]
        self.logger = get_logger("trainer", cfg["verbosity"] if distributed.is_main() else 0)
        self.model, self.optimizer, self.lr_scheduler = model, optimizer, lr_scheduler
        self.epochs = cfg["epochs"]
        self.save_period = cfg["save_period"]
        self.early_stop = cfg["early_stop"] or math.inf
        self.monitor_mode, self.monitor_metric = parse_monitor(cfg["monitor"])
        self.monitor_best = math.inf if self.monitor_mode == "min" else -math.inf
        self.not_improved_count = 0
        self.start_epoch = 1
        # Position inside the current epoch: batches done and the partial metric sums.
        self.batches_done, self.partial_sums = 0, None
        self.nonfinite_steps = 0
        self.history = []  # every epoch's log, kept in the checkpoint (curves, reports)
        self.stop_requested = False
        self.writer = None  # opened in train(), once the run directory exists

    @property
    def checkpoint_dir(self):
        return self.config.save_dir

    @property
    def latest_checkpoint(self):
        return self.checkpoint_dir / "checkpoint-latest.pth"

    def _train_epoch(self, epoch):
        """Train one epoch (from self.batches_done on); return plain-number metrics."""
        raise NotImplementedError

    def train(self):
        self.writer = TensorboardWriter(self.config.log_dir, self.config["trainer"]["tensorboard"]
                                        and distributed.is_main())
        previous_handlers = {s: signal.signal(s, self._request_stop) for s in STOP_SIGNALS}
        try:
            self._epoch_loop()
            self._write_hparams()
        except StopRequested:
            distributed.barrier()  # no rank leaves before rank 0 has written the checkpoint
            self.logger.info(f"Stopped on request; checkpoint saved. Resume with:\n"
                             f"    python train.py --resume {self.latest_checkpoint}")
        finally:
            for s, handler in previous_handlers.items():
                signal.signal(s, handler)
            self.writer.close()

    def _epoch_loop(self):
        if self.start_epoch > self.epochs:
            self.logger.info(f"Nothing to do: the run already finished {self.epochs} epochs "
                             f"(train longer with --epochs N).")
        for epoch in range(self.start_epoch, self.epochs + 1):
            started = time.perf_counter()
            log = {"epoch": epoch, **self._train_epoch(epoch)}
            log["seconds"] = time.perf_counter() - started
            self.history.append(log)
            self.batches_done, self.partial_sums = 0, None
            for key, value in log.items():
                self.logger.info(f"    {key:24s}: {format_value(value)}")
            best = self._update_monitor(log)
            self._save_checkpoint(epoch, best)
            if self.not_improved_count > self.early_stop:
                self.logger.info(f"Validation {self.monitor_metric} did not improve for "
                                 f"{self.early_stop} epochs: training stops.")
                break

    def _write_hparams(self):
        """The run's main settings with its final metrics, for TensorBoard's HParams tab."""
        if not (self.writer.enabled and self.history):
            return
        config, last = self.config, self.history[-1]
        hparams = {"arch": config["arch"]["type"], "seed": config["seed"],
                   "epochs": last["epoch"], "optimizer": config["optimizer"]["type"]}
        for section in ("arch", "data_loader", "optimizer"):
            for key, value in config[section]["args"].items():
                if isinstance(value, (bool, int, float, str)):
                    hparams[f"{section}.{key}"] = value
        metrics = {f"hparam/{k}": v for k, v in last.items()
                   if isinstance(v, float) and k != "seconds"}
        if self.monitor_mode != "off":
            metrics[f"hparam/best_{self.monitor_metric}"] = self.monitor_best
        self.writer.add_hparams(hparams, metrics, run_name=".")

    def _request_stop(self, signum, frame):
        """One stop request, however many signals arrive (a cluster's scheduler and torchrun
        may each send SIGTERM to every process). Only a second Ctrl-C in an interactive,
        single-process run stops at once."""
        if self.stop_requested:
            if signum == signal.SIGINT and not distributed.active():
                signal.signal(signum, signal.SIG_DFL)
                signal.raise_signal(signum)
            return
        self.stop_requested = True
        self.logger.info(f"\n{signal.Signals(signum).name} received: saving a checkpoint after "
                         f"this step.")

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
        """Everything needed to continue: `epoch` is the last completed epoch and
        `batches_done` / `partial_sums` the progress inside the next one."""
        return {
            "arch": type(self.model).__name__,
            "epoch": epoch,
            "batches_done": self.batches_done,
            "partial_sums": self.partial_sums,
            "nonfinite_steps": self.nonfinite_steps,
            "history": self.history,
            "state_dict": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler else None,
            "monitor_best": self.monitor_best,
            "not_improved_count": self.not_improved_count,
            "config": self.config.config,
            "input_dim": self.model.input_dim,  # the data width, to rebuild without the data
            "rng": distributed.gather(self._rng_state()),  # every rank's, rank order
        }

    def _rng_state(self):
        """This process's random state: the CPU generator's, and its own GPU's if it uses one."""
        state = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _restore_rng(self, saved, path):
        """Each rank continues its own random stream when the number of processes is the one
        the checkpoint was saved with; with another number the run goes on, not bit for bit."""
        states = saved if isinstance(saved, list) else [saved]  # older checkpoints: one state
        rank, world_size, _ = distributed.world()
        if len(states) != world_size:
            self.logger.warning(f"{path} was saved by {len(states)} process(es) and resumes with "
                                f"{world_size}: training continues, but not bit for bit")
        state = states[rank] if rank < len(states) else None
        try:
            if state is None:
                torch.manual_seed(self.config["seed"] + 1_000_003 * rank + self.start_epoch)
                return
            torch.set_rng_state(state["torch"])
            if self.device.type == "cuda" and "cuda" in state:
                torch.cuda.set_rng_state(state["cuda"], self.device)
        except (RuntimeError, TypeError, KeyError) as e:
            raise CheckpointError(f"{path}: its random-number state is damaged ({e}); resume "
                                  f"from another checkpoint") from None

    def _write(self, state, path):
        if not distributed.is_main():  # one writer; every rank holds the same state
            return
        try:
            atomic_save(state, path)
        except OSError as e:
            raise CheckpointError(f"could not write checkpoint {path}: {e.strerror or e}; "
                                  f"the previous checkpoint is intact (free space or choose "
                                  f"another trainer.save_dir, then resume)") from None

    def _save_checkpoint(self, epoch, save_best):
        """checkpoint-latest.pth every epoch, checkpoint-epochK.pth every save_period epochs,
        model_best.pth when the monitored metric improves; every write is atomic."""
        state = self._checkpoint_state(epoch)
        self._write(state, self.latest_checkpoint)
        if epoch % self.save_period == 0 or epoch == self.epochs:
            path = self.checkpoint_dir / f"checkpoint-epoch{epoch}.pth"
            self._write(state, path)
            self.logger.info(f"Saving checkpoint: {path} ...")
        if save_best:
            self._write(state, self.checkpoint_dir / "model_best.pth")
            self.logger.info("Saving current best: model_best.pth ...")

    def _save_mid_epoch(self, epoch):
        """checkpoint-latest.pth at the current step of `epoch` (not yet completed); under
        DDP every rank calls it (the partial sums are added up across ranks)."""
        state = self._checkpoint_state(epoch - 1)
        sums = distributed.sum_over_ranks(self.partial_sums, self.device) or {}
        # Saved as CPU tensors: a checkpoint written on a GPU resumes on any device.
        state["partial_sums"] = {k: v.cpu() if torch.is_tensor(v) else v for k, v in sums.items()}
        self._write(state, self.latest_checkpoint)

    def resume(self, checkpoint, path):
        """Continue the run saved in checkpoint (loaded from path): weights, optimizer,
        scheduler, epoch and position in it, best-so-far and RNG states."""
        restore_model(self.model, checkpoint, path)
        try:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"{path}: optimizer state does not fit the configured "
                                  f"optimizer: {e}") from None
        if self.lr_scheduler and checkpoint["lr_scheduler"]:
            self.lr_scheduler.load_state_dict(checkpoint["lr_scheduler"])
        self.start_epoch = checkpoint["epoch"] + 1
        self.batches_done = checkpoint.get("batches_done", 0)
        # Saved sums are the total over ranks: rank 0 carries them on, the others start at 0.
        sums = checkpoint.get("partial_sums") if distributed.is_main() else None
        self.partial_sums = {k: v.to(self.device) if torch.is_tensor(v) else v
                             for k, v in sums.items()} if sums else None
        self.nonfinite_steps = checkpoint.get("nonfinite_steps", 0)
        self.history = checkpoint.get("history", [])
        self.monitor_best = checkpoint["monitor_best"]
        self.not_improved_count = checkpoint["not_improved_count"]
        self._restore_rng(checkpoint["rng"], path)
        where = f", batch {self.batches_done}" if self.batches_done else ""
        self.logger.info(f"Resumed from {path}: training continues at epoch "
                         f"{self.start_epoch}{where}")


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
    if isinstance(value, dict):
        return ", ".join(f"{k} {format_value(v)}" for k, v in value.items())
    return str(value)
