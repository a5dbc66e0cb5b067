"""A run's job: where its files are, whether it still runs, how it ended, and the record of
it that later launches and --status read.

Each job keeps its files (submitit's pickles, its log, its result) in a folder of its own,
<jobs dir>/<launch time>/<run key>/; each run's latest job is recorded in
<jobs dir>/<run key>.json.
"""
import json
import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

from submitit.core.utils import JobPaths, pickle_load

ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
         "OUT_OF_MEMORY", "PREEMPTED", "REVOKED", "SPECIAL_EXIT", "TIMEOUT"}


@dataclass
class Job:
    """A run's job: its launcher, id (Slurm's, or the local controller's process id), folder
    and GPU (local); handle, submitit's job object where this process started it."""
    key: str
    launcher: str
    id: str
    folder: Path
    gpu: str = None
    handle: object = None

    @property
    def log(self):
        return JobPaths(self.folder, self.id, 0).stdout

    def outcome(self):
        """None while the job has no result; else (True, None) or (False, its error)."""
        result = JobPaths(self.folder, self.id, 0).result_pickle
        if not result.exists():
            return None
        kind, value = pickle_load(result)
        return (True, None) if kind == "success" else (False, value.strip().splitlines()[-1])

    def alive(self, queue):
        """Whether the job is queued or running; queue: Slurm's {id: state} (None: unknown)."""
        if self.launcher == "slurm":
            return queue is None or queue.get(self.id, "COMPLETED") not in ENDED
        return not self.handle.done() if self.handle else process_alive(int(self.id))


def process_alive(pid):
    """Whether the local job of an earlier launch still runs: its process is there, and (where
    /proc tells) it is still submitit's, not another process that got its id since."""
    if Path("/proc/self").is_dir():
        try:
            return b"submitit" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: the id was given again
        return False
    return True


def slurm_queue():
    """{job id: state} of this user's jobs Slurm knows of, or None when it cannot be asked."""
    user = pwd.getpwuid(os.getuid()).pw_name
    try:
        asked = subprocess.run(["squeue", "-h", "--states=all", "-u", user, "-o", "%i %T"],
                               capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [line.split() for line in asked.stdout.splitlines()]
    return None if asked.returncode else {line[0]: line[1] for line in lines if len(line) == 2}


def record_path(jobs_dir, key):
    return Path(jobs_dir) / f"{key}.json"


def read_record(jobs_dir, key):
    """The run's latest job, or None (never launched, or a record this version cannot read)."""
    try:
        record = json.loads(record_path(jobs_dir, key).read_text())
        return Job(key, record["launcher"], record["id"], Path(record["folder"]), record["gpu"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_record(jobs_dir, job):
    record_path(jobs_dir, job.key).write_text(json.dumps(
        {"launcher": job.launcher, "id": job.id, "folder": str(job.folder), "gpu": job.gpu}))


def states(keys, done, jobs_dir):
    """(state, key, details) of each run: done, running, failed, stopped or not started."""
    jobs = {key: None if key in done else read_record(jobs_dir, key) for key in keys}
    queue = slurm_queue() if any(j and j.launcher == "slurm" for j in jobs.values()) else None
    rows = []
    for key, job in jobs.items():
        outcome = job.outcome() if job else None
        if key in done:
            rows.append(("done", key, ""))
        elif job is None or outcome and outcome[0]:
            rows.append(("not started", key, ""))
        elif outcome:
            rows.append(("failed", key, f"{outcome[1]}; log: {job.log}"))
        elif job.alive(queue):
            state = (queue or {}).get(job.id, "running").lower()
            rows.append(("running", key, f"{job.launcher} job {job.id} {state}; log: {job.log}"))
        else:
            rows.append(("stopped", key, f"ended without a result; log: {job.log}"))
    return rows
