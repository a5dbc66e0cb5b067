"""bash bench/gpu_check.sh, without a GPU: on such a machine it says so in one line and
succeeds (CI calls it anywhere); with a GPU that torch cannot use (a fake nvidia-smi) it fails
and says why in summary.json; on a stand-in GPU machine (a fake python whose parts write
made-up figures, one of them stuck past its limit) every part runs under its limit and the
folder ends with summary.json and one archive. Its summary step, run on made-up figures,
prints one table and writes it as JSON, and fails when a part did."""
import json
import shutil
import subprocess
import sys
import tarfile

import pytest
import torch

from bench import gpu_summary
from tests.conftest import REPO

FAKE_NVIDIA_SMI = "#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)'\n"

# A python standing in on a GPU machine: the probe sees a GPU, the tests never end and ignore
# the stop (trap), the benchmarks write made-up figures, the summary is the real one.
FAKE_PYTHON = """#!/bin/bash
json=""; previous=""
for arg in "$@"; do [ "$previous" = --json ] && json=$arg; previous=$arg; done
case " $* " in
  *" --probe "*) echo '{"torch": "2.11.0", "cuda": "13.0", "cuda_available": true,
                        "count": 1, "name": "Fake GPU"}' >"${@: -1}" ;;
  *" bench.gpu_summary "*) exec "$REAL_PYTHON" "$@" ;;
  *" pytest "*) trap '' TERM; while :; do sleep 1; done ;;
  *" bench.throughput "*) echo '{"samples_per_s": 1000.0, "ms_per_step": 1.5}' >"$json" ;;
  *" bench.eval_speed "*) echo '{"samples": 1000, "images": 1000, "seconds": 2.0,
      "samples_per_s": 500000.0, "seconds_for_10000_images": 20.0}' >"$json" ;;
  *) exit 1 ;;
esac
"""


def run_check(out, tmp_path, repo=REPO, python=sys.executable, fake_gpu=False, **env):
    """bash bench/gpu_check.sh out, with only /usr/bin and /bin on the PATH (and a fake
    nvidia-smi that lists one GPU, if asked)."""
    path = "/usr/bin:/bin"
    if fake_gpu:
        (tmp_path / "bin").mkdir(exist_ok=True)
        smi = tmp_path / "bin" / "nvidia-smi"
        smi.write_text(FAKE_NVIDIA_SMI)
        smi.chmod(0o755)
        path = f"{tmp_path / 'bin'}:{path}"
    return subprocess.run(["bash", "bench/gpu_check.sh", str(out)], cwd=repo,
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": path, "PYTHON": str(python), **env})


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the script runs the check")
def test_without_a_gpu_the_check_is_one_line_and_succeeds(tmp_path):
    result = run_check(tmp_path / "out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and "no GPU" in result.stdout, result.stdout
    assert not (tmp_path / "out").exists()  # nothing was run, nothing written


@pytest.mark.skipif(torch.cuda.is_available(), reason="torch here sees the GPU")
def test_a_gpu_that_torch_cannot_see_fails_the_check_and_says_why(tmp_path):
    """A CPU-only torch on a GPU machine is not a pass."""
    result = run_check(tmp_path / "out", tmp_path, fake_gpu=True)
    assert result.returncode == 1, result.stdout + result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    (problem,) = summary["failures"]
    assert "NVIDIA H100" in problem and "torch cannot use it" in problem
    assert problem in result.stdout


def stand_in_repo(tmp_path, data=True):
    """The script and its summary in a folder of their own, with (empty) Fashion-MNIST files,
    and a fake python."""
    repo = tmp_path / "repo"
    (repo / "bench").mkdir(parents=True)
    for name in ("gpu_check.sh", "gpu_summary.py", "__init__.py"):
        shutil.copy(REPO / "bench" / name, repo / "bench" / name)
    if data:
        raw = repo / "data" / "FashionMNIST" / "raw"
        raw.mkdir(parents=True)
        for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                     "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
            (raw / name).touch()
    python = tmp_path / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return repo, python


def test_a_part_stuck_past_its_limit_is_killed_and_the_summary_still_written(tmp_path):
    repo, python = stand_in_repo(tmp_path)
    out = tmp_path / "out"
    result = run_check(out, tmp_path, repo, python, fake_gpu=True, REAL_PYTHON=sys.executable,
                       PYTHONPATH=str(repo), GPU_CHECK_LIMIT_tests="2",
                       GPU_CHECK_KILL_AFTER="1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.tar.gz", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tests"]["status"] == "killed"  # it ignored the stop at 2 s
    assert summary["tests"]["seconds"] < 10
    assert summary["failures"] == ["tests: killed"]  # every other part ran
    assert summary["throughput"]["compiled"]["samples_per_s"] == 1000.0
    with tarfile.open(out / "gpu_check.tar.gz") as archive:
        names = set(archive.getnames())
    assert {"tests.log", "tests.rc", "gpu.json", "throughput_eager.json"} <= names


def test_without_the_data_the_check_fails_at_once_and_downloads_nothing(tmp_path):
    repo, python = stand_in_repo(tmp_path, data=False)
    result = run_check(tmp_path / "out", tmp_path, repo, python, fake_gpu=True,
                       REAL_PYTHON=sys.executable, PYTHONPATH=str(repo),
                       GPU_CHECK_DEBIAN_DATA=str(tmp_path / "no_debian_package"))
    assert result.returncode == 1
    (problem,) = json.loads((tmp_path / "out" / "summary.json").read_text())["failures"]
    assert "carry data/FashionMNIST" in problem


def test_the_time_budget_cuts_the_parts_and_leaves_room_for_the_summary(tmp_path):
    """With 28 s in all, 20 kept for the summary and a kill's 1 s: the tests get the 7 s left
    (not the 270 s they ask for) and the parts after them none."""
    repo, python = stand_in_repo(tmp_path)
    out = tmp_path / "out"
    result = run_check(out, tmp_path, repo, python, fake_gpu=True, REAL_PYTHON=sys.executable,
                       PYTHONPATH=str(repo), GPU_CHECK_BUDGET="28", GPU_CHECK_KILL_AFTER="1")
    assert result.returncode == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tests"]["status"] == "killed" and summary["tests"]["seconds"] <= 9
    assert summary["eval_speed"]["status"] == "not run (budget spent)"


def test_a_check_stopped_from_outside_still_leaves_its_summary(tmp_path):
    """SIGTERM to the script (a scheduler, a Ctrl-C): the running part is stopped, then
    killed, and what ran is summarised and packed."""
    import signal
    import time
    repo, python = stand_in_repo(tmp_path)
    out = tmp_path / "out"
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "nvidia-smi").write_text(FAKE_NVIDIA_SMI)
    (tmp_path / "bin" / "nvidia-smi").chmod(0o755)
    check = subprocess.Popen(["bash", "bench/gpu_check.sh", str(out)], cwd=repo,
                             stdout=subprocess.PIPE, text=True,
                             env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin",
                                  "PYTHON": str(python), "REAL_PYTHON": sys.executable,
                                  "PYTHONPATH": str(repo), "GPU_CHECK_KILL_AFTER": "1"})
    deadline = time.time() + 60
    while not (out / "tests.log").exists() and time.time() < deadline:
        time.sleep(0.1)
    check.send_signal(signal.SIGTERM)
    stdout, _ = check.communicate(timeout=60)
    assert check.returncode == 1, stdout
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.tar.gz", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tests"]["status"] == "killed"
    assert summary["throughput"]["eager"]["status"] == "did not run"


