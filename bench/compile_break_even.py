"""After how many training steps compiling the step (trainer.compile) has paid for itself.

    python -m bench.compile_break_even [-c config.json] [--rounds 20] [--steps 10] [--threads 2]

One process builds the config's trainer twice, eager and compiled (trainer.compile false and
true), with torch's compile caches (Inductor's FX graph and AOTAutograd caches, under
TORCHINDUCTOR_CACHE_DIR) in a new, empty folder. The compiled trainer's first step holds the
cold compile. A second process then builds the compiled trainer again on the filled cache and
times its first step: the warm compile, what a later run of the same model pays (dynamo traces
the step again; Inductor finds the graphs in its cache). Then --rounds rounds of --steps steps
of each trainer, the order alternating, give the time a compiled step saves (median over the
rounds of eager minus compiled: the shared machine's load falls on both alike).

compile seconds = the first compiled step - a compiled step; the break-even is compile seconds
/ seconds saved per step, in steps (training batches: with TBPTT a batch makes several
optimisation steps, timed together). trainer/compiling.py's BREAK_EVEN_STEPS holds what this
measured (docs/performance.md).
"""
import sys

if __name__ == "__main__" and not __package__:  # run as a file: bench/ is not a package then
    print("error: run the benchmarks from the repository's root as modules: "
          "python -m bench.compile_break_even", file=sys.stderr)
    sys.exit(2)

import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from bench.common import REPO, endless  # noqa: E402
from data_loader.base_data_loader import to_device  # noqa: E402
from experiment import build_trainer  # noqa: E402
from utils.bounds import at_most_cpus, integer  # noqa: E402
from utils.config import ConfigParser, load_json  # noqa: E402
from utils.overrides import apply_overrides  # noqa: E402
from utils.errors import run_cli  # noqa: E402
from utils.files import write_file  # noqa: E402
from utils.help_format import add_overrides, parser as help_parser  # noqa: E402


def parse_args(argv=None):
    parser = help_parser(__doc__)
    parser.add_argument("-c", "--config", default=str(REPO / "config.json"),
                        help="the config whose training step is compiled")
    parser.add_argument("--rounds", type=integer(), default=20, help="timed rounds of each step")
    parser.add_argument("--steps", type=integer(), default=10, help="training steps per round")
    parser.add_argument("--threads", type=at_most_cpus, default=None,
                        help="torch.set_num_threads (default: torch's, one per core)")
    add_overrides(parser, help="override config keys, e.g. --set data_loader.args.data_dir=data")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--first-step-only", action="store_true",
                        help="(the second process) print the compiled trainer's first and "
                             "second step seconds as JSON, nothing else")
    return parser.parse_args(argv)


def trainer_and_step(config_dict, overrides):
    """A trainer of the config with overrides, and a function running one training step."""
    trainer = build_trainer(ConfigParser(apply_overrides(config_dict, overrides)),
                            validate=False)
    trainer.begin_epoch(1)
    batches = endless(trainer.data_loader)
    return trainer, lambda: trainer.train_step(to_device(next(batches), trainer.device))


def seconds(run, times=1):
    start = time.perf_counter()
    for _ in range(times):
        run()
    return (time.perf_counter() - start) / times


def first_steps(config_dict, overrides):
    """(first, second) step seconds of a compiled trainer: the first holds the compile."""
    _, step = trainer_and_step(config_dict, [*overrides, "trainer.compile=true"])
    return seconds(step), seconds(step)


def warm_first_steps(args):
    """first_steps in a new process, on the cache this one filled."""
    command = [sys.executable, "-m", "bench.compile_break_even", "-c", args.config,
               "--first-step-only", *(["--threads", str(args.threads)] if args.threads else []),
               *(["--set", *args.set] if args.set else [])]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config_dict = load_json(args.config)
    overrides = ["n_gpu=0", *args.set]
    if args.first_step_only:
        print(json.dumps(first_steps(config_dict, overrides)))
        return
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="compile_break_even_")
    cold_first, _ = first_steps(config_dict, overrides)  # (its trainer is dropped)
    _, eager = trainer_and_step(config_dict, [*overrides, "trainer.compile=false"])
    _, compiled = trainer_and_step(config_dict, [*overrides, "trainer.compile=true"])
    compiled()  # compiles again in this process: dynamo's own cache is the trainer's method's
    seconds(eager, 3)
    times = {"eager": [], "compiled": []}
    for k in range(args.rounds):
        for name in ("eager", "compiled") if k % 2 == 0 else ("compiled", "eager"):
            times[name].append(seconds(eager if name == "eager" else compiled, args.steps))
    warm_first, warm_second = warm_first_steps(args)
    step = {name: statistics.median(t) for name, t in times.items()}
    saved = statistics.median(e - c for e, c in zip(times["eager"], times["compiled"]))
    compile_s = {"cold": cold_first - step["compiled"], "warm": warm_first - warm_second}
    figures = {
        "config": args.config, "overrides": args.set, "threads": torch.get_num_threads(),
        "load_avg_1min": os.getloadavg()[0],
        "ms_per_step": {k: 1000 * v for k, v in step.items()}, "ms_saved_per_step": 1000 * saved,
        "compile_s": compile_s,
        "break_even_steps": {k: (v / saved if saved > 0 else None) for k, v in compile_s.items()},
    }
    print(f"config           {args.config} {' '.join(args.set)}, {figures['threads']} threads, "
          f"load average {figures['load_avg_1min']:.1f}")
    print(f"step             eager {figures['ms_per_step']['eager']:.1f} ms, compiled "
          f"{figures['ms_per_step']['compiled']:.1f} ms: {1000 * saved:.1f} ms saved a step "
          f"(median of {args.rounds} alternated rounds of {args.steps} steps)")
    for cache in ("cold", "warm"):
        steps = figures["break_even_steps"][cache]
        print(f"compile, {cache} cache  {compile_s[cache]:.1f} s -> pays after "
              + (f"{steps:,.0f} steps" if steps else "never (no step saved)"))
    if args.json:
        write_file(args.json, json.dumps(figures, indent=2))


if __name__ == "__main__":
    sys.exit(run_cli(main))
