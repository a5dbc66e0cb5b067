"""Shared pieces of the benchmarks: the repository on the path, matmul roofline, FLOP count."""
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from model.networks import GroupedLinear  # noqa: E402


def matmul_gflops(m, k, n, seconds=1.0, dtype=torch.float32):
    """Median GFLOP/s of (m x k) @ (k x n) over repeated runs lasting about `seconds`."""
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(3):
        a @ b
    rates, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(rates) < 5:
        start = time.perf_counter()
        a @ b
        rates.append(2 * m * k * n / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def layer_shapes_roofline(model, batch, dtype=torch.float32):
    """FLOP-weighted harmonic mean of sgemm GFLOP/s at the model's own linear-layer shapes,
    for the forward (batch x in @ in x out) and the two backward matmuls: what the matmul
    library reaches on exactly this model's work."""
    shapes = []
    for module in model.modules():
        if isinstance(module, nn.Linear):
            shapes.append((module.in_features, module.out_features, 1))
        elif isinstance(module, GroupedLinear):
            groups, n_in, n_out = module.weight.shape
            shapes.append((n_in, n_out, groups))
    total_flops, total_seconds = 0.0, 0.0
    for n_in, n_out, repeat in shapes:
        for m, k, n in ((batch, n_in, n_out), (batch, n_out, n_in), (n_in, batch, n_out)):
            flops = 2 * m * k * n * repeat
            total_flops += flops
            total_seconds += flops / (matmul_gflops(m, k, n, 0.2, dtype) * 1e9)
    return total_flops / total_seconds / 1e9


def count_forward_flops(model, run):
    """Matmul FLOPs of one call of run() (2 * rows * in * out per linear layer), from the
    layer shapes seen by forward hooks."""
    total = [0]

    def linear(module, inputs, output):
        rows = inputs[0].numel() // module.in_features
        total[0] += 2 * rows * module.in_features * module.out_features

    def grouped(module, inputs, output):
        groups, n_in, n_out = module.weight.shape
        total[0] += 2 * (inputs[0].numel() // (groups * n_in)) * groups * n_in * n_out

    def recurrent(module, inputs, output):
        rows, gates = inputs[0].shape[0], 4 if isinstance(module, nn.LSTMCell) else 3
        total[0] += 2 * rows * gates * module.hidden_size * (module.input_size + module.hidden_size)

    hooks = []
    for module in model.modules():
        if isinstance(module, nn.Linear):
            hooks.append(module.register_forward_hook(linear))
        elif isinstance(module, GroupedLinear):
            hooks.append(module.register_forward_hook(grouped))
        elif isinstance(module, (nn.LSTMCell, nn.GRUCell)):
            hooks.append(module.register_forward_hook(recurrent))
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    return total[0]
