"""Speed of the importance-sampled log-likelihood, K = 1000, on the Fashion-MNIST test set.

    python -m bench.eval_speed [--resume checkpoint] [-k 1000] [--images 10000]

Times model.metrics.importance_sampled_log_likelihood over the test images (the same code
test.py runs) with a trained checkpoint, or the default config's model (the cost does not
depend on the weights). With --images below 10000 the full-set time is also extrapolated.
"""
import sys

if __name__ == "__main__" and not __package__:  # run as a file: bench/ is not a package then
    print("error: run the benchmarks from the repository's root as modules: "
          "python -m bench.eval_speed", file=sys.stderr)
    sys.exit(2)

import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from bench.common import (REPO, bench_device, matmul_flops, record_matmuls,  # noqa: E402
                          synchronize)
from experiment import build_loader, build_model, load_model  # noqa: E402
from model.metrics import importance_sampled_log_likelihood  # noqa: E402
from trainer.checkpoint import load_checkpoint  # noqa: E402
from utils.config import ConfigParser, load_json  # noqa: E402
from utils.help_format import parser as help_parser  # noqa: E402

TEST_IMAGES = 10000


def main(argv=None):
    parser = help_parser(__doc__)
    parser.add_argument("--resume", help="checkpoint to time (default: the default config's "
                                         "untrained model)")
    parser.add_argument("-k", "--samples", type=int, default=1000,
                        help="importance samples per image")
    parser.add_argument("--images", type=int, default=TEST_IMAGES,
                        help="test images to time (fewer: the full-set time is extrapolated)")
    parser.add_argument("--batch-size", type=int, default=100, help="test images per batch")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or N")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the importance weights (fuses the elementwise "
                             "work; the compile time is reported apart)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    checkpoint = load_checkpoint(args.resume) if args.resume else None
    config = ConfigParser(checkpoint["config"] if checkpoint else load_json(REPO / "config.json"))
    device, _ = bench_device(args.device)
    loader = build_loader(config, "test", batch_size=args.batch_size, subset=args.images).to(device)
    model = load_model(config, checkpoint, args.resume, device) if checkpoint \
        else build_model(config, loader.input_dim, device).eval()
    compile_seconds = 0.0
    if args.compile:
        model.forward = torch.compile(model.forward)
        start = time.perf_counter()
        for x in loader:  # compiles for the full chunks and the last, smaller one
            importance_sampled_log_likelihood(model, x, args.samples)
            break
        compile_seconds = time.perf_counter() - start
    torch.manual_seed(0)

    total, n = 0.0, 0
    cpu_start, start = time.process_time(), time.perf_counter()
    for x in loader:
        total += importance_sampled_log_likelihood(model, x, args.samples)[0].sum().item()
        n += x.shape[0]
    synchronize(device)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    x = next(iter(loader))
    with torch.inference_mode():
        products = record_matmuls(model, lambda: model(x, n_samples=10))
    flops = matmul_flops(products) / (10 * len(x))
    full = seconds * TEST_IMAGES / n
    print(f"IS log-likelihood, K={args.samples}, {n} test images: {seconds:.1f} s "
          f"({n * args.samples / seconds:,.0f} samples/s, "
          f"{n * args.samples * flops / seconds / 1e9:.1f} GFLOP/s at {flops / 1e6:.2f} MFLOP "
          f"per sample); mean log p(x) = {total / n:.2f} nats")
    print(f"{device}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}, "
          f"process CPU time {cpu_seconds:.1f} s"
          + (f", compile {compile_seconds:.0f} s (not included)" if args.compile else ""))
    if n < TEST_IMAGES:
        print(f"extrapolated to the {TEST_IMAGES} test images: {full:.0f} s ({full / 60:.1f} min)"
              f"; CPU time {cpu_seconds * TEST_IMAGES / n:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "device": str(device), "samples": args.samples, "images": n, "seconds": seconds,
            "samples_per_s": n * args.samples / seconds, "seconds_for_10000_images": full,
            "mean_log_likelihood": total / n, "compile_seconds": compile_seconds}, indent=2))


if __name__ == "__main__":
    main()
