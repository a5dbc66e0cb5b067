"""The table bash bench/gpu_check.sh ends with, from what its parts wrote into FOLDER:

    python -m bench.gpu_summary FOLDER

reads gpu.json, tests.xml (pytest's JUnit report of tests/test_cuda.py), throughput_<mode>.json
(bench.throughput) and eval_speed.json (bench.eval_speed), with each part's exit status
(<part>.rc), prints one table and writes it as FOLDER/summary.json. Exit status 1 when a part
failed, timed out or left no figures, or a test failed; 0 otherwise.
"""
import json
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

MODES = (("eager", "eager"), ("compiled", "trainer.compile"), ("bf16", "trainer.amp (bf16)"),
         ("cuda_graphs", "compile_mode reduce-overhead"))
STEP_FIGURES = ("samples_per_s", "ms_per_step", "percent_of_layer_shapes_roofline",
                "aten_ops_per_step", "launches_per_step", "kernels_per_step")
TIMED_OUT = (124, 137)


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def part_status(folder, name):
    """'ok', 'timed out', 'failed (exit N)' or 'did not run', from <name>.rc."""
    try:
        code = int(Path(folder, f"{name}.rc").read_text())
    except (OSError, ValueError):
        return "did not run"
    if code == 0:
        return "ok"
    return "timed out" if code in TIMED_OUT else f"failed (exit {code})"


def test_counts(folder):
    """{passed, failed, errors, skipped} of the JUnit report, or None without one."""
    try:
        root = ElementTree.parse(Path(folder, "tests.xml")).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    counts = {key: sum(int(s.get(key, 0)) for s in suites)
              for key in ("tests", "failures", "errors", "skipped")}
    return {"passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
            "failed": counts["failures"], "errors": counts["errors"],
            "skipped": counts["skipped"]}


def summarise(folder):
    """Everything the table shows, as plain data (what summary.json holds)."""
    summary = {"folder": str(folder), "gpu": read_json(Path(folder, "gpu.json")),
               "tests": {"status": part_status(folder, "tests"), **(test_counts(folder) or {})},
               "throughput": {}}
    for mode, _ in MODES:
        figures = read_json(Path(folder, f"throughput_{mode}.json")) or {}
        summary["throughput"][mode] = {"status": part_status(folder, f"throughput_{mode}"),
                                       **{k: figures[k] for k in STEP_FIGURES if k in figures}}
    speed = read_json(Path(folder, "eval_speed.json")) or {}
    summary["eval_speed"] = {"status": part_status(folder, "eval_speed"), **speed}
    return summary


def failures(summary):
    """What went wrong, one phrase each ([] when every part ran and every test passed)."""
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
    lines.append(f"tests/test_cuda.py: {counts or 'no report'} ({tests['status']})")
    header = ("training step", "samples/s", "ms/step", "% roofline", "aten ops", "launches",
              "kernels", "")
    rows = [header]
    for mode, label in MODES:
        row = summary["throughput"][mode]
        rows.append((label, cell(row, "samples_per_s"), cell(row, "ms_per_step", 2),
                     cell(row, "percent_of_layer_shapes_roofline"), cell(row, "aten_ops_per_step"),
                     cell(row, "launches_per_step"), cell(row, "kernels_per_step"),
                     "" if row["status"] == "ok" else row["status"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        lines.append("  ".join(text.ljust(w) if i in (0, 7) else text.rjust(w)
                               for i, (text, w) in enumerate(zip(r, widths))).rstrip())
    speed = summary["eval_speed"]
    if "seconds" in speed:
        lines.append(f"IS log-likelihood, K = {speed['samples']}, {speed['images']} test images: "
                     f"{speed['seconds']:.1f} s ({speed['samples_per_s']:,.0f} samples/s; all "
                     f"10,000 images: {speed['seconds_for_10000_images']:.0f} s)")
    else:
        lines.append(f"IS log-likelihood: {speed['status']}")
    return lines


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python -m bench.gpu_summary FOLDER (the folder gpu_check.sh wrote)",
              file=sys.stderr)
        return 2
    folder = Path(argv[0])
    summary = summarise(folder)
    summary["failures"] = failures(summary)
    print("\n".join(table(summary)))
    path = folder / "summary.json"
    path.write_text(json.dumps(summary, indent=2))
    verdict = "; ".join(summary["failures"]) if summary["failures"] else "every part ran"
    print(f"{verdict}. Summary written to {path}")
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
