"""A run's directories: created atomically, and locked while a run writes into them.

A new run claims its directories with mkdir, which fails when another process made them first,
so two runs started in the same second never share one (the second gets a suffix _1, _2, ...).
A run holds an exclusive lock (flock) on <run dir>/.lock while it trains: a second process
writing the same run (e.g. two resumes of one checkpoint) stops with one line.
"""
import fcntl
import itertools

from utils.errors import ConfigError

LOCK_FILE = ".lock"


def claim_new(models_dir, log_dir, exact=False):
    """(models dir, log dir) of a new run, both created by this process. A name already taken
    gets a suffix, unless exact (a --run-id the user chose): then one line says so."""
    for k in itertools.count():
        name = models_dir.name if k == 0 else f"{models_dir.name}_{k}"
        models, logs = models_dir.with_name(name), log_dir.with_name(name)
        models.parent.mkdir(parents=True, exist_ok=True)
        logs.parent.mkdir(parents=True, exist_ok=True)
        try:
            models.mkdir()
        except FileExistsError:
            taken = models
        else:
            try:
                logs.mkdir()
                return models, logs
            except FileExistsError:
                models.rmdir()
                taken = logs
        if exact:
            raise exists_error(taken)


def exists_error(path):
    return ConfigError(f"run directory {path} exists already; continue it with --resume "
                       f"<its checkpoint-latest.pth> or choose another --run-id")


def lock(run_dir):
    """Hold an exclusive lock on run_dir until the returned file is closed; one line if another
    process holds it. The lock file stays (removing it would let two writers lock two files)."""
    handle = open(run_dir / LOCK_FILE, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigError(f"{run_dir} is in use by another training process; let it finish "
                          f"(or stop it) before resuming this run") from None
    return handle
