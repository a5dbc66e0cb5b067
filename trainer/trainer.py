"""The Trainer: fit() runs the epochs, train_step() is one optimisation step, state_dict() and
load_state_dict() are everything a checkpoint holds (PyTorch's convention).

A batch is an image tensor (B, D) or a sequence dict {"x", "mask"}; with trainer.tbptt_steps a
sequence batch is cut into chunks of that many steps, one optimisation step each, the recurrent
state carried (detached) between them. The gates' schedule belongs to the model
(model.start_epoch), the KL warm-up and free bits to the objective (model/objective.py). With a
learned graph, each edge's value (trainer/edge_values.py) is measured when the graph freezes
and after the last epoch. The host looks at the device every LOOK_EVERY steps, not after each.
"""
import logging
import time

import torch
from tqdm import tqdm

from data_loader.base_data_loader import time_chunks, to_device
from logger import console, get_logger
from model.objective import negative_elbo, warmup_weight
from trainer import compiling, fits, resume, tensorboard
from trainer.edge_values import edge_values
from trainer.epoch_log import epoch_log, stop_unless_finite
from trainer.evaluation import running_sums
from trainer.guard import NonFiniteGuard
from trainer.monitor import Monitor
from trainer.saving import RunCheckpoints, StopRequested, TrainingDiverged
from utils import distributed, ranks
from utils.signals import StopRequests

LOOK_EVERY = 25  # steps between the host's looks: skipped steps, a stop request under DDP
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


