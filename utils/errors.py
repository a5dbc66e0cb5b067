"""Errors caused by the user's input (config, files, checkpoints).

Entry points run through run_cli, which prints them as one line, `error: <message>`, and
exits with status 2, instead of a traceback: the message names the problem and how to fix it.
"""
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


def run_cli(main):
    """Run main(); a UserError becomes one line on stderr and exit status 2, a Ctrl-C that
    nothing handled one line and status 130."""
    try:
        return main() or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
