"""A run as a job: the callable a job calls, and what a stop does inside the job.

A run trains (or resumes from its checkpoint) and writes its results file; run again after a
stop, it resumes. In its job, a stop signal while the trainer trains makes it save at the next
step and stop (utils/signals.py); then:
- SIGUSR1, the scheduler's warning before the job's time limit: the job hands the signal to
  submitit, whose handler calls Run.checkpoint (the same Run: what changed is in the run's
  checkpoint file) and requeues the job, which resumes the run when it starts again;
- SIGTERM (scancel, `scontrol requeue`, a preemption, a local launcher that stops), SIGINT or
  SIGHUP: the job ends without a result; Slurm requeues it itself or it stays stopped, and
  the next launch resumes it.
Outside training there is nothing to save: such a signal ends the job at once.
"""
import signal
import sys

import submitit

from launcher import WARNING
from utils import signals

ENDS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)  # the stops that do not requeue


class Run(submitit.helpers.Checkpointable):
    """function(*arguments), one run of a sweep; key names it (its results file's stem)."""

    def __init__(self, key, function, *arguments):
        self.key, self.function, self.arguments = key, function, arguments

    def __call__(self):
        answered = len(signals.stops_received)
        with ending_at_once():
            try:
                return self.function(*self.arguments)
            except Exception:
                stops = signals.stops_received[answered:]
                if not stops:
                    raise
                self.stopped(stops[0])

    def stopped(self, signum):
        """The trainer saved and stopped on signum: requeue the job or end it, without a
        result either way (a result file would say that the run ended)."""
        if signum == WARNING:
            signal.raise_signal(signum)  # submitit's handler: checkpoint, requeue, exit
        sys.exit(f"{self.key}: {signum.name} received, stopped after saving its checkpoint; "
                 f"it resumes from there when launched again")


def ending_at_once():
    """While the block runs, ENDS end the job at once (the trainer's own handlers replace
    these while it trains, and put them back afterwards)."""
    def end(signum, frame):
        sys.exit(f"{signal.Signals(signum).name} received: job ended")

    return signals.handling(ENDS, end)