def junit(passed=10, failures=0, skipped=3):
    tests = passed + failures + skipped
    return (f'<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="{tests}" '
            f'failures="{failures}" errors="0" skipped="{skipped}"></testsuite></testsuites>')


def write_parts(folder, failures=0, missing=()):
    """What gpu_check.sh's parts leave behind, with made-up figures."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gpu.json").write_text(json.dumps({"name": "Fake GPU", "count": 1, "torch": "2.x",
                                                 "cuda": "12.x", "cuda_available": True}))
    (folder / "tests.xml").write_text(junit(failures=failures))
    (folder / "tests.rc").write_text("1\n" if failures else "0\n")
    for k, (mode, _) in enumerate(gpu_summary.MODES):
        if mode in missing:
            (folder / f"throughput_{mode}.rc").write_text("124\n")  # timed out, no figures
            continue
        figures = {"samples_per_s": 50_000.0 * (k + 1), "ms_per_step": 2.56 / (k + 1),
                   "percent_of_layer_shapes_roofline": 10.0 + k, "aten_ops_per_step": 900 - k,
                   "launches_per_step": 700 - 100 * k, "kernels_per_step": 700}
        (folder / f"throughput_{mode}.json").write_text(json.dumps(figures))
        (folder / f"throughput_{mode}.rc").write_text("0\n")
    (folder / "eval_speed.json").write_text(json.dumps({
        "samples": 1000, "images": 1000, "seconds": 3.5, "samples_per_s": 285_714.0,
        "seconds_for_10000_images": 35.0}))
    (folder / "eval_speed.rc").write_text("0\n")


def summary_of(folder):
    result = subprocess.run([sys.executable, "-m", "bench.gpu_summary", str(folder)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    return result, json.loads((folder / "summary.json").read_text())


def test_the_summary_prints_one_table_and_writes_it_as_json(tmp_path):
    write_parts(tmp_path / "check")
    result, summary = summary_of(tmp_path / "check")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Fake GPU" in out and "10 passed, 0 failed, 0 errors, 3 skipped" in out
    for _, label in gpu_summary.MODES:
        assert label in out
    assert "200,000" in out and "35 s" in out  # compiled samples/s; IS for all 10,000
    assert f"Summary written to {tmp_path / 'check' / 'summary.json'}" in out
    assert summary["throughput"]["cuda_graphs"]["launches_per_step"] == 400
    assert summary["tests"]["passed"] == 10 and summary["failures"] == []


def test_a_failed_test_or_a_part_that_left_no_figures_fails_the_check(tmp_path):
    write_parts(tmp_path / "a", failures=2)
    result, summary = summary_of(tmp_path / "a")
    assert result.returncode == 1 and summary["tests"]["failed"] == 2
    write_parts(tmp_path / "b", missing=("cuda_graphs",))
    result, summary = summary_of(tmp_path / "b")
    assert result.returncode == 1 and "timed out" in result.stdout
    assert summary["failures"] == ["throughput cuda_graphs: timed out"]
