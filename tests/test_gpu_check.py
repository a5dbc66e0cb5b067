"""bash bench/gpu_check.sh: on a machine without a GPU it says so in one line and succeeds
(CI calls it anywhere); its summary step, run on the figures its parts write (here made up),
prints one table and writes it as JSON, and fails when a part did."""
import json
import subprocess
import sys

import pytest
import torch

from bench import gpu_summary
from tests.conftest import REPO


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the script runs the check")
def test_without_a_gpu_the_check_is_one_line_and_succeeds(tmp_path):
    result = subprocess.run(["bash", "bench/gpu_check.sh", str(tmp_path / "out")], cwd=REPO,
                            capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and "no GPU" in result.stdout, result.stdout
    assert not (tmp_path / "out").exists()  # nothing was run, nothing written


def junit(passed=10, failures=0, skipped=3):
    tests = passed + failures + skipped
    return (f'<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="{tests}" '
            f'failures="{failures}" errors="0" skipped="{skipped}"></testsuite></testsuites>')


def write_parts(folder, failures=0, missing=()):
    """What gpu_check.sh's parts leave behind, with made-up figures."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gpu.json").write_text(json.dumps({"name": "Fake GPU", "count": 1,
                                                 "torch": "2.x", "cuda": "12.x"}))
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
