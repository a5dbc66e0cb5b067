"""Errors caused by the user's input (config, files, checkpoints).

Entry points run through run_cli, which prints them as one line, `error: <message>`, and
exits with status 2, instead of a traceback: the message names the problem and how to fix it.
A closed standard output (`python test.py ... | head -1`) ends a script quietly.
"""
import os
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


BROKEN_PIPE = 141  # what a shell reports for a process that SIGPIPE ended: 128 + 13
stdout_closed = []  # [True] once the standard output was found closed (silence_stdout)


def silence_stdout():
    """Send what is still written to a closed standard output to /dev/null, so that neither
    the writes left nor the flush at exit raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    stdout_closed.append(True)


def run_cli(main):
    """Run main(); a UserError becomes one line on stderr and exit status 2, a Ctrl-C that
    nothing handled one line and status 130, a closed standard output a quiet stop."""
    try:
        status = main() or 0
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        silence_stdout()
        return BROKEN_PIPE
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
