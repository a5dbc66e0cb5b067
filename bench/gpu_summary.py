"""The table bash bench/gpu_check.sh ends with, from what its parts wrote into FOLDER:

    python -m bench.gpu_summary FOLDER
    python -m bench.gpu_summary --probe FILE      (what torch sees: the script's first step)

reads gpu.json (the probe), nvidia_smi.txt, tests.xml (pytest's JUnit report of
tests/test_cuda.py, or the counts its log ends with), throughput_<mode>.json (bench.throughput)
and eval_speed.json (bench.eval_speed), with each part's exit status (<part>.rc: a number, or
"budget" for a part the time budget left no room for) and seconds (<part>.seconds), prints one
table and writes it as FOLDER/summary.json. Exit status 1 when the GPU cannot be used, a part
failed, timed out, was killed or left no figures, or a test failed; 0 otherwise. Standard
library only (the probe imports torch), so it runs whatever torch the machine has.
"""
import json
import re
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

MODES = (("eager", "eager"), ("compiled", "trainer.compile"), ("bf16", "trainer.amp (bf16)"),
         ("cuda_graphs", "compile_mode reduce-overhead"))
STEP_FIGURES = ("samples_per_s", "ms_per_step", "percent_of_layer_shapes_roofline",
                "aten_ops_per_step", "launches_per_step", "kernels_per_step")
MIN_TORCH = (2, 4)
EXIT_NO_GPU, EXIT_OLD_TORCH = 3, 4  # the probe's exit statuses besides 0 (a GPU torch can use)


def probe(path):
    """What torch sees, as JSON in path; returns 0 (a GPU torch can use), EXIT_NO_GPU (torch
    sees none, or there is no torch) or EXIT_OLD_TORCH (a GPU, but torch is older than
    MIN_TORCH)."""
    try:
        import torch
    except Exception as e:  # whatever stops the import, there is no torch to check
        Path(path).write_text(json.dumps({"torch": None, "error": f"no torch: {e}"}))
        return EXIT_NO_GPU
    available = torch.cuda.is_available()
    info = {"torch": torch.__version__, "cuda": torch.version.cuda,
            "cuda_available": available, "count": torch.cuda.device_count() if available else 0}
    if available:
        info["name"] = torch.cuda.get_device_name(0)
    release = tuple(int(n) for n in re.findall(r"\d+", torch.__version__)[:2])
    if release < MIN_TORCH:
        info["error"] = f"torch {torch.__version__} is older than {'.'.join(map(str, MIN_TORCH))}"
    Path(path).write_text(json.dumps(info))
    if not available:
        return EXIT_NO_GPU
    return EXIT_OLD_TORCH if "error" in info else 0


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def part_status(folder, name):
    """'ok', 'timed out', 'killed', 'failed (exit N)', 'not run (budget spent)' or 'did not
    run', from <name>.rc (timeout's 124: stopped at its limit; 137: killed after it)."""
    try:
        text = Path(folder, f"{name}.rc").read_text().strip()
    except OSError:
        return "did not run"
    if text == "budget":
        return "not run (budget spent)"
    code = int(text) if text.isdigit() else -1
    return {0: "ok", 124: "timed out", 137: "killed"}.get(code, f"failed (exit {text})")


def part_seconds(folder, name):
    try:
        return int(Path(folder, f"{name}.seconds").read_text())
    except (OSError, ValueError):
        return None


def test_counts(folder):
    """{passed, failed, errors, skipped} of the JUnit report, else of the line pytest's log
    ends with, or None without either (a run killed before its end)."""
    try:
        root = ElementTree.parse(Path(folder, "tests.xml")).getroot()
    except (OSError, ElementTree.ParseError):
        return log_counts(Path(folder, "tests.log"))
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    counts = {key: sum(int(s.get(key, 0)) for s in suites)
              for key in ("tests", "failures", "errors", "skipped")}
    return {"passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
            "failed": counts["failures"], "errors": counts["errors"],
            "skipped": counts["skipped"]}


def log_counts(log):
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    last = next((line for line in reversed(lines) if re.search(r"\d+ (passed|failed)", line)), "")
    found = dict((word.rstrip("s"), int(n)) for n, word in re.findall(r"(\d+) (\w+)", last))
    if not found:
        return None
    return {"passed": found.get("passed", 0), "failed": found.get("failed", 0),
            "errors": found.get("error", 0), "skipped": found.get("skipped", 0)}


