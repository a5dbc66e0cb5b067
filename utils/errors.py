"""Errors caused by the user's input (config, files, checkpoints).

Entry points print them as one line, `error: <message>`, and exit with status 2, instead of
a traceback: the message names the problem and how to fix it.
"""
import os
import signal
import sys
from contextlib import contextmanager

INTERRUPTED = "error: interrupted (Ctrl-C)"


class UserError(Exception):
    """A problem with the user's input, reported as one line."""


class ConfigError(UserError):
    pass


class DataError(UserError):
    pass


class CheckpointError(UserError):
    pass


@contextmanager
def writing(path, fix):
    """Report an OSError raised while writing path (a folder that is a file, read-only, full)
    as one line that names the path and the fix."""
    try:
        yield
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e} ({fix})") from None


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
