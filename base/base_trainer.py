"""The epoch loop shared by every trainer: monitoring, early stop, checkpoints, resume, stops.

A run never loses more than it must:
  * every checkpoint write is atomic and checked (utils/checkpoint.py), and
    checkpoint-latest.pth is rewritten at the end of every epoch and, with
    trainer.checkpoint_every_steps, inside it;
  * SIGINT/SIGTERM/SIGHUP finish the current step, save checkpoint-latest.pth and exit 0 with the
    command that resumes;
  * a checkpoint taken inside an epoch stores the position in the epoch, the partial sums of
    the epoch's metrics and the RNG state, so resuming reproduces the uninterrupted run exactly;
  * a run that diverges (too many non-finite losses, an epoch without a finite step or with
    a non-finite validation loss) stops with one line and sets checkpoint-latest.pth back to
    the last state known to be finite: the end of the last epoch whose losses were all
    finite, or the state the run started from;
  * resuming with other optimizer settings (--lr, --set optimizer.args.*) applies them to the
    restored optimizer and gives the run a fresh budget of non-finite steps.
"""
import math
import time

import torch

from base import resume as resuming
from logger import TensorboardWriter, get_logger
from logger.logger import format_value
from utils import checkpoint as checkpoints
from utils import distributed
from utils.config import monitor_parts
from utils.errors import CheckpointError, ConfigError, UserError
from utils.signals import StopRequests


class StopRequested(Exception):
    """Raised at a step boundary after a stop signal (utils/signals.py), once the checkpoint
    is saved."""


class TrainingDiverged(UserError):
    """Too many non-finite losses; the last good state is saved."""


