"""The runs of a sweep as submitit jobs (launcher/): on this machine through the local executor
(a failure starts no other run, a stop reaches the jobs, a job sees only its GPU) and on a real
one-node Slurm cluster (tests/slurm_cluster.py), where a requeued run and a run warned before
its time limit both resume from their checkpoints.

What the jobs run lies in tests/sweep_jobs.py, which they import."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from launcher import launch as launching
from launcher import settings
from launcher.job import states
from launcher.launch import launch
from launcher.run import Run
from tests.sweep_jobs import note, train_until_stopped
from utils.errors import UserError, run_cli

REPO = Path(__file__).resolve().parents[1]


def local(at_a_time, gpus=()):
    return settings.Launch("local", at_a_time=at_a_time, gpus=tuple(gpus))


# -- the local executor ---------------------------------------------------------------------
@pytest.mark.parametrize("at_a_time", [1, 2])
def test_after_a_failed_run_no_other_starts(tmp_path, at_a_time, monkeypatch):
    def report(job):  # "second" finishes once the launcher has seen "fails" fail
        finished = reported(job)
        (tmp_path / "failure seen").write_text("")
        return finished

    reported = launching.report
    monkeypatch.setattr(launching, "report", report)
    runs = [Run("fails", note, tmp_path, "fails", True),
            Run("second", note, tmp_path, "second", False, "failure seen"),
            Run("third", note, tmp_path, "third")]
    with pytest.raises(UserError) as failure:
        launch(runs, local(at_a_time), tmp_path / "jobs")
    started = sorted(p.stem for p in tmp_path.glob("*.started"))
    assert started == ["fails", "second"][:at_a_time]  # only what ran when it failed
    assert (tmp_path / "second.finished").exists() == (at_a_time == 2)  # and it was finished
    rows = {key: (state, details) for state, key, details in
            states(["fails", "second", "third"], set(), tmp_path / "jobs")}
    assert rows["fails"][0] == "failed" and "RuntimeError: diverged" in rows["fails"][1]
    log = Path(rows["fails"][1].split("log: ")[1])
    assert "RuntimeError: diverged" in log.read_text()  # the log it names tells why
    assert rows["third"][0] == "not started"
    message = str(failure.value)
    assert message.count("\n") == 0 and f"fails (log: {log})" in message
    assert f"{3 - at_a_time} not started after it" in message


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGHUP], ids=["SIGINT", "SIGHUP"])
def test_a_stop_to_the_launcher_stops_its_local_jobs_after_they_saved(tmp_path, stop):
    """Ctrl-C, `kill` or a closed terminal stops the runs too (each saves its checkpoint), and
    the launcher waits for them, instead of leaving them training, orphaned."""
    runs = [Run(name, train_until_stopped, tmp_path, name) for name in ("a", "b")]

    def stop_when_both_train():
        while len(list(tmp_path.glob("*.started"))) < 2:
            time.sleep(0.05)
        os.kill(os.getpid(), stop)

    # Python's Ctrl-C, also where the tests run in the background (which ignores SIGINT)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=stop_when_both_train, daemon=True).start()
        with pytest.raises(UserError, match="the 2 running run.s. stopped, each after saving"):
            launch(runs, local(2), tmp_path / "jobs")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert sorted(p.stem for p in tmp_path.glob("*.saved")) == ["a", "b"]
    rows = states(["a", "b"], set(), tmp_path / "jobs")
    assert [state for state, _, _ in rows] == ["stopped", "stopped"]  # ended, no result


def test_each_local_job_sees_only_its_gpu(tmp_path, monkeypatch):
    """--jobs N on GPUs: a run per GPU at a time, each job seeing only its own (the GPUs are
    indices among the visible ones, so CUDA_VISIBLE_DEVICES=4,7 gives GPUs 4 and 7)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,7")
    plan = settings.local(None, [0, 1])
    assert (plan.at_a_time, plan.gpus) == (2, ("4", "7"))
    with pytest.raises(UserError, match=r"--jobs 3: this machine has 2 GPU\(s\) for the runs"):
        settings.local(3, [0, 1])
    runs = [Run(name, note, tmp_path, name) for name in ("a", "b", "c")]
    launch(runs, plan, tmp_path / "jobs")
    seen = [p.read_text() for p in sorted(tmp_path.glob("*.started"))]
    assert sorted(seen[:2]) == ["4", "7"] and seen[2] in ("4", "7")


