"""Training throughput of a config against the machine's matmul roofline.

    python -m bench.throughput [-c config.json] [--steps 200] [--set trainer.amp=true ...]

Under torchrun (bench/ddp_scaling.py starts it so) every process trains its shard and the
figures are for the global batch; the rooflines are then skipped.

Trains for a fixed number of steps on the real data (the loader, host-to-device copies and
the optimiser included: end to end) and prints samples/s, the model's matmul FLOPs per
training sample (from its layer shapes: the forward products and the backward products the
step performs, i.e. every weight gradient and every input gradient but the data's), the
machine's measured matmul GFLOP/s and the percentage of it reached, and what one step asks of
the machine (torch.profiler): operator calls (aten ops, and a compiled step's own fused CPU
kernels: on a CPU the proxy for what a GPU would launch), and on a GPU kernel launches and
kernels, the per-operator costs that fusing (trainer.compile) and CUDA graphs
(trainer.compile_mode reduce-overhead) cut. Two rooflines are given:
sgemm at the model's own matmul shapes and batch (what the matmul library reaches on exactly
this work: the one the target refers to) and a large square sgemm (the machine's peak).
Both are measured with the same number of threads as the step (--threads).

Steps are timed in windows of --window steps, and after every window the model-shape
roofline is measured again: the percentage is the median over windows of (time the step's
matmuls take at the library's speed) / (time the step took), so that a shared machine's
changing speed, which moves both, mostly cancels. Rates are medians over windows; the mean
over all timed steps, the samples per process CPU-second and the load average are beside.
"""
import sys

if __name__ == "__main__" and not __package__:  # run as a file: bench/ is not a package then
    print("error: run the benchmarks from the repository's root as modules: "
          "python -m bench.throughput", file=sys.stderr)
    sys.exit(2)

import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from bench.common import (REPO, Roofline, bench_device, endless, matmul_flops,  # noqa: E402
                          matmul_gflops, ops_per_step, profile_compiled_kernels,
                          record_matmuls, timed)
from data_loader.base_data_loader import to_device  # noqa: E402
from experiment import build_trainer  # noqa: E402
from utils import distributed, ranks  # noqa: E402
from utils.bounds import at_most_cpus, integer  # noqa: E402
from utils.config import ConfigParser, load_json  # noqa: E402
from utils.overrides import apply_overrides  # noqa: E402
from utils.files import write_file  # noqa: E402
from utils.errors import run_cli  # noqa: E402
from utils.help_format import add_overrides, parser as help_parser  # noqa: E402


