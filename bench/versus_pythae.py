"""A config's training step against pythae 0.1.2's VAE on identical shapes, side by side.

    python -m bench.versus_pythae [-c config.json] [--rounds 40] [--steps 10] [--threads 2]

pythae is a benchmark-only dependency: pip install -r requirements-bench.txt.

Our step is the trainer's, built from the config exactly as train.py builds it (the compile
setting included: trainer.compile "auto" decides as it would for that run). pythae's is its
VAE (pythae.models.VAE: reparameterised Gaussian posterior, N(0, I) prior, Bernoulli
likelihood as binary cross-entropy on sigmoid outputs) with an encoder and a decoder of the
config's layer shapes, the VAE that the config's GraphVAE would be with one node of all its
latent dimensions: the encoder MLP (fc-BN-ReLU, then fc to feature_dim), one bottom-up head
fc(feature_dim, bottom_up_hidden)-BN-ReLU, fc(., M)-ReLU, fc(M, 2M) for the mean and the
log-variance (one layer where pythae's own encoders use two: fewer operators, the same FLOPs),
and the decoder MLP from M = n_nodes * node_dim latents. Its step is what pythae's trainer does
(zero_grad, forward, loss.backward, optimizer.step) with torch's fused Adam at the config's
learning rate. Both train on batches of the config's loader (each its own, end to end).

Timing: after --warmup steps of each (our compile, if any, happens there and is reported
apart), --rounds rounds of --steps steps of each, the order alternating between rounds, so
that the shared machine's changing load falls on both alike. The figure is pythae's time per
step over ours (above 1: ours is faster), the median over rounds with the mean and its
standard error beside, and the load average before and after; the same ratio of process CPU
time beside it (with --threads 1 it is the work done, whatever else the machine runs).

The ceiling: in the same rounds, our step's matmuls alone (every product of the step, from its
layer shapes, on warm operands, as in bench/throughput.py's roofline) against pythae's step,
i.e. the speed-up of a step that did nothing but its matmuls at the library's speed. No step
with our model's FLOPs goes faster without doing less work or a faster matmul.
"""
import sys

if __name__ == "__main__" and not __package__:  # run as a file: bench/ is not a package then
    print("error: run the benchmarks from the repository's root as modules: "
          "python -m bench.versus_pythae", file=sys.stderr)
    sys.exit(2)

import inspect  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

from bench.common import (REPO, Roofline, endless, matmul_flops, ops_per_step,  # noqa: E402
                          profile_compiled_kernels, record_matmuls)
from data_loader.base_data_loader import to_device  # noqa: E402
from experiment import build_trainer  # noqa: E402
from model.graph_vae import GraphVAE, split_latent_dims  # noqa: E402
from model.networks import mlp  # noqa: E402
from utils.bounds import at_most_cpus, integer  # noqa: E402
from utils.config import ConfigParser, load_json  # noqa: E402
from utils.overrides import apply_overrides  # noqa: E402
from utils.errors import ConfigError, run_cli  # noqa: E402
from utils.files import write_file  # noqa: E402
from utils.help_format import add_overrides, parser as help_parser  # noqa: E402


def parse_args(argv=None):
    parser = help_parser(__doc__)
    parser.add_argument("-c", "--config", default=str(REPO / "config.json"),
                        help="the config whose training step is compared (a GraphVAE with the "
                             "Bernoulli likelihood and the MLP decoder)")
    parser.add_argument("--rounds", type=integer(), default=40, help="timed rounds of each step")
    parser.add_argument("--steps", type=integer(), default=10, help="training steps per round")
    parser.add_argument("--warmup", type=integer(2), default=20,
                        help="training steps of each before timing (not timed; the first "
                             "steps compile)")
    parser.add_argument("--threads", type=at_most_cpus, default=None,
                        help="torch.set_num_threads (default: torch's, one per core)")
    add_overrides(parser, help="override config keys, e.g. --set trainer.compile=false")
    parser.add_argument("--json", help="also write the figures to this file")
    return parser.parse_args(argv)


def vae_shapes(config):
    """The layer sizes of the config's GraphVAE that a one-node VAE shares with it."""
    if config["arch"]["type"] != "GraphVAE":
        raise ConfigError(f"the comparison needs a GraphVAE config, not {config['arch']['type']}")
    args = {name: p.default for name, p in inspect.signature(GraphVAE).parameters.items()}
    args.update(config["arch"]["args"])
    if args["likelihood"] != "bernoulli" or args["decoder"] != "mlp":
        raise ConfigError("pythae's VAE is compared with a GraphVAE of likelihood 'bernoulli' "
                        "and decoder 'mlp' (binary images)")
    latent = args["n_nodes"] * split_latent_dims(args["latent_dim"], args["n_nodes"],
                                                 args["node_dim"])
    return args, latent


def pythae_vae(config, input_dim):
    """pythae's VAE with the config's layer shapes (see the module's docstring)."""
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    args, latent = vae_shapes(config)

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(
                mlp([input_dim, *args["encoder_hidden"], args["feature_dim"]]),
                mlp([args["feature_dim"], args["bottom_up_hidden"], latent]), nn.ReLU(),
                nn.Linear(latent, 2 * latent))

        def forward(self, x):
            mu, log_var = self.body(x).chunk(2, dim=-1)
            return ModelOutput(embedding=mu, log_covariance=log_var)

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.body = mlp([latent, *args["decoder_hidden"], input_dim])

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.body(z)))

    vae_config = VAEConfig(input_dim=(input_dim,), latent_dim=latent, reconstruction_loss="bce")
    return VAE(vae_config, encoder=Encoder(), decoder=Decoder())


