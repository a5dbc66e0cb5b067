"""Training throughput with 1 and 2 DDP processes on this machine (gloo on the CPU).

    python -m bench.ddp_scaling [-c config.json] [--steps 60] [--procs 1 2] [--threads 1]

Each run is bench/throughput.py under torchrun for a fixed number of steps per process, with
the same global batch (the per-process batch is the config's divided by the process count);
each process gets cores / processes threads.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO
from utils.config import load_json


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


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default=str(REPO / "config.json"))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per process (default: cores / processes)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (nccl, a GPU per process)")
    args = parser.parse_args()
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
        Path(args.json).write_text(json.dumps({str(k): v for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
