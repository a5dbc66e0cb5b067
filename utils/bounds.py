"""Bounds that keep a run finite on one machine, each named once and stated in the error that
enforces it. Config settings declare theirs as intervals where they are used (trainer.epochs
in utils/config.py, arch.args.n_nodes in model/graph_vae.py, a model's size in
utils/model_size.py); the command line's counts are checked by integer() here, as argparse
reads them."""
import argparse
import os

# 100 times the paper's protocol (100 epochs): epochs=10**25 would write checkpoints until
# the disk is full.
MAX_EPOCHS = 10_000
# Importance samples per example for log p(x): 20 times the paper's 5000 (each is a forward
# pass; 10**9 would run for days).
MAX_SAMPLES = 100_000
# The CPU cores this process may run on: the most threads or processes worth starting.
CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def integer(low=1, high=None, bound=""):
    """An argparse type: an integer from low to high (bound: what high is, for the error)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < low or high is not None and value > high:
            within = f"from {low} to {high}" + (f" ({bound})" if bound else "") \
                if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be an integer {within}, got {value}")
        return value
    return parse


# A count of threads or processes on this machine (bench --threads, --procs).
at_most_cpus = integer(1, CPUS, "this machine's CPU cores")
# -k, importance samples (0: none, where a script may skip log p(x)).
samples = integer(0, MAX_SAMPLES, "20 times the paper's 5000")
