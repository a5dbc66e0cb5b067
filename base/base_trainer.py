"""The epoch loop shared by every trainer: monitoring, early stop, checkpoints, resume, stops.

A run never loses more than it must:
  * every checkpoint write is atomic and checked (utils/checkpoint.py), and
    checkpoint-latest.pth is rewritten at the end of every epoch and, with
    trainer.checkpoint_every_steps, inside it;
  * SIGINT/SIGTERM finish the current step, save checkpoint-latest.pth and exit 0 with the
    command that resumes;
  * a checkpoint taken inside an epoch stores the position in the epoch, the partial sums of
    the epoch's metrics and the RNG state, so resuming reproduces the uninterrupted run exactly;
  * a run that diverges (too many non-finite losses) sets checkpoint-latest.pth back to the
    last state known to be finite: the end of the last epoch whose losses were all finite, or
    the state the run started from;
  * resuming with other optimizer settings (--lr, --set optimizer.args.*) applies them to the
    restored optimizer and gives the run a fresh budget of non-finite steps.
"""
import logging
import math
import signal
import time

import torch

from logger import TensorboardWriter, get_logger
from utils import checkpoint as checkpoints
from utils import distributed
from utils.config import monitor_parts
from utils.errors import CheckpointError, ConfigError, UserError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(Exception):
    """Raised at a step boundary after SIGINT/SIGTERM, once the checkpoint is saved."""


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
        self.stop_requested = False
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
        previous_handlers = {s: signal.signal(s, self._request_stop) for s in STOP_SIGNALS}
        try:
            state = self._checkpoint_state(self.start_epoch - 1)  # the state the run starts from
            self.last_good = (self._encode(state), describe_position(state))
            self._epoch_loop()
            self._write_hparams()
        except StopRequested:
            distributed.barrier()  # no rank leaves before rank 0 has written the checkpoint
            self.stopped = True
            self.logger.info(f"Stopped on request; checkpoint saved. Resume with:\n"
                             f"    python train.py --resume {self.latest_checkpoint}")
        finally:
            for s, handler in previous_handlers.items():
                signal.signal(s, handler)
            self.writer.close()

    def _epoch_loop(self):
        for epoch in range(self.start_epoch, self.epochs + 1):
            started = time.perf_counter()
            log = {"epoch": epoch, **self._train_epoch(epoch)}
            log["seconds"] = time.perf_counter() - started
            self.history.append(log)
            self.batches_done, self.partial_sums = 0, None
            for key, value in log.items():
                self.logger.info(f"    {key:24s}: {format_value(value)}")
            best = self._update_monitor(log)
            data = self._save_checkpoint(epoch, best)
            if "loss" in log and all_finite(log):
                self.last_good = (data, f"the end of epoch {epoch}")
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
            self.notes.append((logging.WARNING, f"{path} was saved by {len(states)} process(es) "
                                                f"and resumes with {world_size}: training "
                                                f"continues, but not bit for bit"))
        state = states[rank] if rank < len(states) else None
        if state is None:
            torch.manual_seed(self.config["seed"] + 1_000_003 * rank + self.start_epoch)
            return
        try:
            if not isinstance(state, dict):
                raise TypeError(f"a {type(state).__name__}, not a dict of generator states")
            torch.set_rng_state(state["torch"])
            if self.device.type == "cuda" and "cuda" in state:
                torch.cuda.set_rng_state(state["cuda"], self.device)
        except (RuntimeError, TypeError, KeyError) as e:
            raise CheckpointError(f"{path}: its random-number state is damaged ({e}); resume "
                                  f"from another checkpoint") from None

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

    def resume(self, checkpoint, path):
        """Continue the run saved in checkpoint (loaded from path): weights, optimizer,
        scheduler, epoch and position in it, best-so-far and RNG states."""
        checkpoints.restore_model(self.model, checkpoint, path)
        self.start_epoch = checkpoint["epoch"] + 1
        if self.start_epoch > self.epochs:
            raise ConfigError(f"{path} has finished {checkpoint['epoch']} epochs already; train "
                              f"longer with --epochs N (N > {checkpoint['epoch']})")
        fresh_groups = [dict(group) for group in self.optimizer.param_groups]
        structure_changed = self._restore_structure_optimizer(checkpoint, path)
        changed = self._restore_optimizer(checkpoint, path)
        if self.lr_scheduler and checkpoint.get("lr_scheduler"):
            self.lr_scheduler.load_state_dict(checkpoint["lr_scheduler"])
        for key in changed:
            self._apply_optimizer_arg(key, fresh_groups)
        if self._apply_structure_lr(checkpoint, fresh_groups):
            changed.append("gate_schedule.lr")
        changed += structure_changed
        self.batches_done = checkpoint.get("batches_done", 0)
        # Saved sums are the total over ranks: rank 0 carries them on, the others start from
        # zeros of the same keys (so that every rank enters the same all-reduces).
        sums = checkpoint.get("partial_sums") or None
        if sums and not distributed.is_main():
            sums = {k: torch.zeros_like(v) if torch.is_tensor(v) else 0 for k, v in sums.items()}
        self.partial_sums = {k: v.to(self.device) if torch.is_tensor(v) else v
                             for k, v in sums.items()} if sums else None
        # New optimizer settings (e.g. a lower rate after a divergence) get a fresh budget.
        self.nonfinite_steps = 0 if changed else checkpoint.get("nonfinite_steps", 0)
        self.history = checkpoint.get("history", [])
        self.monitor_best = checkpoint.get("monitor_best", self.monitor_best)
        self.not_improved_count = checkpoint.get("not_improved_count", 0)
        self._restore_rng(checkpoint.get("rng", []), path)
        where = f", batch {self.batches_done}" if self.batches_done else ""
        self.notes.insert(0, (logging.INFO, f"Resumed from {path}: training continues at "
                                            f"epoch {self.start_epoch}{where}"))

    def _restore_optimizer(self, checkpoint, path):
        """Load the optimizer's state; returns the optimizer.args keys in which the config
        differs from the checkpoint's (they are applied once the scheduler is restored)."""
        saved = checkpoint["config"].get("optimizer") or {}
        configured = self.config["optimizer"]
        if saved.get("type", configured["type"]) != configured["type"]:
            raise ConfigError(f"{path} was trained with optimizer {saved['type']}, which cannot "
                              f"continue as {configured['type']}; keep optimizer.type "
                              f"{saved['type']} or start a new run")
        try:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: optimizer state does not fit the configured "
                                  f"optimizer: {e}") from None
        old, new = saved.get("args", {}), configured["args"]
        changed = sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
        for key in changed:
            self.notes.append((logging.INFO, f"optimizer.args.{key} is {new.get(key, 'default')} "
                                             f"(the checkpoint's: {old.get(key, 'default')}); "
                                             f"applied from here on, with a fresh budget of "
                                             f"non-finite steps"))
        return changed

    def _restore_structure_optimizer(self, checkpoint, path):
        """Load the structure logits' optimiser (kept or not, as the checkpoint's run had it);
        settings the config changes apply from here on. Returns what changed."""
        saved = (checkpoint["config"].get("structure_optimizer") or {}).get("type")
        configured = (self.config["structure_optimizer"] or {}).get("type")
        state = checkpoint.get("structure_optimizer")
        if saved != configured or (state is None) != (self.structure_optimizer is None):
            raise ConfigError(f"{path} was trained with structure_optimizer {saved or 'null'}; "
                              f"resume with the same (its settings may change) or start a new "
                              f"run")
        if self.structure_optimizer is None:
            return []
        fresh = [dict(group) for group in self.structure_optimizer.param_groups]
        try:
            self.structure_optimizer.load_state_dict(state)
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: structure_optimizer state does not fit the "
                                  f"configured one: {e}") from None
        changed = []
        for group, new in zip(self.structure_optimizer.param_groups, fresh):
            for key, value in new.items():
                if key != "params" and group.get(key) != value:
                    self.notes.append((logging.INFO, f"structure_optimizer.args.{key} is "
                                                     f"{value} (the checkpoint's: "
                                                     f"{group.get(key)}); applied from here on"))
                    group[key] = value
                    changed.append(f"structure_optimizer.{key}")
        return changed

    def _apply_structure_lr(self, checkpoint, fresh_groups):
        """A changed arch.args.gate_schedule.lr applies to the structure logits' group (the
        restored optimizer state would keep the old rate); whether it changed."""
        def structure_lr(config):
            return ((config.get("arch") or {}).get("args") or {}).get("gate_schedule", {}).get("lr")
        old, new = structure_lr(checkpoint["config"]), structure_lr(self.config.config)
        if old == new or len(fresh_groups) < 2:
            return False
        self.optimizer.param_groups[1]["lr"] = fresh_groups[1]["lr"]
        self.optimizer.param_groups[1].pop("initial_lr", None)
        self.notes.append((logging.INFO, f"arch.args.gate_schedule.lr is {new} (the "
                                         f"checkpoint's: {old}); applied from here on"))
        return True

    def _apply_optimizer_arg(self, key, fresh_groups):
        """Set a changed optimizer setting, as the freshly built optimizer has it, in every
        parameter group it governs (the learning rate: the networks' group; the structure
        logits keep gate_schedule.lr). A scheduler goes on from the new rate: the factor it
        has applied so far is kept."""
        for i, (group, fresh) in enumerate(zip(self.optimizer.param_groups, fresh_groups)):
            if key == "lr" and i > 0:
                continue
            if not is_numbers(fresh.get(key)):
                raise ConfigError(f"optimizer.args.{key} cannot change when resuming (it shapes "
                                  f"the optimizer's state); keep the checkpoint's value or "
                                  f"start a new run")
            if key != "lr" or "initial_lr" not in group:
                group[key] = fresh[key]
                continue
            base = fresh.get("initial_lr", fresh["lr"])
            group["lr"] *= base / group["initial_lr"]
            group["initial_lr"] = base
            if getattr(self.lr_scheduler, "base_lrs", None):
                self.lr_scheduler.base_lrs[i] = base


def is_plateau(scheduler):
    return isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)


def is_numbers(value):
    """A number, or a list of numbers (e.g. Adam's betas): what may change on resume."""
    if isinstance(value, (list, tuple)):
        return all(map(is_numbers, value))
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def all_finite(value):
    """Whether every number in a log (nested lists and dicts) is finite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(map(all_finite, value))
    if isinstance(value, dict):
        return all(map(all_finite, value.values()))
    return True


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


def format_value(value):
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k} {format_value(v)}" for k, v in value.items())
    return str(value)
