"""Errors caused by the user's input (config, files, checkpoints).

Entry points print them as one line, `error: <message>`, and exit with status 2, instead of
a traceback: the message names the problem and how to fix it.
"""


class UserError(Exception):
    """A problem with the user's input, reported as one line."""


class ConfigError(UserError):
    pass


class DataError(UserError):
    pass


class CheckpointError(UserError):
    pass
