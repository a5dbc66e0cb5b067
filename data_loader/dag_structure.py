"""The structure of the synthetic DAG (data_loader/synthetic_dag.py): the checks of its edges,
and its linear-Gaussian side: each factor as a linear map of the noises, the children's mixing
matrices, and the information an edge carries, in closed form."""
import math

import torch


def linear_model(spec, rotations):
    """([L_k], {child: M_k}) of the linear mechanism, float64: z_k = L_k eps over all noises,
    and z_k = rho M_k sum_j R_jk z_j + sqrt(1 - rho^2) eps_k. M_k makes a child's covariance
    I: I / sqrt(k) when its k parents are independent, else C^(-1/2), C the covariance of
    sum_j R_jk z_j."""
    n, d = spec.n_factors, spec.factor_dim
    maps, mixing = [None] * n, {}
    for k in reversed(range(n)):
        parents = spec.parents(k)
        own = torch.zeros(d, n * d, dtype=torch.float64)
        own[:, k * d:(k + 1) * d] = torch.eye(d) * (math.sqrt(1 - spec.strength ** 2)
                                                    if parents else 1.0)
        if parents:
            total = sum(rotations[(j, k)].double() @ maps[j] for j in parents)
            stacked = torch.cat([maps[j] for j in parents])
            if independent(stacked @ stacked.T, d, range(len(parents))):
                mixing[k] = torch.eye(d, dtype=torch.float64) / math.sqrt(len(parents))
            else:
                values, vectors = torch.linalg.eigh(total @ total.T)
                mixing[k] = vectors @ torch.diag(values.rsqrt()) @ vectors.T
            own += spec.strength * mixing[k] @ total
        maps[k] = own
    return maps, mixing


def conditional_information(cov, d, child, parent, others):
    """I(z_child; z_parent | z_others) in nats for jointly Gaussian factors with covariance cov."""
    def logdet_given(given):
        t = list(range(child * d, (child + 1) * d))
        g = [r for k in given for r in range(k * d, (k + 1) * d)]
        block = cov[t][:, t]
        if g:
            block = block - cov[t][:, g] @ torch.linalg.solve(cov[g][:, g], cov[g][:, t])
        return torch.logdet(block).item()
    return 0.5 * (logdet_given(others) - logdet_given(others + [parent]))


def independent(cov, d, nodes):
    """Whether the factors `nodes` are mutually uncorrelated (hence independent: Gaussian)."""
    nodes = list(nodes)
    return all(cov[a * d:(a + 1) * d, b * d:(b + 1) * d].abs().max() < 1e-9
               for a in nodes for b in nodes if a < b)


def edge_pairs(edges):
    """true_edges as a tuple of (parent, child) pairs of whole numbers, or a ValueError."""
    if not isinstance(edges, (list, tuple)) or not all(
            isinstance(e, (list, tuple)) and len(e) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in e) for e in edges):
        raise ValueError(f"true_edges must be a list of [parent, child] pairs of factor "
                         f"indices, got {edges!r}")
    return tuple((int(j), int(i)) for j, i in edges)


def check_dag(edges, n_factors):
    """The edges are distinct, within 0..n_factors-1, acyclic and in the node order."""
    for k, (j, i) in enumerate(edges):
        if not (0 <= j < n_factors and 0 <= i < n_factors):
            raise ValueError(f"true_edges: [{j}, {i}] names a factor outside "
                             f"0..{n_factors - 1}")
        if j == i:
            raise ValueError(f"true_edges: [{j}, {i}] is a loop (z{j} -> z{j})")
        if (j, i) in edges[:k]:
            raise ValueError(f"true_edges: [{j}, {i}] is given twice")
    cycle = find_cycle(edges)
    if cycle:
        raise ValueError("true_edges is not a DAG: it has the cycle "
                         + " -> ".join(f"z{k}" for k in cycle))
    wrong = next(((j, i) for j, i in edges if j < i), None)
    if wrong:
        raise ValueError(f"true_edges: z{wrong[0]} -> z{wrong[1]} goes against the node "
                         f"order (a parent must have a higher index than its child, as "
                         f"GraphVAE's nodes: docs/method.md §1); renumber the factors")


def find_cycle(edges):
    """A cycle of the directed graph as [k0, k1, ..., k0], or None (depth-first search)."""
    children, done = {}, set()
    for j, i in edges:
        children.setdefault(j, []).append(i)

    def visit(node, path):
        for child in children.get(node, []):
            if child in path:
                return path[path.index(child):] + [child]
            if child not in done:
                found = visit(child, path + [child])
                if found:
                    return found
        done.add(node)
        return None

    return next(filter(None, (visit(k, [k]) for k in list(children) if k not in done)), None)
