"""Shared pieces of the benchmarks (run them from the repository: python -m bench.NAME):
matmul roofline, FLOP count, operators per step, the next batch of a loader without end,
the device --device names."""
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from cli import use_devices
from model.networks import GroupedLinear
from utils import distributed

REPO = Path(__file__).resolve().parents[1]


def endless(loader):
    """Batches of loader, epoch after epoch."""
    epoch = 0
    while True:
        epoch += 1
        loader.set_epoch(epoch)
        yield from loader


def bench_device(text):
    """(torch.device, n_gpu) of --device (the forms every script takes: cpu, cuda, cuda:N,
    N); one device: a benchmark runs one process (torchrun starts more)."""
    devices = use_devices(text, at_most=1, script="a benchmark")
    return distributed.local_device(devices.gpu), devices.n_gpu


# What a host calls to start work on a GPU: a kernel, or a whole CUDA graph (its replay).
LAUNCHES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx",
            "cudaGraphLaunch", "cuGraphLaunch")


def ops_per_step(run, device):
    """What one call of run() asks of the machine, from torch.profiler: operator calls at the
    dispatcher (aten ops not inside another: what eager mode pays a per-operator cost on),
    the calls of a compiled step's fused CPU kernels, and on a GPU the launches the host makes
    (kernels, CUDA graph replays) and the kernels that run (a replayed graph runs many from
    one launch)."""
    cuda = torch.device(device).type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as profiler:
        run()
        synchronize(device)
    events = profiler.events()
    counts = {"aten_ops": sum(1 for e in events if e.name.startswith("aten::")
                              and not inside_aten(e)),
              # a compiled step's own fused kernels on a CPU (with profile_compiled_kernels)
              "compiled_cpu_kernels": sum(1 for e in events if "cpp_fused" in e.name)}
    if cuda:
        counts["launches"] = sum(1 for e in events if e.name in LAUNCHES)
        counts["kernels"] = sum(1 for e in events if e.device_type.name == "CUDA")
    return counts


def profile_compiled_kernels():
    """Make the CPU kernels that torch.compile generates from now on show in torch.profiler
    (one event per call): what a compiled step launches besides its aten ops."""
    import torch._inductor.config
    torch._inductor.config.cpp.enable_kernel_profile = True


def inside_aten(event):
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return True
        parent = parent.cpu_parent
    return False


def synchronize(device):
    """Wait for the device's queued work (GPU kernels run asynchronously to the host)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(run, device):
    """Seconds one call of run() takes on device."""
    synchronize(device)
    start = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - start


def matmul_gflops(m, k, n, seconds=1.0, dtype=torch.float32, device="cpu"):
    """Median GFLOP/s of (m x k) @ (k x n) over repeated runs lasting about `seconds`."""
    a = torch.randn(m, k, dtype=dtype, device=device)
    b = torch.randn(k, n, dtype=dtype, device=device)
    for _ in range(3):
        a @ b
    rates, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(rates) < 5:
        rates.append(2 * m * k * n / timed(lambda: a @ b, device) / 1e9)
    return statistics.median(rates)


def record_matmuls(model, run):
    """The matmuls of one call of run() and of the backward pass that would follow it, from
    forward hooks on the model's linear, grouped and recurrent layers.

    Returns [(m, k, n, repeat)]: a product of (m x k) by (k x n), repeat times. A layer with
    r rows, n_in inputs and n_out outputs does r x n_in by n_in x n_out forward; backward,
    its weight gradient (n_in x r by r x n_out) and, only where its input needs a gradient,
    the input gradient (r x n_out by n_out x n_in): the first layer of the encoder has none
    (its input is the data), so a training step is not simply 3x its forward pass.
    """
    products = []

    def add(rows, n_in, n_out, repeat, input_needs_grad):
        products.append((rows, n_in, n_out, repeat))
        if torch.is_grad_enabled():
            products.append((n_in, rows, n_out, repeat))
            if input_needs_grad:
                products.append((rows, n_out, n_in, repeat))

    def linear(module, inputs, output):
        add(inputs[0].numel() // module.in_features, module.in_features, module.out_features,
            1, inputs[0].requires_grad)

    def grouped(module, inputs, output):
        groups, n_in, n_out = module.weight.shape
        add(inputs[0].numel() // (groups * n_in), n_in, n_out, groups, inputs[0].requires_grad)

    def recurrent(module, inputs, output):
        gates = 3 if isinstance(module, nn.GRUCell) else 4
        steps = inputs[0].shape[1] if isinstance(module, nn.LSTM) else 1  # batch-first LSTM
        add(inputs[0].shape[0], module.input_size + module.hidden_size,
            gates * module.hidden_size, steps, inputs[0].requires_grad)

    hooks = []
    for module in model.modules():
        if isinstance(module, nn.Linear):
            hooks.append(module.register_forward_hook(linear))
        elif isinstance(module, GroupedLinear):
            hooks.append(module.register_forward_hook(grouped))
        elif isinstance(module, (nn.LSTMCell, nn.GRUCell, nn.LSTM)):
            hooks.append(module.register_forward_hook(recurrent))
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    return products


def matmul_flops(products):
    return sum(2 * m * k * n * repeat for m, k, n, repeat in products)


class Roofline:
    """The matmul library's speed on a step's own products, measured again and again.

    seconds() times every distinct (m, k, n) once warm and `repeats` more times, and returns
    how long the step's products would take at the median of those speeds: the time the
    step would need if it did nothing but its matmuls, as fast as the library does them with
    warm caches. Measured between timed windows of steps, it follows the machine's speed
    (on a shared machine that changes from minute to minute) along with the step.
    """

    def __init__(self, products, repeats=5, dtype=torch.float32, device="cpu"):
        self.repeats = repeats
        self.count = {}
        for m, k, n, repeat in products:
            self.count[(m, k, n)] = self.count.get((m, k, n), 0) + repeat
        self.device = device
        self.operands = {shape: (torch.randn(shape[0], shape[1], dtype=dtype, device=device),
                                 torch.randn(shape[1], shape[2], dtype=dtype, device=device))
                         for shape in self.count}
        self.flops = matmul_flops(products)

    def run(self):
        """The step's products, each as many times as the step does them (warm operands)."""
        for shape, (a, b) in self.operands.items():
            for _ in range(self.count[shape]):
                a @ b

    def seconds(self):
        total = 0.0
        for shape, (a, b) in self.operands.items():
            a @ b
            times = [timed(lambda: a @ b, self.device) for _ in range(self.repeats)]
            total += statistics.median(times) * self.count[shape]
        return total