class BaseTrainer:
    def __init__(self, model, optimizer, config, device, lr_scheduler=None,
                 structure_optimizer=None):
        self.config, self.device = config, device
        cfg = config["trainer"]
        self.logger = get_logger("trainer", cfg["verbosity"] if distributed.is_main() else 0)
        self.model, self.optimizer, self.lr_scheduler = model, optimizer, lr_scheduler
        # The structure logits' own optimiser (config: structure_optimizer), if any.
        self.structure_optimizer = structure_optimizer
        self.optimizers = [o for o in (optimizer, structure_optimizer) if o is not None]
        self.epochs = cfg["epochs"]
        self.save_period = cfg["save_period"]
        self.early_stop = cfg["early_stop"] or math.inf
        self.monitor_mode, self.monitor_metric = monitor_parts(cfg["monitor"])  # checked
        self.monitor_best = math.inf if self.monitor_mode == "min" else -math.inf
        self.not_improved_count = 0
        self.start_epoch = 1
        # Position inside the current epoch: batches done and the partial metric sums.
        self.batches_done, self.partial_sums = 0, None
        self.nonfinite_steps = 0
        self.history = []  # every epoch's log, kept in the checkpoint (curves, reports)
        self.stops = StopRequests(self.logger.info, distributed.active)
        self.stopped = False  # whether train() ended on a stop request, not at its last epoch
        self.notes = []  # (level, message) of resume(), logged once logging is set up
        self.last_good = None  # (checkpoint bytes, where) of the last state known finite
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

    def logged_metrics(self):
        """The names of the numbers every epoch logs (what trainer.monitor may name)."""
        raise NotImplementedError

    def check_monitor(self):
        """trainer.monitor names one of the metrics an epoch logs (checked before training)."""
        metrics = self.logged_metrics()
        if self.monitor_mode != "off" and self.monitor_metric not in metrics:
            raise ConfigError(f"trainer.monitor names '{self.monitor_metric}', which is not "
                              f"logged; choose one of {', '.join(metrics)} (or 'off')")
        if is_plateau(self.lr_scheduler) and self.monitor_mode == "off":
            raise ConfigError("lr_scheduler ReduceLROnPlateau steps on the monitored metric; "
                              "set trainer.monitor, e.g. 'min val_loss'")

    def train(self):
        for level, message in self.notes:
            self.logger.log(level, message)
        self.writer = TensorboardWriter(self.config.log_dir, self.config["trainer"]["tensorboard"]
                                        and distributed.is_main())
        with self.stops.installed():
            try:
                self._train()
            except StopRequested:
                distributed.barrier()  # no rank leaves before rank 0 has written the checkpoint
                self.stopped = True
                self.logger.info(f"Stopped on request; checkpoint saved. Resume with:\n"
                                 f"    python train.py --resume {self.latest_checkpoint}")
            finally:
                self.writer.close()

    def _train(self):
        state = self._checkpoint_state(self.start_epoch - 1)  # the state the run starts from
        self.last_good = (self._encode(state), describe_position(state))
        if self.start_epoch == 1 and not self.batches_done and self.writer.enabled:
            self._write_hparams()  # once per run, when it starts
        self._epoch_loop()

    def _epoch_loop(self):
        for epoch in range(self.start_epoch, self.epochs + 1):
            started = time.perf_counter()
            log = {"epoch": epoch, **self._train_epoch(epoch)}
            log["seconds"] = time.perf_counter() - started
            self.history.append(log)
            self.batches_done, self.partial_sums = 0, None
            for key, value in log.items():
                self.logger.info(f"    {key:24s}: {format_value(value)}")
            self._stop_unless_finite(epoch, log)
            best = self._update_monitor(log)
            data = self._save_checkpoint(epoch, best)
            self.last_good = (data, f"the end of epoch {epoch}")
            if self.not_improved_count > self.early_stop:
                self.logger.info(f"Validation {self.monitor_metric} did not improve for "
                                 f"{self.early_stop} epochs: training stops.")
                break

    def _write_hparams(self):
        """The run's settings for TensorBoard's HParams tab (the trainer knows what to show)."""

    def _stop_unless_finite(self, epoch, log):
        """An epoch without one finite training step, or with a non-finite number in its log
        (e.g. the validation loss) or weights, is no result: the run stops (exit status 2)
        with checkpoint-latest.pth set back to the last state known finite, instead of
        saving it and ending as if it had trained."""
        if "loss" not in log:
            what = "no finite training loss (every step was non-finite)"
        else:
            bad = next((key for key, value in log.items() if not all_finite(value)), None)
            if bad is None and weights_finite(self.model):
                return
            what = f"a non-finite {bad} ({format_value(log[bad])})" if bad \
                else "non-finite weights"
        where = self._roll_back()
        raise TrainingDiverged(f"epoch {epoch} ended with {what}; {self.latest_checkpoint} is "
                               f"set back to the last state known finite ({where}); check the "
                               f"data, or {self._resume_advice()}")

    def _resume_advice(self):
        """How to go on from the rolled-back checkpoint: a tenth of the learning rate."""
        lower = self.optimizer.param_groups[0]["lr"] / 10
        return (f"resume from it with a lower learning rate: python train.py --resume "
                f"{self.latest_checkpoint} --lr {lower:.3g}")

    def _update_monitor(self, log):
        """Whether this epoch is the best so far by the monitored metric."""
        if self.monitor_mode == "off":
            return False
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
            "partial_sums": to_cpu(self.partial_sums),
            "nonfinite_steps": self.nonfinite_steps,
            "history": self.history,
            "state_dict": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "structure_optimizer": self.structure_optimizer.state_dict()
            if self.structure_optimizer else None,
            "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler else None,
            "monitor_best": self.monitor_best,
            "not_improved_count": self.not_improved_count,
            "config": self.config.config,
            "input_dim": self.model.input_dim,  # the data width, to rebuild without the data
            "rng": distributed.gather(resuming.rng_state(self.device)),  # every rank's, rank order
        }

    def resume(self, checkpoint, path):
        """Continue the run saved in checkpoint (loaded from path): base/resume.py."""
        resuming.resume(self, checkpoint, path)

    @staticmethod
    def _encode(state):
        """The checkpoint file's bytes on the writing process (rank 0), else None."""
        return checkpoints.encode(state) if distributed.is_main() else None

    @staticmethod
    def _write(data, path):
        if data is None:  # one writer; every rank holds the same state
            return
        try:
            checkpoints.write_atomically(data, path)
        except OSError as e:
            raise CheckpointError(f"could not write checkpoint {path}: {e.strerror or e}; "
                                  f"the previous checkpoint is intact (free space or choose "
                                  f"another trainer.save_dir, then resume)") from None

    def _save_checkpoint(self, epoch, save_best):
        """checkpoint-latest.pth every epoch, checkpoint-epochK.pth every save_period epochs,
        model_best.pth when the monitored metric improves; every write is atomic. Returns
        the checkpoint's bytes (None on ranks that do not write)."""
        data = self._encode(self._checkpoint_state(epoch))
        self._write(data, self.latest_checkpoint)
        if epoch % self.save_period == 0 or epoch == self.epochs:
            path = self.checkpoint_dir / f"checkpoint-epoch{epoch}.pth"
            self._write(data, path)
            self.logger.info(f"Saving checkpoint: {path} ...")
        if save_best:
            self._write(data, self.checkpoint_dir / "model_best.pth")
            self.logger.info("Saving current best: model_best.pth ...")
        return data

    def _save_mid_epoch(self, epoch):
        """checkpoint-latest.pth at the current step of `epoch` (not yet completed); under
        DDP every rank calls it (the partial sums are added up across ranks)."""
        state = self._checkpoint_state(epoch - 1)
        state["partial_sums"] = to_cpu(distributed.sum_over_ranks(self.partial_sums,
                                                                   self.device) or {})
        self._write(self._encode(state), self.latest_checkpoint)

    def _roll_back(self):
        """Set checkpoint-latest.pth back to the last state known finite; returns where."""
        data, where = self.last_good
        self._write(data, self.latest_checkpoint)
        return where

def is_plateau(scheduler):
    return isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)


def all_finite(value):
    """Whether every number in a log (nested lists and dicts) is finite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(map(all_finite, value))
    if isinstance(value, dict):
        return all(map(all_finite, value.values()))
    return True


def weights_finite(model):
    """Whether every floating-point weight and buffer of model is finite."""
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values()
               if t.is_floating_point())


def to_cpu(sums):
    """Partial metric sums as CPU tensors: a checkpoint written on a GPU resumes anywhere."""
    return {k: v.cpu() if torch.is_tensor(v) else v for k, v in sums.items()} if sums else sums


def describe_position(state):
    epoch, batches = state["epoch"], state["batches_done"]
    if batches:
        return f"epoch {epoch + 1}, batch {batches}, where this run started"
    if epoch == 0:
        return "the initial weights"
    return f"the end of epoch {epoch}, where this run started"
