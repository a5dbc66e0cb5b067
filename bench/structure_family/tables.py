"""The benchmark's tables, rebuilt from its results files alone: results.md (exact recoveries,
SHD, precision, recall and undecided edges per method, over all runs, per kind of DAG and per
DAG), results.json, and edge_values.md (each edge's toggled and refitted value beside the
information it carries)."""
import json
import statistics
from pathlib import Path

from bench.structure_family import scores
from bench.structure_family.shapes import kind_of
from reproduction.report import markdown_table
from reproduction.statistics import fmt, joint_graph, recovery

# The methods of the table: (label, arm whose runs it reads, graph from the search or not).
METHODS = [("joint, λ = 0 (paper)", "paper", False),
           ("search at the freeze (λ_s = 0.03)", "paper", True),
           ("joint, λ = 0.1 (today's, chosen on the chain)", "cost0.1", False)]


def read(path):
    return json.loads(Path(path).read_text()) if Path(path).is_file() else None


def scored_runs(results, arm, search, dags, seeds):
    """{dag name: [score per seed that has finished]} of one method."""
    out = {}
    for name, _ in dags:
        for seed in seeds:
            run = read(Path(results) / "runs" / arm / f"{name}_seed{seed}.json")
            found = read(Path(results) / "search" / arm / f"{name}_seed{seed}.json") if search else None
            if run is None or (search and found is None):
                continue
            kept, undecided = (set(found["kept"]), set()) if search else \
                joint_graph(run["edge_probs"])
            out.setdefault(name, []).append(recovery(kept, run["true_edges"], undecided))
    return out


def dag_label(edges):
    return ", ".join(f"z{j}→z{i}" for j, i in sorted(edges, reverse=True)) or "(no edge)"


def weakest(results, name, seeds):
    runs = [read(Path(results) / "runs" / "paper" / f"{name}_seed{s}.json") for s in seeds]
    info = [v for r in runs if r for v in r["information"].values()]
    return f"{min(info):.2f}" if info else "—"


def coverage(results, dags, seeds):
    """What of the protocol has results (the paper arm's runs per seed): a sentence that says
    plainly when the benchmark is partial."""
    done = {seed: sum((Path(results) / "runs" / "paper" / f"{name}_seed{seed}.json").is_file()
                      for name, _ in dags) for seed in seeds}
    total = len(dags) * len(seeds)
    counts = ", ".join(f"seed {seed}: {n} of {len(dags)}" for seed, n in done.items())
    if sum(done.values()) == total:
        return f"Complete: all {total} (DAG, seed) runs ({counts})."
    return (f"**Partial**: {sum(done.values())} of the {total} (DAG, seed) runs the protocol asks "
            f"for have results ({counts}); every figure below is over the runs that exist, "
            f"and the protocol's verdict needs them all.")


