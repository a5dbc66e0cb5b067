"""The checkpoint files of a run, and how a run ends early.

checkpoint-latest.safetensors is rewritten at the end of every epoch (and inside long epochs,
and on a stop signal), checkpoint-epochK.safetensors every trainer.save_period epochs and after
the last, model_best.safetensors when the monitored metric improves. Rank 0 writes for every
process (their states are the same); every write is atomic (trainer/checkpoint.py). The bytes
of the last state known to be finite are kept, so that a run that diverges can set
checkpoint-latest back to it instead of leaving a broken state to resume from.
"""
from trainer.checkpoint import encode, write_encoded
from utils import ranks
from utils.errors import UserError

SUFFIX = ".safetensors"


class StopRequested(Exception):
    """Raised at a step boundary after a stop signal (utils/signals.py), once the checkpoint is
    saved."""


class TrainingDiverged(UserError):
    """Too many non-finite losses, or an epoch that is no result; the last good state is kept."""


class RunCheckpoints:
    def __init__(self, run_dir, save_period, last_epoch):
        self.run_dir, self.save_period, self.last_epoch = run_dir, save_period, last_epoch
        self.good = None  # (the bytes of the last state known finite, where it stands)
        self.only_start = True  # no epoch ended since the state this run started from

    @property
    def latest(self):
        return self.run_dir / f"checkpoint-latest{SUFFIX}"

    @property
    def best(self):
        return self.run_dir / f"model_best{SUFFIX}"

    def save(self, state, epoch=None, best=False, logger=None):
        """checkpoint-latest; at the end of epoch also checkpoint-epochK and model_best as due.
        An end-of-epoch state is remembered as the last good one."""
        main = ranks.is_main()
        if epoch is None:  # inside an epoch
            if main:
                write_encoded(encode(state), self.latest)
            return
        data = encode(state) if main else None
        self.good, self.only_start = (data, f"the end of epoch {epoch}"), False
        if not main:
            return
        paths = [self.latest]
        if epoch % self.save_period == 0 or epoch == self.last_epoch:
            paths.append(self.run_dir / f"checkpoint-epoch{epoch}{SUFFIX}")
        if best:
            paths.append(self.best)
        for path in paths:
            write_encoded(data, path)
        if logger is not None and len(paths) > 1:
            logger.info(f"Saved {', '.join(p.name for p in paths)}")

    def remember_good(self, state):
        """The state a run starts from, as the last good one until an epoch ends."""
        epoch, batches = state["epoch"], state["batches_done"]
        where = "the initial weights" if epoch == batches == 0 else \
            f"epoch {epoch + 1}, batch {batches}, where this run started" if batches else \
            f"the end of epoch {epoch}, where this run started"
        self.good = (encode(state) if ranks.is_main() else None, where)

    def roll_back(self):
        """Set checkpoint-latest back to the last good state; returns where that stands."""
        data, where = self.good
        if data is not None:
            write_encoded(data, self.latest)
        return where
