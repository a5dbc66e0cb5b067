"""The monitored metric (trainer.monitor: 'min val_loss', 'max ...' or 'off'): its best value so
far, and early stopping after trainer.early_stop epochs without improvement (0: never)."""
import math

import torch

from utils.errors import ConfigError


class Monitor:
    def __init__(self, monitor, patience):
        self.mode, _, self.metric = monitor.partition(" ")
        self.patience = patience or math.inf
        self.best, self.not_improved = None, 0

    def check(self, logged_metrics, lr_scheduler):
        """The metric is one an epoch logs, and a plateau scheduler has one to step on."""
        if self.mode != "off" and self.metric not in logged_metrics:
            raise ConfigError(f"trainer.monitor names '{self.metric}', which is not logged; "
                              f"choose one of {', '.join(logged_metrics)} (or 'off')")
        if is_plateau(lr_scheduler) and self.mode == "off":
            raise ConfigError("lr_scheduler ReduceLROnPlateau steps on the monitored metric; "
                              "set trainer.monitor, e.g. 'min val_loss'")

    def update(self, log):
        """Whether this epoch's log is the best so far."""
        if self.mode == "off":
            return False
        value = log[self.metric]
        if self.best is None or (value < self.best if self.mode == "min" else value > self.best):
            self.best, self.not_improved = value, 0
            return True
        self.not_improved += 1
        return False

    @property
    def exhausted(self):
        return self.not_improved > self.patience

    def state_dict(self):
        return {"monitor_best": self.best, "not_improved_count": self.not_improved}

    def load_state_dict(self, state):
        self.best, self.not_improved = state["monitor_best"], state["not_improved_count"]


def is_plateau(scheduler):
    return isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
