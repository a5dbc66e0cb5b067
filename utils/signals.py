"""The signals a run handles.

Before training: exit_on_interrupt() makes a Ctrl-C one line (light on purpose, no torch:
scripts call it before their slow imports). While training: StopRequests turns the signals
that ask a run to end (STOP_SIGNALS: Ctrl-C's SIGINT, `kill`'s and a scheduler's SIGTERM, the
SIGHUP of a closed terminal or a dropped ssh connection, and the SIGUSR1 a Slurm job asks for
before its time limit with `#SBATCH --signal=USR1@120`) into one request, which the trainer
answers at the next step boundary by saving a checkpoint. While it trains, a closed standard
output (SIGPIPE: `train.py ... | head`, or found closed before, utils/errors.silence_stdout)
is one more request to stop.
"""
import os
import signal
import sys
from contextlib import contextmanager

from utils.errors import INTERRUPTED, stdout_closed


def exit_on_interrupt():
    """For a script's process: a Ctrl-C prints one line and exits at once with status 130,
    until training installs its own handler (which saves a checkpoint first). At once: an
    interrupt raised inside an import can leave a module half-built and end in another
    error. Installed before the slow imports, so that this holds from the first second."""
    def handler(signum, frame):
        sys.stderr.write(INTERRUPTED + "\n")
        sys.stderr.flush()
        os._exit(130)

    signal.signal(signal.SIGINT, handler)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)
# The signal of every stop request this process answered, in order (signals are the process's,
# and so is this record): a launcher reads it after a run stopped, to tell a scheduler's warning
# before a time limit (the job is requeued) from an end (SIGTERM, SIGINT: it stays ended).
stops_received = []


class StopRequests:
    """Whether a stop was requested. One request, however many signals arrive (a cluster's
    scheduler and torchrun may each send SIGTERM to every process); only a second Ctrl-C in
    an interactive, single-process run (interactive: not is_distributed()) stops at once."""

    def __init__(self, announce, is_distributed):
        self.requested = False
        self.announce, self.is_distributed = announce, is_distributed

    def handle(self, signum, frame):
        if self.requested:
            if signum == signal.SIGINT and not self.is_distributed():
                signal.signal(signum, signal.SIG_DFL)
                signal.raise_signal(signum)
            return
        self.requested = True
        stops_received.append(signal.Signals(signum))
        self.announce(f"\n{signal.Signals(signum).name} received: saving a checkpoint after "
                      f"this step.")

    @contextmanager
    def installed(self):
        """The handlers while the block runs; the previous ones back afterwards."""
        with handling((*STOP_SIGNALS, signal.SIGPIPE), self.handle):
            if stdout_closed:  # before training began: a SIGPIPE was ignored then
                self.handle(signal.SIGPIPE, None)
            yield self


@contextmanager
def handling(signals, handler):
    """handler for each of signals while the block runs; the previous handlers back after."""
    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
