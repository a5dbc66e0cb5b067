"""TensorBoard writer that does nothing when TensorBoard is switched off in the config.

A run's folder holds one event file per session of the run (its start and each resume), and
TensorBoard reads them in the order their names sort. SummaryWriter names a file
events.out.tfevents.<seconds>.<host>.<pid>.<counter>, which sorts in creation order only
when sessions start in different seconds on clocks that agree (within one second, counter
'10' sorts before '9'; another host's clock may lag). So before a session opens its file, the
earlier ones get numbers in their order in place of the seconds, which sort before any time:
the folder reads in the order it was written, and a resumed run's steps stay in order."""
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

EVENTS = "events.out.tfevents."


def number_earlier_sessions(log_dir):
    """Rename the event files in log_dir to <EVENTS><their index, 10 digits><rest of name>.
    They already sort in creation order: all but the last were numbered by the previous
    session, and the last has a time, which sorts after every number."""
    for index, path in enumerate(sorted(Path(log_dir).glob(EVENTS + "*"))):
        rest = path.name[len(EVENTS):].partition(".")[2]
        path.rename(path.with_name(f"{EVENTS}{index:010d}.{rest}"))


class TensorboardWriter:
    def __init__(self, log_dir, enabled):
        if enabled:
            number_earlier_sessions(log_dir)
        self.writer = SummaryWriter(str(log_dir)) if enabled else None

    @property
    def enabled(self):
        return self.writer is not None

    def __getattr__(self, name):
        """writer.add_scalar(...) etc. when enabled, a no-op otherwise."""
        if self.writer is None:
            return lambda *args, **kwargs: None
        return getattr(self.writer, name)

    def close(self):
        if self.writer is not None:
            self.writer.close()