def pythae_step(model, optimizer):
    def step(x):
        optimizer.zero_grad(set_to_none=True)
        model({"data": x}).loss.backward()
        optimizer.step()
    return step


def flops_per_sample(model, forward, batch):
    return matmul_flops(record_matmuls(model, forward)) / len(batch)


def seconds_of(steps, run):
    """(wall, process CPU) seconds per call of run()."""
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        run()
    return (time.perf_counter() - start) / steps, (time.process_time() - cpu_start) / steps


def ratios(times, over, under, which):
    """Per round, over's time / under's (which: 0 wall, 1 CPU): median, mean, its SE."""
    values = [o[which] / u[which] for o, u in zip(times[over], times[under])]
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
    return {"median": statistics.median(values), "mean": statistics.mean(values), "se": se}


def alternated(contestants, args):
    """{name: [(wall, CPU) seconds per call, one per round]}: after --warmup calls of each,
    --rounds rounds of --steps calls of each, in an order reversed every other round."""
    for run in contestants.values():
        seconds_of(args.warmup - 1, run)
    times = {name: [] for name in contestants}
    for k in range(args.rounds):
        for name in list(contestants)[::1 if k % 2 == 0 else -1]:
            times[name].append(seconds_of(args.steps, contestants[name]))
    return times


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = ConfigParser(apply_overrides(load_json(args.config), ["n_gpu=0", *args.set]))
    vae_shapes(config)  # a config pythae's VAE cannot mirror is refused before anything loads
    profile_compiled_kernels()
    trainer = build_trainer(config, validate=False)
    trainer.begin_epoch(1)
    batches = (to_device(b, trainer.device) for b in endless(trainer.data_loader))
    x = next(batches)
    ours = lambda: trainer.train_step(next(batches))  # noqa: E731
    theirs_model = pythae_vae(config, x.shape[1]).train()
    optimizer = torch.optim.Adam(theirs_model.parameters(), lr=config["optimizer"]["args"]["lr"],
                                 fused=True)
    pythae_train_step = pythae_step(theirs_model, optimizer)
    theirs = lambda: pythae_train_step(next(batches))  # noqa: E731
    matmuls = Roofline(record_matmuls(trainer.model, lambda: trainer.model(x)))
    contestants = {"ours": ours, "pythae": theirs, "our_matmuls": matmuls.run}
    first_step_s = seconds_of(1, ours)[0]
    load_before = os.getloadavg()[0]
    times = alternated(contestants, args)
    figures = {
        "config": args.config, "overrides": args.set, "threads": torch.get_num_threads(),
        "batch": len(x), "rounds": args.rounds, "steps_per_round": args.steps,
        "compiled": trainer.compiled, "first_step_s": first_step_s,
        "load_avg_1min_before": load_before, "load_avg_1min_after": os.getloadavg()[0],
        "ms_per_step": {k: 1000 * statistics.median(t[0] for t in v) for k, v in times.items()},
        "speedup": ratios(times, "pythae", "ours", 0),
        "speedup_cpu_time": ratios(times, "pythae", "ours", 1),
        "ceiling": ratios(times, "pythae", "our_matmuls", 0),
        "ops_per_step": {"ours": ops_per_step(ours, "cpu"), "pythae": ops_per_step(theirs, "cpu")},
        "mflop_per_sample": {
            "ours": flops_per_sample(trainer.model, lambda: trainer.model(x), x) / 1e6,
            "pythae": flops_per_sample(theirs_model, lambda: theirs_model({"data": x}), x) / 1e6},
    }
    report(figures)
    if args.json:
        write_file(args.json, json.dumps(figures, indent=2))


def report(f):
    ms, mflop = f["ms_per_step"], f["mflop_per_sample"]
    ops = {k: f"{v['aten_ops']:,} aten ops" + (f" + {v['compiled_cpu_kernels']:,} compiled kernels"
                                               if v["compiled_cpu_kernels"] else "")
           for k, v in f["ops_per_step"].items()}
    print(f"config           {f['config']} {' '.join(f['overrides'])}, batch {f['batch']}, "
          f"{f['threads']} threads, load average {f['load_avg_1min_before']:.1f} -> "
          f"{f['load_avg_1min_after']:.1f}")
    print(f"our step         {'compiled' if f['compiled'] else 'eager'}: {ms['ours']:.1f} ms, "
          f"{ops['ours']}, {mflop['ours']:.2f} MFLOP per sample "
          f"(first step {f['first_step_s']:.1f} s)")
    print(f"pythae VAE step  eager, fused Adam: {ms['pythae']:.1f} ms, {ops['pythae']}, "
          f"{mflop['pythae']:.2f} MFLOP per sample")
    speedup, cpu, ceiling = f["speedup"], f["speedup_cpu_time"], f["ceiling"]
    print(f"speed-up         {speedup['median']:.2f}x pythae (median of {f['rounds']} rounds of "
          f"{f['steps_per_round']} steps each, alternated; mean {speedup['mean']:.3f} ± "
          f"{speedup['se']:.3f} SE); in CPU time {cpu['median']:.2f}x")
    print(f"ceiling          {ceiling['median']:.2f}x pythae: our step's matmuls alone, "
          f"{ms['our_matmuls']:.1f} ms (mean {ceiling['mean']:.3f} ± {ceiling['se']:.3f} SE)")


if __name__ == "__main__":
    sys.exit(run_cli(main))
