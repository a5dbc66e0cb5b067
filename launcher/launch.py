"""Launching the runs: a job per run through submitit, waited for until all ended.

A later launch waits for a job of a run that still runs (its record says which) instead of
starting a second one. On the local launcher at most at_a_time jobs run at once, a failure
starts no other run, and a stop of the launcher (Ctrl-C, SIGTERM, SIGHUP) stops the jobs, each
saving its run first; on Slurm every run is submitted at once, and a stop of the launcher
leaves the jobs running.
"""
import os
import signal
import time
from contextlib import redirect_stderr
from io import StringIO
from pathlib import Path

from submitit.core.utils import FailedJobError

from launcher.job import Job, read_record, slurm_queue, write_record
from launcher.settings import executor
from utils.errors import UserError
from utils.signals import handling

POLL_S = 0.5  # how often the jobs' result files are looked at
QUEUE_POLL_S = 15  # how often Slurm's queue is asked (a scheduler is not to be flooded)
RESULT_GRACE_S = 10  # a shared file system may show a result this long after its job ended


def launch(runs, settings, jobs_dir):
    """Run every run (launcher.run.Run) as a job, as settings (launcher.settings.Launch) say,
    and wait until all ended; UserError naming the runs that failed."""
    slurm = settings.launcher == "slurm"
    folder = Path(jobs_dir) / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    queue = slurm_queue() if slurm else None
    live = {r.key: job for r in runs for job in [read_record(jobs_dir, r.key)]
            if job and job.launcher == settings.launcher and job.outcome() is None
            and job.alive(queue)}
    waiting, failed, skipped, asked_at = [r for r in runs if r.key not in live], [], [], 0
    with stops_raise():
        try:
            while waiting or live:
                submitted = False
                while waiting and (slurm or len(live) < settings.at_a_time):
                    run = waiting.pop(0)
                    live[run.key] = submit(run, settings, folder, jobs_dir,
                                           free_gpu(settings, live))
                    submitted = True
                time.sleep(POLL_S)
                if slurm and (submitted or time.monotonic() - asked_at > QUEUE_POLL_S):
                    queue, asked_at = slurm_queue(), time.monotonic()  # knows the new jobs
                for job in [job for job in live.values() if ended(job, queue)]:
                    del live[job.key]
                    if not report(job):
                        failed.append(job)
                        skipped, waiting = (skipped, waiting) if slurm else (waiting, [])
        except (KeyboardInterrupt, Stop) as stop:
            raise stopped(stop, live, settings.launcher) from None
        except BaseException:
            stop_local(live)
            raise
    if failed:
        raise UserError(f"{len(failed)} run(s) failed: " + "; ".join(
            f"{job.key} (log: {job.log})" for job in failed)
            + (f"; {len(skipped)} not started after it" if skipped else "")
            + ". The finished runs are kept; the same command trains the others")


def free_gpu(settings, live):
    taken = {job.gpu for job in live.values()}
    return next((gpu for gpu in settings.gpus if gpu not in taken), None)


def submit(run, settings, folder, jobs_dir, gpu):
    ex = executor(settings, folder / run.key, run.key, gpu)
    with ctrl_c_not_inherited(), redirect_stderr(StringIO()):  # sbatch's error: one line
        try:
            handle = ex.submit(run)
        except FailedJobError as e:
            raise UserError(f"sbatch refused {run.key}: {str(e).strip().splitlines()[-1]}")
    job = Job(run.key, settings.launcher, handle.job_id, folder / run.key, gpu, handle)
    write_record(jobs_dir, job)
    where = f"Slurm job {job.id}" if job.launcher == "slurm" else \
        f"local job {job.id}" + (f" on GPU {gpu}" if gpu is not None else "")
    print(f"[{run.key}] {where}; log: {job.log}", flush=True)
    return job


def ended(job, queue):
    """Whether the job ended: its result is there, or it is no longer queued nor running."""
    if job.outcome() is not None:
        return True
    if job.alive(queue):
        return False
    deadline = time.monotonic() + (RESULT_GRACE_S if job.launcher == "slurm" else 0)
    while job.outcome() is None and time.monotonic() < deadline:
        time.sleep(1)
    return True


def report(job):
    """Say how the job ended; whether its run finished."""
    outcome = job.outcome()
    if outcome and outcome[0]:
        print(f"[{job.key}] done", flush=True)
        return True
    why = outcome[1] if outcome else "ended without a result (stopped, cancelled or killed)"
    print(f"[{job.key}] failed: {why}; log: {job.log}", flush=True)
    return False


class Stop(BaseException):
    """A SIGTERM or SIGHUP to the launcher (a Ctrl-C is Python's KeyboardInterrupt)."""


def stops_raise():
    def stop(signum, frame):
        raise Stop(signal.Signals(signum).name)

    return handling((signal.SIGTERM, signal.SIGHUP), stop)


def ctrl_c_not_inherited():
    """Start a local job with SIGINT ignored: a Ctrl-C in the terminal reaches every process of
    its group, and submitit's local controller would kill its job on it (before the trainer
    saved). The job still stops on a Ctrl-C: the trainer and Run handle SIGINT themselves."""
    return handling((signal.SIGINT,), signal.SIG_IGN)


def stopped(stop, live, launcher):
    """After a stop of the launcher: local jobs are stopped (each saves its run) and waited
    for; Slurm's go on. The error that says so."""
    name = "Ctrl-C" if isinstance(stop, KeyboardInterrupt) else str(stop)
    if launcher == "slurm":
        return UserError(f"{name}: stopped waiting; the {len(live)} Slurm job(s) go on "
                         f"(reproduce.py --status lists them, the same command waits again)")
    stop_local(live)
    return UserError(f"{name}: the {len(live)} running run(s) stopped, each after saving its "
                     f"checkpoint; the same command resumes them")


def stop_local(live):
    """SIGTERM to each local job that runs (its trainer saves), and wait until they ended."""
    running = [job for job in live.values() if job.launcher == "local" and job.alive(None)]
    for job in running:
        os.kill(int(job.id), signal.SIGTERM)
    while any(job.alive(None) for job in running):
        time.sleep(POLL_S)
