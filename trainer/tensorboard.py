"""What a training run shows in TensorBoard, one TensorBoard run per training run, and in
MLflow when trainer.mlflow is on (the same calls, logger/run_writers.py; the store is
<save_dir>/mlruns, logger/mlflow_writer.py).

Tags are <quantity>/<split or item>:
  loss/train, loss/valid, recon/..., kl/... (per epoch, nats per unit), loss/train_step and
  grad_norm/train_step (every trainer.log_every_steps steps), lr/networks, lr/structure,
  kl_valid/z0.., active_units_valid/z0.. (per node), bits_per_dim/valid (8-bit images),
  edge_prob/z4->z3, edge_value/.., edge_value_at_freeze/.. (learned graphs),
  structure_cost/train, schedule/tau, schedule/kl_weight, schedule/nonfinite_steps;
and, each epoch, the learned graph, reconstructions and samples, or a sequence model's data, its
reconstructions and generated sequences (logger/figures.py). Every setting of the run goes to
the HParams tab once, when the run starts; its metrics there are the scalar tags themselves
(their latest values).
MLflow takes the settings as the params of its run, and the learned graph as JSON as well.
"""
import json

import torch
from torch.utils.tensorboard.summary import hparams

from data_loader.base_data_loader import to_device
from logger import TensorboardWriter
from logger.mlflow_writer import MlflowWriter, store_of
from logger.run_writers import RunWriters
from utils import ranks

PER_EPOCH = ("loss", "recon", "kl")
HPARAM_METRICS = ("loss/valid", "loss/train", "kl/valid", "bits_per_dim/valid")


def write_epoch(writer, log, epoch, learning_rates):
    """The epoch's scalars from its log (trainer/trainer.py) and the optimisers' rates."""
    scalar = writer.add_scalar
    for key in PER_EPOCH:
        for split, prefix in (("train", ""), ("valid", "val_")):
            if prefix + key in log:
                scalar(f"{key}/{split}", log[prefix + key], epoch)
    if "val_elbo_bits_per_dim" in log:  # 8-bit images: -ELBO in bits/dim
        scalar("bits_per_dim/valid", log["val_elbo_bits_per_dim"], epoch)
    for group, key in (("kl_valid", "val_kl_per_node"), ("active_units_valid", "val_active_units")):
        for node, value in enumerate(log.get(key, [])):
            scalar(f"{group}/z{node}", value, epoch)
    for name, prob in log["edge_probs"].items():
        scalar(f"edge_prob/{name}", prob, epoch)
    for key, tag in (("edge_values_at_freeze", "edge_value_at_freeze"), ("edge_values", "edge_value")):
        for name, value in log.get(key, {}).items():
            scalar(f"{tag}/{name}", value, epoch)
    if "structure_cost" in log:
        scalar("structure_cost/train", log["structure_cost"], epoch)
    for key in ("tau", "kl_weight", "nonfinite_steps"):
        if log.get(key) is not None:
            scalar(f"schedule/{key}", log[key], epoch)
    for name, rate in learning_rates.items():
        scalar(f"lr/{name}", rate, epoch)


class StepScalars:
    """The training loss and gradient norm of every `every`-th step, by global step: recorded
    on the device in the step, written (read: one sync) after it."""

    def __init__(self, every):
        self.every, self.enabled, self.record_ = every, False, None

    def record(self, step, loss, model):
        if self.enabled and (step + 1) % self.every == 0:
            self.record_ = (step + 1, loss.clone(), gradient_norm(model.parameters()))

    def write(self, writer):
        if self.record_ is not None:
            step, loss, grad_norm = self.record_
            writer.add_scalar("loss/train_step", float(loss), step)
            if grad_norm is not None:
                writer.add_scalar("grad_norm/train_step", float(grad_norm), step)
            self.record_ = None


def gradient_norm(parameters):
    """The total 2-norm of the gradients (a tensor on their device: no sync)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])) \
        if grads else None


@torch.no_grad()
def write_figures(writer, model, loader, device, epoch, seed=None):
    """The graph (titled with the epoch and the run's seed), reconstructions of the first
    batch of loader and samples, drawn with their own random numbers (switching TensorBoard
    on does not change training)."""
    from logger.figures import (
        log_epoch_figures,  # matplotlib, only when figures are drawn
    )
    x = to_device(next(iter(loader)), device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        log_epoch_figures(writer, model, x, getattr(loader, "image_shape", None), epoch, seed)


def open_writers(trainer):
    """The run's writers, on the main process only: TensorBoard and MLflow as trainer.tensorboard
    and trainer.mlflow switch them on. A new run states its settings (flat_settings of the
    resolved config) to TensorBoard's HParams tab, a new MLflow run as its params."""
    config, main = trainer.config, ranks.is_main()
    settings = flat_settings(config.config)
    mlflow = MlflowWriter(store_of(config.save_dir), config["name"], config.save_dir,
                          settings, trainer.logger.warning) \
        if main and config["trainer"]["mlflow"] else None
    board = TensorboardWriter(config.log_dir, main and config["trainer"]["tensorboard"])
    if board.enabled and trainer.epoch == 0 and not trainer.batches_done:
        write_hparams(board, settings)
    writers = RunWriters(*filter(None, (mlflow, board)))
    trainer.step_scalars.enabled = writers.enabled
    return writers


def write_hparams(writer, settings):
    """settings, {flat key: value}, for the HParams tab, written once when a run starts; the
    metrics it lists are scalar tags of the run, shown at their latest values."""
    experiment, start, end = hparams(settings, {tag: 0.0 for tag in HPARAM_METRICS})
    for summary in (experiment, start, end):
        writer.file_writer.add_summary(summary)


def flat_settings(value, key=""):
    """Every leaf of a config as {dotted key: a value HParams takes}: a section's type under
    the section's name and its args one level up (arch, arch.n_nodes,
    arch.structure_prior.edge_penalty), nested settings and the trainer's included (trainer.epochs);
    lists and null as JSON text."""
    if isinstance(value, dict) and value and set(value) <= {"type", "args"}:
        return {key: value.get("type"), **flat_settings(value.get("args") or {}, key)}
    if isinstance(value, dict):
        return {flat: leaf for name, inner in value.items()
                for flat, leaf in flat_settings(inner, f"{key}.{name}" if key else name).items()}
    return {key: value if isinstance(value, (bool, int, float, str)) else json.dumps(value)}