def write_tables(results, dags, seeds, extra=(), description="Every DAG shape on 4 ordered factors"):
    """Write results.md, results.json and edge_values.md into results; extra: DAGs reported
    apart (not in the family's totals); description: what the DAGs are."""
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    by_method = {label: scored_runs(results, arm, search, list(dags) + list(extra), seeds)
                 for label, arm, search in METHODS}
    family = {name for name, _ in dags}
    overall, per_kind, per_dag = [], [], []
    for label, runs in by_method.items():
        flat = [s for name, ss in runs.items() if name in family for s in ss]
        if not flat:
            continue
        result = scores.summary(flat)
        shapes_done = [name for name in family if name in runs]
        at_zero = sum(1 for name in shapes_done if not any(s["exact"] for s in runs[name]))
        overall.append({"method": label, "runs": result["runs"],
                        "exact": f"{result['exact']} ({100 * result['exact'] / result['runs']:.0f} %)",
                        "DAG shapes at 0 %": f"{at_zero} of {len(shapes_done)}",
                        **{k: v for k, v in scores.cells(result).items() if k != "exact"}})
    kinds = sorted({kind_of(edges) for _, edges in dags}, key=lambda k: (k.count("+"), k))
    for kind in kinds:
        names = {name for name, edges in dags if kind_of(edges) == kind}
        row = {"kind": kind, "DAGs": len(names)}
        for label, runs in by_method.items():
            flat = [s for name in names for s in runs.get(name, [])]
            if flat:
                row[label] = scores.cells(scores.summary(flat))["exact"]
        per_kind.append(row)
    for name, edges in list(dags) + list(extra):
        row = {"DAG": dag_label(edges) + (" (committed chain)" if name not in family else ""),
               "kind": kind_of(edges), "weakest edge (nats)": weakest(results, name, seeds)}
        for label, runs in by_method.items():
            if name in runs:
                cell = scores.cells(scores.summary(runs[name]))
                row[f"{label}: exact"] = cell["exact"]
                row[f"{label}: SHD"] = cell["SHD"]
        per_dag.append(row)
    text = (f"# The structure benchmark\n\n{description}, seeds "
            f"{', '.join(map(str, seeds))}; protocol and rules: docs/structure.md (the family "
            "benchmark). Exact: the kept edges are the true DAG and no edge is undecided. SHD, "
            "precision, recall and undecided edges: means over runs.\n\n"
            + coverage(results, dags, seeds) + "\n\n## Over all runs\n\n"
            + markdown_table(overall) + "\n## Exact recoveries per kind of DAG\n\n"
            + markdown_table(per_kind) + "\n## Per DAG\n\n" + markdown_table(per_dag))
    (results / "results.md").write_text(text)
    (results / "results.json").write_text(json.dumps(
        {"coverage": coverage(results, dags, seeds), "overall": overall, "per_kind": per_kind,
         "per_dag": per_dag}, indent=1))
    (results / "edge_values.md").write_text(
        edge_value_text(results, list(dags) + list(extra), seeds, coverage(results, dags, seeds)))
    return text


def edge_value_text(results, dags, seeds, coverage_text=""):
    """Every edge of every searched run: true or not, its information, σ(α) of the joint
    learner, its toggled value (the jointly trained networks, one gate flipped) and its refitted
    value (L_16 with the priors refitted) ± standard error; and a summary of the margins."""
    rows, true_refit, false_refit, true_toggled, false_toggled = [], [], [], [], []
    for name, edges in dags:
        for seed in seeds:
            run = read(Path(results) / "runs" / "paper" / f"{name}_seed{seed}.json")
            found = read(Path(results) / "search" / "paper" / f"{name}_seed{seed}.json")
            if run is None or found is None:
                continue
            for edge, value in found["refitted_values"].items():
                true = edge in run["true_edges"]
                toggled = run["edge_values"].get(edge)
                (true_refit if true else false_refit).append(value)
                (true_toggled if true else false_toggled).append(toggled)
                rows.append({"DAG": dag_label(edges), "seed": seed, "edge": edge,
                             "true": "yes" if true else "",
                             "information (nats)": fmt(run["information"].get(edge)),
                             "σ(α)": f"{run['edge_probs'][edge]:.2f}",
                             "toggled value": fmt(toggled, digits=3),
                             "refitted value": f"{value:.3f} ± {found['refitted_se'][edge]:.3f}",
                             "kept by the search": "yes" if edge in found["kept"] else ""})
    spread = lambda v: (f"min {min(v):.3f}, median {statistics.median(v):.3f}, max {max(v):.3f}"  # noqa: E731
                        if v else "—")
    return ("# Edge values of the structure benchmark (arm paper, at the freeze)\n\n"
            + (coverage_text + "\n\n" if coverage_text else "")
            + f"- refitted, true edges: {spread(true_refit)}\n- refitted, other edges: "
            f"{spread(false_refit)}\n- toggled, true edges: {spread(true_toggled)}\n"
            f"- toggled, other edges: {spread(false_toggled)}\n\n" + markdown_table(rows)
            if rows else "# Edge values\n\nNo searched run yet.\n")
