"""The paper's comparison (Table 1 style) in one command, with honest statistics:

    python reproduce.py --dataset fashion_mnist --epochs 100 --seeds 0 1 2 -k 1000

trains every model (VAE, Ladder VAE, FC-VAE, the gate-noise control and GraphVAE) with the
same budget and settings for every seed, evaluates each final checkpoint on the whole test set
(ELBO, KL and active units per node, importance-sampled log p(x) with K samples), and writes
to --results (default docs/results/<dataset>/):

  runs/<model>_seed<k>.json, .npz   one finished run: its test results, history and graph
                                    (small: commit them), and its per-image values
  results.md, results.json          the table: mean ± SD over seeds, the paired per-image
                                    difference to GraphVAE (mean ± standard errors), active
                                    units, and in how many seeds GraphVAE keeps each edge;
                                    for 8-bit images (CIFAR-10, or --set
                                    data_loader.args.binarize=none arch.args.likelihood=gaussian)
                                    also -log p(x) and -ELBO in bits/dim
  curves.png, graph_seed<k>.png     validation curves, edge probabilities over epochs, graphs

A run whose results file exists (with the same settings) is never trained again, so the table
can be rebuilt from committed results on a machine without any checkpoint; an unfinished run
resumes from its checkpoint in --out. Each run is a job of its own (docs/sweeps.md): on this
machine one run per GPU at a time (--device 0,1: those GPUs; --device cpu: --jobs N at once on
the CPU), or with --launcher slurm a Slurm job per run. --status lists the runs done, running
and failed, with the log to read.
--validation-only trains and tabulates validation numbers without touching the test set (to
choose protocol settings before looking at any test number).

--sweep KEY=V1,V2,... (repeatable) trains every model once per combination of the values, e.g.

    python reproduce.py --dataset synthetic_dag --models graph_vae --seeds 0 1 2 \\
        --sweep arch.args.decoder=mlp,block arch.args.structure_prior.edge_penalty=0,0.1,0.3

each combination a row of its own (runs/<model>-<values>_seed<k>.json). On a data set with a
known DAG (synthetic_dag) the table reports edge precision, recall and structural Hamming
distance of the learned graphs; with learned graphs, sparsity.png plots the validation ELBO
against the number of kept edges, and the edge values of every row are tabulated.
"""
import sys
from pathlib import Path

from launcher import settings as launch_settings
from launcher.launch import launch
from launcher.run import Run
from reproduction.checks import (
    check_numbers,
    check_writable_dir,
    job_gpus,
    print_status,
)
from reproduction.report import check_replaceable, write_outputs
from reproduction.runs import (
    CIFAR10_CONFIGS,
    DEFAULT_MODELS,
    IMAGE_DATASETS,
    MODELS,
    REFERENCES,
    SEQUENCE_DATASETS,
    SEQUENCE_MODELS,
    SYNTHETIC_CONFIGS,
    check_configs,
    read_run,
    run_key,
    run_one,
    settings_of,
    variants,
)
from utils.help_format import parser as help_parser


def parse_args(argv):
    parser = help_parser(__doc__)
    parser.add_argument("--dataset", default="fashion_mnist",
                        choices=IMAGE_DATASETS + SEQUENCE_DATASETS,
                        help="the data set every model is trained and evaluated on")
    parser.add_argument("--epochs", type=int, default=100, help="training epochs of every model")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="the runs' seeds: every model is trained once per seed (the "
                             "statistics are over seeds)")
    parser.add_argument("-k", "--samples", type=int, default=1000,
                        help="importance samples per test example for log p(x)")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), metavar="MODEL",
                        help=f"the models to compare, of {', '.join(MODELS)} (default: the "
                             f"four models and the control for images, VRNN and "
                             f"RecurrentGraphVAE for sequences, GraphVAE on synthetic_dag)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config overrides applied to every model")
    parser.add_argument("--results", help="where the results go (default: <--out>/<dataset>/"
                                          "results; the published ones: docs/results/<dataset>)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a table in --results made with other settings")
    parser.add_argument("--out", default="saved/reproduce",
                        help="where the runs' checkpoints go (a folder per data set below it)")
    parser.add_argument("--device", help="cpu, or the GPUs the runs share (cuda: all visible "
                                         "ones, the default when there are any; cuda:N, N, "
                                         "N,M: those); a run takes one")
    parser.add_argument("--test-limit", type=int, default=None,
                        help="evaluate the first N test examples only (default: the whole test "
                             "split)")
    parser.add_argument("--validation-only", action="store_true",
                        help="train and report validation numbers; never touch the test set")
    parser.add_argument("--sweep", nargs="+", default=[], metavar="KEY=V1,V2",
                        help="train every model once per combination of these config values")
    launch_settings.add_flags(parser)
    return parser.parse_args(argv)


def main(argv=None):
    from utils.errors import ConfigError
    args = parse_args(argv)
    kind = "image" if args.dataset in IMAGE_DATASETS else "sequence"
    args.models = args.models or (["graph_vae"] if args.dataset == "synthetic_dag"
                                  else DEFAULT_MODELS[kind])
    wrong = [m for m in args.models if (m in SEQUENCE_MODELS) != (kind == "sequence")]
    if wrong:
        raise ConfigError(f"--models {' '.join(wrong)} do not fit the {kind} dataset {args.dataset}")
    check_numbers(args)
    for dataset, configs in (("cifar10", CIFAR10_CONFIGS), ("synthetic_dag", SYNTHETIC_CONFIGS)):
        if args.dataset == dataset and not set(args.models) <= set(configs):
            raise ConfigError(f"{dataset} has configs for --models {' '.join(configs)} only")
    args.out = str(Path(args.out) / args.dataset)
    args.results = args.results or str(Path(args.out) / "results")
    results_dir = Path(args.results)
    for flag, path in (("--results", results_dir), ("--out", Path(args.out))):
        check_writable_dir(flag, path)
    check_replaceable(results_dir, args)
    # Seed by seed, the reference model first: an interrupted run leaves whole seeds behind.
    order = sorted(variants(args.models, args.sweep), key=lambda v: v.model not in REFERENCES)
    jobs_dir = Path(args.out) / "jobs"
    if args.status:
        return print_status(order, args, results_dir, jobs_dir)
    plan = launch_settings.read(args, job_gpus(args) if args.launcher == "local" else [])
    check_configs(order, args)
    todo = [(variant, seed) for seed in args.seeds for variant in order
            if read_run(results_dir, variant.key, seed, settings_of(args, variant)) is None]
    if todo:
        print(f"{len(todo)} run(s) to train and evaluate ({args.launcher} launcher): "
              + ", ".join(f"{v.key} seed {s}" for v, s in todo), flush=True)
        jobs_dir.mkdir(parents=True, exist_ok=True)
        launch([Run(run_key(variant.key, seed), run_one, variant, seed, args, plan.threads)
                for variant, seed in todo], plan, jobs_dir)
    runs_by_variant = {variant: [read_run(results_dir, variant.key, seed,
                                          settings_of(args, variant)) for seed in args.seeds]
                       for variant in variants(args.models, args.sweep)}
    write_outputs(results_dir, runs_by_variant, args)


if __name__ == "__main__":
    from utils.errors import run_cli
    sys.exit(run_cli(main))