def test_a_sweep_through_the_local_executor_builds_the_table(tmp_path, capsys):
    """Two tiny runs as local jobs at once: their results are collected, the table is built
    and --status says both are done."""
    import reproduce
    argv = tiny_sweep(tmp_path, "--jobs", "2")
    assert run_cli(lambda: reproduce.main(argv)) == 0
    table = (tmp_path / "results" / "results.md").read_text()
    assert "| GraphVAE | 2     |" in table
    capsys.readouterr()
    assert run_cli(lambda: reproduce.main(argv + ["--status"])) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "2 done"


def tiny_sweep(tmp_path, *flags, epochs=1):
    from tests.conftest import DATA_DIR
    from tests.test_visualization import TINY_ARCH
    return ["--models", "graph_vae", "--epochs", str(epochs), "--seeds", "0", "1", "-k", "2",
            "--test-limit", "20", "--out", str(tmp_path / "out"), "--results",
            str(tmp_path / "results"), "--set", f"data_loader.args.data_dir={DATA_DIR}",
            "data_loader.args.subset=256", "data_loader.args.validation_size=200", *TINY_ARCH,
            *flags]


# -- Slurm ----------------------------------------------------------------------------------
def test_the_slurm_launcher_where_there_is_no_slurm_is_one_line(tmp_path, monkeypatch):
    import reproduce
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="sbatch is not on PATH; run on a Slurm login node"):
        settings.read(reproduce.parse_args(["--launcher", "slurm"]), [])


def test_slurm_runs_resume_after_a_requeue_and_after_the_time_limit_warning(tmp_path, slurm):
    """Two tiny runs as Slurm jobs. Run 0 is requeued mid-run (`scontrol requeue`: SIGTERM,
    the trainer saves, Slurm requeues); run 1 gets the warning before its time limit (SIGUSR1:
    the trainer saves, the job requeues itself through submitit). Both resume from their
    checkpoints: the epochs before were not trained again."""
    from trainer.checkpoint import load_checkpoint
    argv = tiny_sweep(tmp_path, "--launcher", "slurm", "--gpus-per-run", "0", epochs=5)
    launcher = subprocess.Popen([sys.executable, "reproduce.py", *argv], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out = tmp_path / "out" / "fashion_mnist"
        interrupts = {0: ["scontrol", "requeue"], 1: ["scancel", "--signal=USR1"]}
        before, jobs_of, deadline = {}, {}, time.monotonic() + 240
        while len(before) < len(interrupts):  # each as soon as its run saved an epoch
            assert launcher.poll() is None and time.monotonic() < deadline, \
                launcher.communicate()[0][-3000:] if launcher.poll() is not None else "timed out"
            for seed in set(interrupts) - set(before):
                latest = out / "models" / "GraphVAE_fashion_mnist" / f"seed{seed}" / \
                    "checkpoint-latest.safetensors"
                if latest.exists():
                    record = out / "jobs" / f"graph_vae_seed{seed}.json"
                    jobs_of[seed] = json.loads(record.read_text())["id"]
                    slurm.run(*interrupts[seed], jobs_of[seed])
                    before[seed] = load_checkpoint(latest)["history"]
            time.sleep(0.05)
        for job in jobs_of.values():  # requeued; Slurm would start them again in 2 minutes
            wait_for(lambda: "PENDING" in slurm.run("squeue", "-h", "-j", job, "-o", "%T"))
            slurm.run("scontrol", "update", f"JobId={job}", "StartTime=now")
        output, _ = launcher.communicate(timeout=300)
    finally:
        launcher.kill()
    assert launcher.returncode == 0, output
    for seed, history in before.items():
        log = next((tmp_path / "out" / "fashion_mnist" / "jobs").glob(
            f"*/graph_vae_seed{seed}/*_log.out")).read_text()
        assert "Resumed from" in log, log
        run = json.loads((tmp_path / "results" / "runs" / f"graph_vae_seed{seed}.json").read_text())
        assert len(history) >= 1 and run["epochs"] == 5
        assert run["history"][:len(history)] == [strip(h) for h in history]
    assert "| GraphVAE | 2     |" in (tmp_path / "results" / "results.md").read_text()
    script = next((tmp_path / "out" / "fashion_mnist" / "jobs").glob("*/*/*_submission.sh"))
    lines = set(script.read_text().splitlines())
    assert {"#SBATCH --signal=USR1@120", "#SBATCH --requeue"} <= lines


def strip(entry):
    return {k: v for k, v in entry.items() if not k.startswith("kl_per")}


def wait_for(condition, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
