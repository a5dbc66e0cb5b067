"""The structure benchmark: does GraphVAE recover the true latent DAG, over every DAG shape?

    python -m bench.structure_family                      # train what is missing, then tables
    python -m bench.structure_family --tables-only        # rebuild the tables from the results
    python -m bench.structure_family --retrain            # train every run again

trains, for each arm (the joint learner's settings: runs.ARMS) and each seed, GraphVAE with
the block decoder on every DAG shape on --factors ordered factors (shapes.py: 31 on 4), up to
the graph's freeze, one run at a time, each with one thread; a run whose results file exists
is not trained again (--retrain: it is; an interrupted --retrain pass resumes without the
flag). Results: <results>/runs/<arm>/<dag>_seed<k>.json; checkpoints under --out.
"""
import argparse
import sys

from bench.structure_family import runs, shapes

RESULTS = "docs/results/structure_family"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="+", default=["paper"], choices=list(runs.ARMS))
    parser.add_argument("--factors", type=int, default=4, help="factors (nodes) of the DAGs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--dags", nargs="+", help="only these DAGs (names as in shapes.py)")
    parser.add_argument("--out", default="saved/structure_family", help="checkpoints")
    parser.add_argument("--results", default=RESULTS)
    parser.add_argument("--retrain", action="store_true",
                        help="train every run again, even where its results file exists")
    parser.add_argument("--tables-only", action="store_true",
                        help="train nothing: rebuild the tables from the results files")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    dags = shapes.dag_shapes(args.factors)
    if args.dags:
        unknown = sorted(set(args.dags) - {name for name, _ in dags})
        if unknown:
            from utils.errors import ConfigError
            raise ConfigError(f"--dags: no DAG shape {unknown[0]} on {args.factors} factors")
        dags = [(name, edges) for name, edges in dags if name in args.dags]
    if not args.tables_only:
        for arm in args.arms:
            for seed in args.seeds:  # seed by seed: an interrupted pass leaves whole seeds
                for name, edges in dags:
                    print(f"[{arm} {name} seed {seed}]", flush=True)
                    runs.run_one(arm, name, edges, args.factors, seed, args.out, args.results,
                                 retrain=args.retrain)


if __name__ == "__main__":
    from utils.errors import run_cli
    sys.exit(run_cli(main))