class Trainer:
    def __init__(self, model, optimizer, config, device, data_loader, valid_data_loader=None,
                 lr_scheduler=None, structure_optimizer=None, data_parallel=False):
        """config: the run's (utils/config.ConfigParser); structure_optimizer: the structure
        logits' own optimiser, if any; data_parallel: this process is one of several (DDP)."""
        cfg = self.settings = config["trainer"]
        self.config, self.device, self.model = config, device, model
        self.data_loader, self.valid_data_loader = data_loader, valid_data_loader
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler
        self.structure_optimizer = structure_optimizer
        self.optimizers = [o for o in (optimizer, structure_optimizer) if o is not None]
        self.logger = get_logger("trainer", cfg["verbosity"] if ranks.is_main() else 0)
        # Progress: the last completed epoch and the position inside the next one.
        self.epoch, self.batches_done, self.partial_sums = 0, 0, None
        self.history, self.nonfinite_steps = [], 0
        self.monitor = Monitor(cfg["monitor"], cfg["early_stop"])
        self.kl_weight = torch.tensor(1.0, device=device)  # a tensor: no recompile per epoch
        self.guard = NonFiniteGuard(model)
        self.data_parallel = data_parallel
        self.train_forward = distributed.wrap_for_ddp(model, device) if data_parallel else model
        planned_steps = cfg["epochs"] * len(data_loader)  # "auto" compiles if they repay it
        self.objective, self.compiled, step_note = compiling.training_objective(
            self._objective, cfg, type(model).__name__, planned_steps, data_parallel)
        # CUDA graphs reuse their output memory at every replay: each step is marked as a new
        # one, and what outlives it is copied.
        self.cuda_graphs = device.type == "cuda" and cfg["compile_mode"] in CUDA_GRAPH_MODES
        self.measure_edges = cfg["edge_values"] and valid_data_loader is not None
        self.checkpoints = RunCheckpoints(config.save_dir, cfg["save_period"], cfg["epochs"])
        self.stops = StopRequests(self.logger.info, ranks.active)
        self.step_scalars = tensorboard.StepScalars(cfg["log_every_steps"])
        self.notes, self.stopped, self.writer = [(logging.INFO, step_note)], False, None
        self.loss_unit = console.loss_unit(model, data_loader)

    # -- one optimisation step ----------------------------------------------------------------
    def train_step(self, batch):
        """One step per chunk of batch (the batch itself unless truncated BPTT cuts it);
        returns [(terms, count)] per chunk. Nothing here waits for the device."""
        results, state = [], None
        self.guard.begin_batch()
        for chunk in time_chunks(batch, self.settings["tbptt_steps"], whole=self.compiled):
            if state is not None:
                chunk["state"] = state
            for optimizer in self.optimizers:
                optimizer.zero_grad(set_to_none=True)
            if self.cuda_graphs:
                torch.compiler.cudagraph_mark_step_begin()
            with torch.autocast(self.device.type, torch.bfloat16, enabled=self.settings["amp"]):
                output, loss, terms, count = self.objective(chunk, self.kl_weight)
            loss = self.guard.weigh(ranks.touching_state(loss, output), count)
            loss.backward()
            self.step_scalars.record(self.global_step(), terms["loss"], self.model)
            self.guard.step(self.optimizers)
            results.append(self.guard.unless_skipped(terms, count))
            state = output.get("state")  # copied: a CUDA graph's next replay overwrites it
            state = None if state is None else tuple(s.detach().clone() for s in state)
        self.guard.end_batch(self.batches_done)
        return results

    def _objective(self, chunk, kl_weight):
        """(model output, training loss, reported terms, count) of one batch or chunk."""
        output = self.train_forward(chunk, posterior_means=False)
        return (output, *negative_elbo(output, kl_weight, self.settings["free_bits"]))

    # -- epochs -------------------------------------------------------------------------------
    def fit(self):
        """Train from the current position to trainer.epochs, saving checkpoints; a stop
        signal saves and returns (self.stopped), a diverged run rolls back and raises."""
        for level, message in self.notes:
            self.logger.log(level, message)
        self.writer = tensorboard.open_writers(self)
        self.checkpoints.remember_good(self.state_dict())
        with self.stops.installed(), self.writer:  # closed at the end, MLflow told how it ended
            try:
                self.run_epochs()
            except StopRequested:
                distributed.barrier()  # no rank leaves before rank 0 has written
                self.stopped, self.writer.outcome = True, "KILLED"
                self.logger.info(f"Stopped on request; checkpoint saved. Resume with:\n    "
                                 f"python train.py --resume {self.checkpoints.latest}")

    def run_epochs(self):
        for epoch in range(self.epoch + 1, self.settings["epochs"] + 1):
            started = time.perf_counter()
            self.begin_epoch(epoch)
            self.train_epoch(epoch)
            log = epoch_log(self, epoch)
            log["seconds"] = time.perf_counter() - started
            self.history.append(log)
            self.epoch, self.batches_done, self.partial_sums = epoch, 0, None
            for line in console.epoch_lines(log, self.loss_unit):
                self.logger.info(line)
            stop_unless_finite(self, epoch, log)
            best = self.monitor.update(log)
            self.checkpoints.save(self.state_dict(), epoch, best, self.logger)
            if self.monitor.exhausted:
                self.logger.info(f"Validation {self.monitor.metric} did not improve for "
                                 f"{self.monitor.patience} epochs: training stops.")
                break

    def begin_epoch(self, epoch):
        """The gates' schedule and the KL weight for epoch; when the graph freezes now, each
        edge's value is measured before the networks adapt to it."""
        learned = [g for g in self.model.gate_sets().values() if g.learned]
        was_frozen = [g.is_frozen for g in learned]
        for message in self.model.start_epoch(epoch):
            self.logger.info(message)
        froze = [g for g, before in zip(learned, was_frozen) if g.is_frozen and not before]
        if froze and self.data_parallel:  # the logits get no more gradient: DDP must know
            self.train_forward = None  # the old wrapper's gradient hooks go with it
            self.train_forward = distributed.wrap_for_ddp(self.model, self.device)
        if froze and self.measure_edges:
            self.logger.info("The graph froze: measuring each edge's value on validation data")
            values = edge_values(self.model, self.valid_data_loader, self.device)
            for gates in froze:
                gates.record_values_at_freeze(values)
        self.kl_weight.fill_(warmup_weight(epoch, self.settings["kl_warmup_epochs"]))
        self.model.train()

    def train_epoch(self, epoch):
        """The epoch's batches from self.batches_done on, their terms summed on the device."""
        self.data_loader.set_epoch(epoch)
        progress = tqdm(self.data_loader.iter_from(self.batches_done), desc=f"epoch {epoch}",
                        leave=False, mininterval=1.0, dynamic_ncols=True,
                        initial=self.batches_done, total=len(self.data_loader),
                        disable=True if not ranks.is_main() else None)  # None: ttys only
        for batch in progress:
            for terms, count in self.train_step(to_device(batch, self.device)):
                self.partial_sums = running_sums(terms, count, self.partial_sums)
            self.batches_done += 1
            self.step_scalars.write(self.writer)
            if self.batches_done % LOOK_EVERY == 0:
                self.count_skipped_steps(epoch)
                if not progress.disable:
                    sums = self.partial_sums
                    progress.set_postfix(loss=f"{float(sums['loss'] / sums['n']):.2f}")
            self.checkpoint_inside_epoch(epoch)
        self.count_skipped_steps(epoch)

    def checkpoint_inside_epoch(self, epoch):
        """checkpoint-latest every trainer.checkpoint_every_steps, and on a stop request
        (under DDP the ranks agree on one every LOOK_EVERY steps: an all-reduce)."""
        every, done = self.settings["checkpoint_every_steps"], self.batches_done
        periodic = every and done % every == 0 and done < len(self.data_loader)
        stop = self.stops.requested if not ranks.active() else \
            done % LOOK_EVERY == 0 and distributed.any_true(self.stops.requested, self.device)
        if periodic or stop:
            self.count_skipped_steps(epoch)  # the checkpoint holds their count
            self.checkpoints.save(self.state_dict())
        if stop:
            raise StopRequested

    def count_skipped_steps(self, epoch):
        for batch in self.guard.read_flags():
            self.nonfinite_steps += 1
            self.logger.warning(f"non-finite loss at epoch {epoch}, batch {batch}: step "
                                f"skipped ({self.nonfinite_steps} so far)")
            if self.nonfinite_steps >= self.settings["max_nonfinite_steps"]:
                raise self.diverged(f"training stopped after {self.nonfinite_steps} non-finite "
                                    f"losses (trainer.max_nonfinite_steps)")

    def diverged(self, what):
        """TrainingDiverged, with checkpoint-latest set back to the last state known finite."""
        where, latest = self.checkpoints.roll_back(), self.checkpoints.latest
        lower = self.optimizer.param_groups[0]["lr"] / 10
        state = (f"{latest} holds {where} again, the state no epoch of this run got past: it "
                 f"or the data gives non-finite losses" if self.checkpoints.only_start else
                 f"{latest} is set back to the last state known finite ({where})")
        return TrainingDiverged(f"{what}; {state}; check the data, or resume from it with a lower "
                                f"learning rate: python train.py --resume {latest} --lr {lower:.3g}")

    def global_step(self):
        """Batches trained since the run began (the x axis of per-step curves)."""
        return self.epoch * len(self.data_loader) + self.batches_done

    # -- state (what a checkpoint holds) --------------------------------------------------------
    def state_dict(self):
        """Everything needed to continue: epoch is the last completed one, batches_done and
        partial_sums the progress inside the next (summed over every process)."""
        shape = getattr(self.data_loader, "image_shape", None)
        return {"arch": type(self.model).__name__, "config": self.config.config,
                "input_dim": self.model.input_dim,
                "image_shape": None if shape is None else list(shape),
                "epoch": self.epoch, "batches_done": self.batches_done,
                "partial_sums": resume.summed_over_ranks(self.partial_sums, self.device),
                "nonfinite_steps": self.nonfinite_steps, "history": self.history,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "structure_optimizer": self.structure_optimizer.state_dict()
                if self.structure_optimizer else None,
                "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler else None,
                **self.monitor.state_dict(), "rng": distributed.gather(resume.rng_state(self.device))}

    def load_state_dict(self, state):
        """Continue the run saved in state (trainer/checkpoint.load_checkpoint's): checked
        against this trainer before anything is loaded (trainer/resume.py); a misfit raises
        fits.Misfit."""
        fits.check_fits(self, state)
        self.model.load_state_dict(state["model"])
        changed = resume.restore_optimizers(self, state)
        self.epoch, self.batches_done = state["epoch"], state["batches_done"]
        self.partial_sums = resume.partial_sums_of_this_rank(state["partial_sums"], self.device)
        # New optimiser settings (e.g. a lower rate after a divergence) get a fresh budget.
        self.nonfinite_steps = 0 if changed else state["nonfinite_steps"]
        self.history = state["history"]
        self.monitor.load_state_dict(state)
        resume.restore_rng(self, state["rng"])
        where = f", batch {self.batches_done}" if self.batches_done else ""
        self.notes.insert(0, (logging.INFO, f"Training continues at epoch {self.epoch + 1}"
                                            f"{where}"))
