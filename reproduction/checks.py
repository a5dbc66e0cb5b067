"""reproduce.py's command line beyond the flags: its numbers and folders checked before
anything trains, the GPUs the runs share, and --status."""
import os
from pathlib import Path

from launcher.job import states as run_states
from reproduction.runs import run_key, run_path


def job_gpus(args):
    """The GPUs the runs are spread over (indices among the visible ones): those --device
    names, or every visible one; none with --device cpu or without a GPU."""
    import torch

    from cli import use_devices
    devices = use_devices(args.device)  # GPUs that are not there: one line, before any run
    if devices is not None:
        return list(devices.indices or range(torch.cuda.device_count())) if devices.gpu else []
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


def check_numbers(args):
    """The numbers on the command line, before anything trains: each run is a distinct seed,
    and the table's log p(x) needs importance samples (-k) unless only validation is asked."""
    from utils.config import SEED
    from utils.errors import ConfigError
    from utils.settings import in_interval
    if args.epochs <= 0 or args.samples < 0:
        raise ConfigError("--epochs must be positive, -k non-negative")
    if args.samples == 0 and not args.validation_only:
        raise ConfigError("-k 0 leaves the table without its log p(x) (importance-sampled); "
                          "give -k K > 0, or --validation-only for validation numbers")
    if args.test_limit is not None and args.test_limit <= 0:
        raise ConfigError(f"--test-limit must be a positive number of test images, got "
                          f"{args.test_limit}")
    repeated = sorted({seed for seed in args.seeds if args.seeds.count(seed) > 1})
    if repeated:
        raise ConfigError(f"--seeds gives {', '.join(map(str, repeated))} more than once; "
                          f"each seed is one run (give distinct seeds)")
    wrong = [seed for seed in args.seeds if not in_interval(seed, SEED)]
    if wrong:
        raise ConfigError(f"--seeds must be integers in 0..2**63-1, got {wrong[0]}")


def check_writable_dir(flag, path):
    """path is a directory that can be written, or can be created: found out before training,
    not when the first results are written."""
    from utils.errors import ConfigError
    existing = next(p for p in (path, *path.parents) if p.exists() or p == Path(p.anchor))
    if not existing.is_dir():
        raise ConfigError(f"{flag} {path}: {existing} is a file, not a directory; choose "
                          f"another {flag}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: {existing} cannot be written; choose another "
                          f"{flag}")


def print_status(order, args, results_dir, jobs_dir):
    """--status: each run of the table done, running, failed (with the log) or not started."""
    runs = [(variant.key, seed) for seed in args.seeds for variant in order]
    done = {run_key(*run) for run in runs if run_path(results_dir, *run).is_file()}
    rows = run_states([run_key(*run) for run in runs], done, jobs_dir)
    for state, key, details in rows:
        print(f"{state:<12} {key}" + (f"  {details}" if details else ""))
    counts = {state: sum(row[0] == state for row in rows) for state, _, _ in rows}
    print(", ".join(f"{n} {state}" for state, n in counts.items()))