def summarise(folder):
    """Everything the table shows, as plain data (what summary.json holds)."""
    def part(name):
        return {"status": part_status(folder, name), "seconds": part_seconds(folder, name)}
    smi = Path(folder, "nvidia_smi.txt")
    summary = {"folder": str(folder), "gpu": read_json(Path(folder, "gpu.json")),
               "nvidia_smi": smi.read_text().strip() if smi.is_file() else None,
               "data": (Path(folder, "data.txt").read_text().strip()
                        if Path(folder, "data.txt").is_file() else None),
               "tests": {**part("tests"), **(test_counts(folder) or {})}, "throughput": {}}
    for mode, _ in MODES:
        figures = read_json(Path(folder, f"throughput_{mode}.json")) or {}
        summary["throughput"][mode] = {**part(f"throughput_{mode}"),
                                       **{k: figures[k] for k in STEP_FIGURES if k in figures}}
    summary["eval_speed"] = {**part("eval_speed"),
                             **(read_json(Path(folder, "eval_speed.json")) or {})}
    return summary


def gpu_problem(summary):
    """Why the GPU could not be checked (None when torch uses one)."""
    gpu = summary["gpu"] or {}
    if gpu.get("cuda_available") and "error" not in gpu:
        return None
    seen = f"nvidia-smi lists: {summary['nvidia_smi']}" if summary["nvidia_smi"] else "a GPU"
    why = gpu.get("error") or (f"torch {gpu.get('torch')} (CUDA {gpu.get('cuda')}) sees no GPU"
                               if gpu else "torch did not answer")
    return f"{seen}, but torch cannot use it: {why}"


def failures(summary):
    """What went wrong, one phrase each ([] when every part ran and every test passed); a GPU
    torch cannot use, or missing data, alone (no part ran then)."""
    blocking = [f"gpu: {problem}" for problem in [gpu_problem(summary)] if problem] + \
        ([f"data: {summary['data']}"] if summary["data"] else [])
    if blocking:
        return blocking
    wrong = []
    tests = summary["tests"]
    if tests["status"] != "ok" or tests.get("failed") or tests.get("errors") \
            or "passed" not in tests:
        wrong.append(f"tests: {tests['status']}")
    for mode, _ in MODES:
        row = summary["throughput"][mode]
        if row["status"] != "ok" or "samples_per_s" not in row:
            wrong.append(f"throughput {mode}: {row['status']}")
    speed = summary["eval_speed"]
    if speed["status"] != "ok" or "seconds" not in speed:
        wrong.append(f"eval_speed: {speed['status']}")
    return wrong


def cell(row, key, digits=0):
    value = row.get(key)
    return "—" if value is None else f"{value:,.{digits}f}"


def table(summary):
    """The summary as lines of text."""
    gpu = summary["gpu"] or {}
    lines = [f"GPU check of {gpu.get('name', '?')} (x{gpu.get('count', '?')}; torch "
             f"{gpu.get('torch', '?')}, CUDA {gpu.get('cuda', '?')})"]
    tests = summary["tests"]
    counts = ", ".join(f"{tests[k]} {k}" for k in ("passed", "failed", "errors", "skipped")
                       if k in tests)
    lines.append(f"tests/test_cuda.py: {counts or 'no report'} ({tests['status']}, "
                 f"{cell(tests, 'seconds')} s)")
    header = ("training step", "samples/s", "ms/step", "% roofline", "aten ops", "launches",
              "kernels", "s", "")
    rows = [header]
    for mode, label in MODES:
        row = summary["throughput"][mode]
        rows.append((label, cell(row, "samples_per_s"), cell(row, "ms_per_step", 2),
                     cell(row, "percent_of_layer_shapes_roofline"), cell(row, "aten_ops_per_step"),
                     cell(row, "launches_per_step"), cell(row, "kernels_per_step"),
                     cell(row, "seconds"), "" if row["status"] == "ok" else row["status"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        lines.append("  ".join(text.ljust(w) if i in (0, 8) else text.rjust(w)
                               for i, (text, w) in enumerate(zip(r, widths))).rstrip())
    speed = summary["eval_speed"]
    if "seconds_for_10000_images" in speed:
        lines.append(f"IS log-likelihood, K = {speed['samples']}, {speed['images']} test images: "
                     f"{speed['seconds']:.1f} s ({speed['samples_per_s']:,.0f} samples/s; all "
                     f"10,000 images: {speed['seconds_for_10000_images']:.0f} s)")
    else:
        lines.append(f"IS log-likelihood: {speed['status']}")
    return lines


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--probe":
        return probe(argv[1])
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python -m bench.gpu_summary FOLDER (the folder gpu_check.sh wrote)",
              file=sys.stderr)
        return 2
    folder = Path(argv[0])
    summary = summarise(folder)
    summary["failures"] = failures(summary)
    if not (gpu_problem(summary) or summary["data"]):  # else no part ran: no table
        print("\n".join(table(summary)))
    path = folder / "summary.json"
    path.write_text(json.dumps(summary, indent=2))
    verdict = "; ".join(summary["failures"]) if summary["failures"] else "every part ran"
    print(f"{verdict}. Summary written to {path}")
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
