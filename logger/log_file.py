"""The run's log file, which a full disk or a lost mount must not turn into tracebacks, and
the console, which a closed standard output must not either.

logging's handlers print a "--- Logging error ---" traceback for every record they fail to
write, many of them before the run's own one-line error. This handler says once, in one line,
that the log file cannot be written, and the run goes on logging to the console (what fails
next, e.g. a checkpoint on the same full disk, stops it with its own line). It never opens
a symbolic link (utils/files.open_no_link): a link planted as the log would append elsewhere.
"""
import logging.handlers
import os
import sys

from utils.errors import silence_stdout
from utils.files import open_no_link


class Console(logging.StreamHandler):
    """The console (standard output). Once it is closed (`train.py ... | head`), the records
    go to the log file only, without a "Logging error" each; a run in training stops then,
    saving its checkpoint (SIGPIPE is a stop request, utils/signals.py)."""

    def handleError(self, record):
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            silence_stdout()
        else:
            super().handleError(record)


class LogFile(logging.handlers.RotatingFileHandler):
    failed = False

    def _open(self):
        fd = open_no_link(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)

    def emit(self, record):
        if not self.failed:
            super().emit(record)

    def handleError(self, record):
        if self.failed:
            return
        self.failed = True
        error = sys.exc_info()[1]
        reason = getattr(error, "strerror", None) or error
        sys.stderr.write(f"warning: cannot write the log file {self.baseFilename}: {reason}; "
                         f"the run goes on, logging to the console only\n")
