"""The structure benchmark: does GraphVAE recover the true latent DAG, over every DAG shape?

    python -m bench.structure_family                 # train and search what is missing, tables
    python -m bench.structure_family --tables-only   # rebuild the tables from the results files
    python -m bench.structure_family --retrain       # train (and search) every run again

For each arm (the joint learner's settings, runs.ARMS) and seed, GraphVAE with the block
decoder is trained on every DAG shape on --factors ordered factors (shapes.py: 31 on 4; the
committed chain beside them) up to the graph's freeze, one run at a time with one thread; on
the arms of --search-arms the graph search (trainer/graph_search.py) then runs on the run's
checkpoint at the freeze. A run or search whose results file exists is not done again
(--retrain: it is; an interrupted --retrain pass resumes without the flag). Results:
<results>/runs/<arm>/, <results>/search/<arm>/ (a JSON file per DAG and seed), results.md,
results.json, edge_values.md; checkpoints under --out. The protocol: docs/structure.md.
"""
import sys

from bench.structure_family import runs, searched, shapes, tables
from utils.help_format import parser as help_parser

RESULTS = "docs/results/structure_family"
COMMITTED_CHAIN = ("n4_31-10", [(3, 1), (1, 0)])  # data_loader/synthetic_dag.py's default


def parse_args(argv):
    parser = help_parser(__doc__)
    parser.add_argument("--arms", nargs="+", default=["paper"], choices=list(runs.ARMS),
                        help="the joint learner's settings to train (runs.ARMS)")
    parser.add_argument("--search-arms", nargs="*", default=["paper"], choices=list(runs.ARMS),
                        help="arms whose runs the graph search is run on")
    parser.add_argument("--factors", type=int, default=4, help="factors (nodes) of the DAGs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="each DAG's seeds (of the run and of the data's generator)")
    parser.add_argument("--dags", nargs="+", help="only these DAGs (names as in shapes.py)")
    parser.add_argument("--random", type=int, metavar="COUNT",
                        help="instead of every shape: COUNT random DAGs (shapes.random_dags, "
                             "drawn from seed --factors)")
    parser.add_argument("--density", type=float, default=0.4,
                        help="with --random: the probability of each candidate edge")
    parser.add_argument("--mechanism", default="linear", choices=["linear", "swirl"],
                        help="the data's mechanism (data_loader/synthetic_dag.py)")
    parser.add_argument("--out", default="saved/structure_family", help="checkpoints")
    parser.add_argument("--results", default=RESULTS, help="where the results files go")
    parser.add_argument("--retrain", action="store_true",
                        help="train and search every run again, even where its results exist")
    parser.add_argument("--tables-only", action="store_true",
                        help="train nothing: rebuild the tables from the results files")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.random:
        family = shapes.random_dags(args.factors, args.density, args.random, args.factors)
        family = list(dict(family).items())  # each DAG once
    else:
        family = shapes.dag_shapes(args.factors)
    extra = [COMMITTED_CHAIN] if args.factors == 4 and not args.random else []
    todo = family + extra
    if args.dags:
        unknown = sorted(set(args.dags) - {name for name, _ in todo})
        if unknown:
            from utils.errors import ConfigError
            raise ConfigError(f"--dags: no DAG {unknown[0]} on {args.factors} factors")
        todo = [(name, edges) for name, edges in todo if name in args.dags]
        family = [dag for dag in family if dag in todo]  # the tables are of these DAGs
        extra = [dag for dag in extra if dag in todo]
    dag_settings = {"mechanism": args.mechanism} if args.mechanism != "linear" else None
    if not args.tables_only:
        for arm in args.arms:
            for seed in args.seeds:  # seed by seed: an interrupted pass leaves whole seeds
                for name, edges in todo:
                    print(f"[{arm} {name} seed {seed}]", flush=True)
                    runs.run_one(arm, name, edges, args.factors, seed, args.out, args.results,
                                 retrain=args.retrain, dag_settings=dag_settings)
                    if arm in args.search_arms:
                        searched.search_run(arm, name, seed, args.out, args.results,
                                            redo=args.retrain)
    description = (f"{args.random} random DAGs on {args.factors} ordered factors (each candidate "
                   f"edge with probability {args.density})" if args.random else
                   f"{len(family)} DAG shapes on {args.factors} ordered factors (--dags)"
                   if args.dags else f"Every DAG shape on {args.factors} ordered factors") + \
        (f", {args.mechanism} mechanism" if args.mechanism != "linear" else "")
    print(tables.write_tables(args.results, family, args.seeds, extra, description))


if __name__ == "__main__":
    from utils.errors import run_cli
    sys.exit(run_cli(main))