def parse_args(argv=None):
    parser = help_parser(__doc__)
    parser.add_argument("-c", "--config", default=str(REPO / "config.json"),
                        help="the config whose training step is timed")
    parser.add_argument("--steps", type=integer(), default=200, help="timed training steps")
    parser.add_argument("--warmup", type=integer(0), default=20,
                        help="training steps before timing starts (not timed)")
    parser.add_argument("--window", type=integer(), default=10, help="steps per timed window")
    add_overrides(parser, help="override config keys, e.g. --set trainer.amp=true")
    parser.add_argument("--threads", type=at_most_cpus, default=None,
                        help="torch.set_num_threads for the step and the rooflines alike "
                             "(default: torch's, one per core)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--rate-only", action="store_true", help="samples/s only, no rooflines")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda, cuda:N or N (the step and the rooflines; under "
                             "torchrun cuda: a GPU per process)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    _, n_gpu = bench_device(args.device)
    profile_compiled_kernels()  # their count is the compiled step's CPU launch count
    overrides = [f"n_gpu={n_gpu}", *args.set]
    config = ConfigParser(apply_overrides(load_json(args.config), overrides))
    trainer = build_trainer(config, validate=False)
    device = trainer.device
    trainer.begin_epoch(1)
    world_size = ranks.world()[1]
    batch_size = config["data_loader"]["args"].get("batch_size", 128) * world_size
    batches = endless(trainer.data_loader)
    step = lambda: trainer.train_step(to_device(next(batches), trainer.device))  # noqa: E731
    for _ in range(args.warmup):
        step()
    ops = ops_per_step(step, device)
    if world_size > 1 or args.rate_only:  # rooflines are a one-process measure
        seconds = timed(lambda: [step() for _ in range(args.steps)], device)
        figures = {"processes": world_size, "batch": batch_size, "device": str(device),
                   "samples_per_s": args.steps * batch_size / seconds,
                   **{f"{k}_per_step": v for k, v in ops.items()}}
        if ranks.is_main():
            print(f"{world_size} processes: {figures['samples_per_s']:,.0f} samples/s "
                  f"(global batch {batch_size})")
            if args.json:
                write_file(args.json, json.dumps(figures, indent=2))
        distributed.shutdown()
        return
    model = trainer.model
    x = to_device(next(batches), trainer.device)
    products = record_matmuls(model, lambda: model(x))
    flops_per_sample = matmul_flops(products) / batch_size
    # bf16 autocast runs its matmuls in bf16: its roofline is the bf16 library's.
    roofline = Roofline(products, device=device,
                        dtype=torch.bfloat16 if config["trainer"]["amp"] else torch.float32)
    # Timed in windows of --window steps, each followed by a measurement of the roofline:
    # the share of it a window reaches is the step's speed against the library's at that
    # moment, which a shared machine's changing speed mostly cancels out of. Medians over
    # windows; the mean over all timed steps (which includes the time others took) beside.
    window_seconds, matmul_seconds, shares = [], [], []
    seconds = cpu_seconds = 0.0
    for first in range(0, args.steps, args.window):
        steps = min(args.window, args.steps - first)
        cpu_start = time.process_time()
        window_seconds.append(timed(lambda: [step() for _ in range(steps)], device) / steps)
        seconds += window_seconds[-1] * steps
        cpu_seconds += time.process_time() - cpu_start
        matmul_seconds.append(roofline.seconds())
        shares.append(matmul_seconds[-1] / window_seconds[-1])
    samples_per_s = batch_size / statistics.median(window_seconds)
    achieved = samples_per_s * flops_per_sample / 1e9
    shapes_roof = roofline.flops / statistics.median(matmul_seconds) / 1e9
    square_roof = matmul_gflops(2048, 2048, 2048, seconds=2.0, device=device)
    figures = {
        "config": args.config, "overrides": args.set, "batch": batch_size, "device": str(device),
        "threads": torch.get_num_threads(), "steps": args.steps,
        "load_avg_1min": os.getloadavg()[0],
        "samples_per_s": samples_per_s, "ms_per_step": 1000 * batch_size / samples_per_s,
        "samples_per_s_all_steps": args.steps * batch_size / seconds,
        "percent_of_layer_shapes_roofline_per_window": [100 * share for share in shares],
        "samples_per_cpu_s": args.steps * batch_size / cpu_seconds,
        "mflop_per_sample": flops_per_sample / 1e6, "achieved_gflops": achieved,
        "roofline_layer_shapes_gflops": shapes_roof, "roofline_square_gflops": square_roof,
        "percent_of_layer_shapes_roofline": 100 * statistics.median(shares),
        "percent_of_square_roofline": 100 * achieved / square_roof,
        **{f"{k}_per_step": v for k, v in ops.items()},
    }
    print(f"model            {config['arch']['type']}, batch {batch_size}, {device}, "
          f"{torch.get_num_threads()} threads (load average {figures['load_avg_1min']:.1f})")
    print(f"throughput       {samples_per_s:,.0f} samples/s ({figures['ms_per_step']:.1f} ms/step, "
          f"median of {len(window_seconds)} windows of {args.window} steps; all steps "
          f"{figures['samples_per_s_all_steps']:,.0f}/s, "
          f"{figures['samples_per_cpu_s']:,.0f} per CPU-second)")
    print(f"model FLOPs      {flops_per_sample / 1e6:.2f} MFLOP per training sample")
    print("operators        " + ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in ops.items())
          + " per step")
    print(f"achieved         {achieved:.1f} GFLOP/s")
    low, high = (100 * q for q in statistics.quantiles(shares, n=4)[::2]) \
        if len(shares) > 1 else (100 * shares[0],) * 2
    print(f"roofline         {shapes_roof:.1f} GFLOP/s sgemm at the model's layer shapes -> "
          f"{figures['percent_of_layer_shapes_roofline']:.0f} % (median of the windows' "
          f"shares; quartiles {low:.0f}-{high:.0f} %)")
    print(f"                 {square_roof:.1f} GFLOP/s sgemm 2048^3 (peak) -> "
          f"{figures['percent_of_square_roofline']:.0f} %")
    if args.json:
        write_file(args.json, json.dumps(figures, indent=2))


if __name__ == "__main__":
    sys.exit(run_cli(main))
