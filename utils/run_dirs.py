"""A run's directories: created atomically, and locked while a run writes into them.

open_run(config) is the one way a run gets them: a new run claims fresh directories, a resumed
run reopens its own; either way it holds the lock while it trains and config.json is written.

A new run claims its directories with mkdir, which fails when another process made them first,
so two runs started in the same second never share one (the second gets a suffix _1, _2, ...).
A run holds an exclusive lock (flock) on <run dir>/.lock while it trains: a second process
writing the same run (e.g. two resumes of one checkpoint) stops with one line.
"""
import fcntl
import itertools
import json
from contextlib import contextmanager
from pathlib import Path

from utils.errors import ConfigError, writing

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


def save_dir_of(run_dir):
    """The save_dir a run directory belongs to: <save_dir>/models/<name>/<run id>, where a run
    puts it; a run directory elsewhere (a copy) is its own."""
    run_dir = Path(run_dir)
    in_models = len(run_dir.parents) > 2 and run_dir.parent.parent.name == "models"
    return run_dir.parents[2] if in_models else run_dir


def log_dir_of(run_dir):
    """Where a run directory's logs go: <save_dir>/log/<name>/<run id> beside
    <save_dir>/models/<name>/<run id>, or inside a run directory that lies elsewhere."""
    run_dir = Path(run_dir)
    root = save_dir_of(run_dir)
    return run_dir / "log" if root == run_dir else root / "log" / run_dir.parent.name / run_dir.name


def exists_error(path):
    return ConfigError(f"run directory {path} exists already; continue it with --resume "
                       f"<its checkpoint-latest.safetensors> or choose another --run-id")


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


@contextmanager
def open_run(config, resuming=False):
    """Create the run's directories for config (a ConfigParser; a new run never reuses one,
    resuming reopens the checkpoint's) and hold the run's lock while the run writes; writes
    config.json."""
    with writing(config.save_dir, "set trainer.save_dir (--save-dir) to a writable directory"):
        if resuming:  # the lock first: a run in use by another process is left as it is
            config.save_dir.mkdir(parents=True, exist_ok=True)
            handle = lock(config.save_dir)
            try:
                config.log_dir.mkdir(parents=True, exist_ok=True)
            except BaseException:
                handle.close()
                raise
        else:
            config.save_dir, config.log_dir = claim_new(config.save_dir, config.log_dir,
                                                      config.exact_run_id)
            handle = lock(config.save_dir)
    try:
        with writing(config.save_dir, "free space or choose another trainer.save_dir"):
            for stale in config.save_dir.glob(".*.tmp"):  # of a write killed mid-way
                stale.unlink(missing_ok=True)
            (config.save_dir / "config.json").write_text(json.dumps(config.config, indent=2))
        yield
    finally:
        handle.close()
