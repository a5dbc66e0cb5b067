"""Training throughput with 1 and 2 DDP processes on this machine (gloo on the CPU).

    python -m bench.ddp_scaling [-c config.json] [--steps 60] [--procs 1 2] [--threads 1]

Each run is bench/throughput.py under torchrun for a fixed number of steps per process, with
the same global batch (the per-process batch is the config's divided by the process count);
each process gets cores / processes threads.
"""
import sys

if __name__ == "__main__" and not __package__:  # run as a file: bench/ is not a package then
    print("error: run the benchmarks from the repository's root as modules: "
          "python -m bench.ddp_scaling", file=sys.stderr)
    sys.exit(2)

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.common import REPO  # noqa: E402
from utils.bounds import at_most_cpus, integer  # noqa: E402
from utils.config import load_json  # noqa: E402
from utils.files import write_file  # noqa: E402
from utils.errors import run_cli  # noqa: E402
from utils.help_format import parser as help_parser  # noqa: E402


def run(config, procs, steps, global_batch, threads, device):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={procs}", "-m", "bench.throughput", "-c", config,
                   "--steps", str(steps), "--warmup", "10", "--threads", str(threads),
                   "--json", str(out), "--rate-only", "--device", device, "--set", f"data_loader.args.batch_size={global_batch // procs}"]
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                                env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
        if result.returncode != 0:
            raise SystemExit(f"{procs} process(es) failed:\n{result.stderr[-3000:]}")
        return json.loads(out.read_text())["samples_per_s"]


def main(argv=None):
    parser = help_parser(__doc__)
    parser.add_argument("-c", "--config", default=str(REPO / "config.json"),
                        help="the config whose training step is timed")
    parser.add_argument("--steps", type=integer(), default=60, help="timed training steps per process")
    parser.add_argument("--procs", type=at_most_cpus, nargs="+", default=[1, 2],
                        help="process counts to time, one run each")
    parser.add_argument("--threads", type=at_most_cpus, default=None,
                        help="threads per process (default: cores / processes)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (nccl, a GPU per process)")
    args = parser.parse_args(argv)
    global_batch = load_json(args.config).get("data_loader", {}).get("args", {}).get("batch_size", 128)
    results = {}
    for procs in args.procs:
        started = time.perf_counter()
        threads = args.threads or max(1, (os.cpu_count() or 1) // procs)
        results[procs] = run(args.config, procs, args.steps, global_batch, threads, args.device)
        print(f"{procs} process(es) x {threads} thread(s): {results[procs]:,.0f} samples/s "
              f"(global batch {global_batch}; run took {time.perf_counter() - started:.0f} s)")
    if 1 in results and len(results) > 1:
        for procs, rate in results.items():
            if procs != 1:
                print(f"speed-up 1 -> {procs}: {rate / results[1]:.2f}x")
    if args.json:
        write_file(args.json, json.dumps({str(k): v for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    sys.exit(run_cli(main))
