"""What an epoch logs, and the check that it is a result.

The log: the means of the training terms over every process (nats per unit), validation
(val_*), the schedules (KL weight, temperature), the graph's edge probabilities, each edge's
value at the freeze and after the last epoch, and the count of skipped steps. The scheduler
steps on it, and TensorBoard shows it.
"""
import math

import torch

from logger.logger import format_value
from trainer import tensorboard
from trainer.edge_values import edge_values
from trainer.evaluation import evaluate, means
from trainer.monitor import is_plateau
from utils import distributed

METRICS = ("loss", "recon", "kl")  # and with validation data val_<name>


def logged_metrics(validated):
    """The numbers every epoch logs (what trainer.monitor may name)."""
    return METRICS + tuple(f"val_{m}" for m in METRICS if validated)


def partial_sum_shapes(model):
    """{term: shape} of the running sums a training step adds to (a checkpoint taken inside an
    epoch holds them)."""
    shapes = {**{m: () for m in METRICS}, "kl_per_node": (model.n_nodes,), "n": ()}
    if model.has_structure_cost:
        shapes["structure_cost"] = ()
    return shapes


def epoch_log(trainer, epoch):
    """The log of an epoch whose training steps are done (trainer.partial_sums)."""
    model, device = trainer.model, trainer.device
    sums = distributed.sum_over_ranks(trainer.partial_sums, device)
    # Skipped steps add zeros (count 0): an epoch of only skipped steps has no training loss.
    log = {"epoch": epoch, **(means(sums) if sums and float(sums["n"]) > 0 else {})}
    log.update(nonfinite_steps=trainer.nonfinite_steps, kl_weight=float(trainer.kl_weight),
               tau=next((float(g.tau) for g in model.gate_sets().values()), None),
               edge_probs=model.edge_probs())
    if trainer.valid_data_loader is not None:
        valid = evaluate(model, trainer.valid_data_loader, device)
        log.update({f"val_{k}": v for k, v in valid.items() if not k.startswith("n_")})
    at_freeze = {name: value for gates in model.gate_sets().values()
                 if gates.learned and gates.schedule.freeze_epoch == epoch - 1
                 for name, value in gates.measured_values_at_freeze().items()}
    if at_freeze:
        log["edge_values_at_freeze"] = at_freeze
    if trainer.measure_edges and epoch == trainer.settings["epochs"]:
        trainer.logger.info("The last epoch: measuring each edge's value on validation data")
        log["edge_values"] = edge_values(model, trainer.valid_data_loader, device)
    if is_plateau(trainer.lr_scheduler):
        trainer.lr_scheduler.step(log[trainer.monitor.metric])
    elif trainer.lr_scheduler is not None:
        trainer.lr_scheduler.step()
    write_tensorboard(trainer, epoch, log)
    return log


def write_tensorboard(trainer, epoch, log):
    if not trainer.writer.enabled:
        return
    rates = {"networks": trainer.optimizer.param_groups[0]["lr"]}
    structure = trainer.structure_optimizer or (
        trainer.optimizer if len(trainer.optimizer.param_groups) > 1 else None)
    if structure is not None:
        rates["structure"] = structure.param_groups[-1]["lr"]
    tensorboard.write_epoch(trainer.writer, log, epoch, rates)
    tensorboard.write_figures(trainer.writer, trainer.model, trainer.valid_data_loader
                              or trainer.data_loader, trainer.device, epoch,
                              trainer.config["seed"])


def stop_unless_finite(trainer, epoch, log):
    """An epoch without one finite training step, or with a non-finite number in its log or
    weights, is no result: the run stops (exit status 2) with checkpoint-latest set back to the
    last state known finite, instead of saving it and ending as if it had trained."""
    if "loss" not in log:
        what = "no finite training loss (every step was non-finite)"
    else:
        bad = next((key for key, value in log.items() if not all_finite(value)), None)
        if bad is None and all(bool(torch.isfinite(t).all()) for t in
                               trainer.model.state_dict().values() if t.is_floating_point()):
            return
        what = f"a non-finite {bad} ({format_value(log[bad])})" if bad else "non-finite weights"
    raise trainer.diverged(f"epoch {epoch} ended with {what}")


def all_finite(value):
    """Whether every number in a log (nested lists and dicts) is finite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(map(all_finite, value))
    if isinstance(value, dict):
        return all(map(all_finite, value.values()))
    return True
