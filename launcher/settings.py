"""The launcher's flags, read into the settings of one launch, and submitit's executor for them.

--launcher local (the default) runs the jobs on this machine through submitit's local executor:
one run per GPU at a time (the GPUs --device names, or all), or on the CPU --jobs N at once.
--launcher slurm submits a Slurm job per run through submitit's Slurm executor (sbatch), with
the Slurm flags below; the scheduler runs as many at once as it has room for.
"""
import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import submitit

from utils.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SLURM_FLAGS = ("partition", "account", "time", "gpus_per_run", "cpus_per_run")
DEFAULT_TIME_MIN = 240
WARNING_S = 120  # launcher.WARNING comes this long before a Slurm job's time limit
REQUEUES = 100  # a job requeues itself at its time limit at most this often
LOCAL_TIMEOUT_MIN = 10 ** 7  # local jobs have no time limit (submitit's default: 2 minutes)


def add_flags(parser):
    group = parser.add_argument_group("launching the runs (docs/sweeps.md)")
    group.add_argument("--launcher", choices=("local", "slurm"), default="local",
                       help="local: the runs' jobs on this machine; slurm: a Slurm job per run")
    group.add_argument("--jobs", type=int,
                       help="--launcher local: runs at the same time (default: one per GPU, "
                            "else 1); at most one per GPU, or per CPU core on the CPU")
    group.add_argument("--partition", help="--launcher slurm: the jobs' partition (default: "
                                           "the cluster's)")
    group.add_argument("--account", help="--launcher slurm: the account the jobs are "
                                         "charged to")
    group.add_argument("--time", type=int, metavar="MINUTES",
                       help=f"--launcher slurm: each job's time limit in minutes (default "
                            f"{DEFAULT_TIME_MIN}); a run that needs longer saves before it "
                            f"and its job is requeued, resuming it")
    group.add_argument("--gpus-per-run", type=int,
                       help="--launcher slurm: GPUs of each job, 0 or 1 (default 1; 0 with "
                            "--device cpu)")
    group.add_argument("--cpus-per-run", type=int,
                       help="--launcher slurm: CPU cores of each job, its threads (default 1)")
    group.add_argument("--status", action="store_true",
                       help="list the runs done, running, failed (with the log to read) and "
                            "not started; launch nothing")


@dataclass(frozen=True)
class Launch:
    """What one launch does: launcher "local" or "slurm"; at_a_time jobs at once (local);
    gpus, the CUDA_VISIBLE_DEVICES entries a local job gets one of (none: the CPU); each
    run's torch threads; sbatch, the Slurm executor's parameters."""
    launcher: str
    at_a_time: int = 0
    gpus: tuple = ()
    threads: int = 1
    sbatch: dict = field(default_factory=dict)


def read(args, gpus):
    """The launch args ask for, or one line saying why not; gpus: for --launcher local, the
    GPUs the runs share (indices among the visible ones; empty: the CPU)."""
    given = [f"--{name.replace('_', '-')}" for name in SLURM_FLAGS
             if getattr(args, name) is not None]
    if args.launcher == "local":
        if given:
            raise ConfigError(f"{given[0]} sets Slurm jobs: give --launcher slurm, or leave "
                              f"it out")
        return local(args.jobs, gpus)
    return slurm(args)


def local(jobs, gpus):
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    entries = visible_entries(gpus)
    limit, what = ((len(entries), f"{len(entries)} GPU(s) for the runs, one run each")
                   if entries else (cpus, f"{cpus} CPU core(s), one run each at most"))
    jobs = (limit if entries else 1) if jobs is None else jobs
    if jobs <= 0:
        raise ConfigError(f"--jobs must be positive, got {jobs}")
    if jobs > limit:
        raise ConfigError(f"--jobs {jobs}: this machine has {what}; give --jobs {limit} or "
                          f"fewer" + (", or --device cpu" if entries else ""))
    return Launch("local", at_a_time=jobs, gpus=tuple(entries), threads=max(1, cpus // jobs))


def visible_entries(gpus):
    """The CUDA_VISIBLE_DEVICES entries of these GPU indices (among the visible ones), so that
    a job that sees only its GPU sees the one the index meant."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return [visible.split(",")[i].strip() if visible is not None else str(i) for i in gpus]


def slurm(args):
    if args.jobs is not None:
        raise ConfigError("--jobs is for --launcher local: on Slurm every run is a job of its "
                          "own, and the scheduler runs as many as it has room for")
    on_cpu = (args.device or "").strip().lower() == "cpu"
    if args.device is not None and not on_cpu:
        raise ConfigError(f"--device {args.device} picks GPUs of this machine; a Slurm job "
                          f"gets its own: give --gpus-per-run (or --device cpu)")
    gpus = (0 if on_cpu else 1) if args.gpus_per_run is None else args.gpus_per_run
    time = DEFAULT_TIME_MIN if args.time is None else args.time
    cpus = 1 if args.cpus_per_run is None else args.cpus_per_run
    if gpus not in (0, 1):
        raise ConfigError(f"--gpus-per-run {gpus}: a run trains in one process on one GPU; "
                          f"give 0 or 1")
    if min(time, cpus) <= 0:
        raise ConfigError("--time and --cpus-per-run must be positive")
    missing = [command for command in ("sbatch", "srun", "squeue") if not shutil.which(command)]
    if missing:
        raise ConfigError(f"--launcher slurm: {missing[0]} is not on PATH; run on a Slurm "
                          f"login node, or use --launcher local")
    sbatch = {"time": time, "cpus_per_task": cpus, "signal_delay_s": WARNING_S,
              "stderr_to_stdout": True, "additional_parameters": {"requeue": True},
              **({"gpus_per_node": gpus} if gpus else {}),
              **{name: getattr(args, name) for name in ("partition", "account")
                 if getattr(args, name)}}
    return Launch("slurm", threads=cpus, sbatch=sbatch)


def executor(launch, folder, name, gpu=None):
    """submitit's executor for one run's job (its files in folder, its name `name`)."""
    python = job_python(gpu)
    if launch.launcher == "slurm":
        ex = submitit.SlurmExecutor(folder, max_num_timeout=REQUEUES, python=python)
        ex.update_parameters(job_name=name, **launch.sbatch)
    else:
        ex = submitit.LocalExecutor(folder, max_num_timeout=REQUEUES, python=python)
        ex.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN, stderr_to_stdout=True)
    return ex


def job_python(gpu):
    """The job's python command: this Python, with the repository importable (a job imports
    the modules of the function it runs) and, given a GPU, only that GPU visible."""
    path = os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    pinned = [] if gpu is None else [f"CUDA_VISIBLE_DEVICES={gpu}"]
    return shlex.join(["env", f"PYTHONPATH={path}", *pinned, sys.executable])
