"""Training throughput with 1 and 2 DDP processes on this machine (gloo on the CPU).

    python bench/ddp_scaling.py [-c config.json] [--steps 60] [--procs 1 2] [--threads 1]

Each run trains the config for a fixed number of steps per process, with the same global
batch (the per-process batch is the config's divided by the process count), and reports
samples/s; each process gets cores / processes threads.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

from common import REPO

WORKER = r"""
import os, sys, time, torch
sys.path.insert(0, {repo!r})
from torch.nn.parallel import DistributedDataParallel
from trainer import Trainer
from data_loader.batches import to_device
from utils import distributed
from utils.build import build_loader, build_loss, build_model, build_optimizer
from utils.config import ConfigParser, apply_overrides, load_json
torch.set_num_threads({threads})
rank, world, _ = distributed.init(gpu=False)
config = ConfigParser(apply_overrides(load_json({config!r}), {overrides!r}))
torch.manual_seed(0)
loader = build_loader(config, "train", num_replicas=world, rank=rank)
model = build_model(config, loader.input_dim)
forward = DistributedDataParallel(model) if world > 1 else None
optimizer, _ = build_optimizer(config, model)
trainer = Trainer(model, build_loss(config), optimizer, config, torch.device("cpu"), loader,
                  train_forward=forward)
trainer._prepare_gates(1)
model.train()
batches = iter(loader)
for _ in range(10):
    trainer._train_step(next(batches))
start = time.perf_counter()
for _ in range({steps}):
    trainer._train_step(next(batches))
seconds = time.perf_counter() - start
if rank == 0:
    print("SECONDS", seconds)
distributed.shutdown()
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(config, procs, steps, global_batch, threads=None):
    threads = threads or max(1, (os.cpu_count() or 1) // procs)
    overrides = [f"data_loader.args.batch_size={global_batch // procs}"]
    code = WORKER.format(repo=str(REPO), config=config, overrides=overrides, steps=steps,
                         threads=threads)
    # torchrun runs a script file (it has no -c), so the worker is written to one.
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(code)
    try:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={procs}", f.name] if procs > 1 \
            else [sys.executable, f.name]
        result = subprocess.run(command, capture_output=True, text=True,
                                env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    finally:
        os.unlink(f.name)
    if result.returncode != 0:
        raise SystemExit(f"{procs} process(es) failed:\n{result.stderr[-3000:]}")
    output = result.stdout
    seconds = float(next(l for l in output.splitlines() if l.startswith("SECONDS")).split()[1])
    return steps * global_batch / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default=str(REPO / "config.json"))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per process (default: cores / processes)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    with open(args.config) as f:
        global_batch = json.load(f)["data_loader"]["args"]["batch_size"]
    results = {}
    for procs in args.procs:
        started = time.perf_counter()
        results[procs] = run(args.config, procs, args.steps, global_batch, args.threads)
        threads = args.threads or max(1, (os.cpu_count() or 1) // procs)
        print(f"{procs} process(es) x {threads} thread(s): {results[procs]:,.0f} samples/s "
              f"(global batch {global_batch}; run took {time.perf_counter() - started:.0f} s)")
    if 1 in results and len(results) > 1:
        for procs, rate in results.items():
            if procs != 1:
                print(f"speed-up 1 -> {procs}: {rate / results[1]:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({str(k): v for k, v in results.items()}, f, indent=2)


if __name__ == "__main__":
    main()
