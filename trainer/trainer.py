"""The training loop of every model: one ELBO step per batch, validation, TensorBoard.

Batches are image tensors (B, D) or sequence dicts {"x", "mask"}; with trainer.tbptt_steps a
sequence batch is cut into chunks of that many steps, one optimisation step each, the
recurrent state carried (detached) from chunk to chunk: truncated backpropagation in time.
The gates' schedule belongs to the model (model.start_epoch); the KL warm-up and free bits to
the objective (model/objective.py). The structure logits may have an optimiser of their own
(structure_optimizer). With a learned graph and validation data, every edge's value
(trainer/edge_values.py) is measured when the graph freezes and after the last epoch.
"""
import torch
from tqdm import tqdm

from base.base_trainer import BaseTrainer, StopRequested, TrainingDiverged, is_plateau
from data_loader.batches import to_device
from model.objective import negative_elbo
from trainer import step as steps
from trainer import tensorboard
from trainer.edge_values import edge_values
from trainer.evaluation import evaluate, means, running_sums
from utils import distributed

# Steps between the host's looks at the device (each one sync): the flags of skipped steps,
# a stop request under DDP (the ranks agree in an all-reduce) and the progress bar's loss.
LOOK_EVERY = 25
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")
METRICS = ("loss", "recon", "kl")  # the numbers an epoch logs, and with validation val_<name>


class Trainer(BaseTrainer):
    def __init__(self, model, optimizer, config, device, data_loader, valid_data_loader=None,
                 lr_scheduler=None, data_parallel=False, structure_optimizer=None):
        """data_parallel: the training forward pass runs through DistributedDataParallel
        (this process is one of several)."""
        super().__init__(model, optimizer, config, device, lr_scheduler, structure_optimizer)
        cfg = config["trainer"]
        self.data_loader, self.valid_data_loader = data_loader, valid_data_loader
        self.checkpoint_every_steps = cfg["checkpoint_every_steps"]
        self.max_nonfinite_steps = cfg["max_nonfinite_steps"]
        self.tbptt_steps = cfg["tbptt_steps"]
        self.kl_warmup_epochs, self.free_bits = cfg["kl_warmup_epochs"], cfg["free_bits"]
        # The KL weight as a tensor for the step: a changing Python float would make a
        # torch.compile'd step recompile at every epoch of the warm-up.
        self.kl_weight = torch.tensor(1.0, device=device)
        self.amp = cfg["amp"]  # bf16 autocast of the training step (trainer/step.py)
        self.log_every_steps = cfg["log_every_steps"]
        self.measure_edges = cfg["edge_values"] and valid_data_loader is not None
        self.data_parallel = data_parallel
        self.train_forward = steps.data_parallel(model, device) if data_parallel else model
        # The training forward pass and its loss, as one torch.compile'd graph if asked for
        # (self.model stays the plain module that is saved).
        self.compiled = cfg["compile"] or cfg["compile_mode"] is not None
        self.objective = torch.compile(self._objective, mode=cfg["compile_mode"]) \
            if self.compiled else self._objective
        # CUDA graphs (compile_mode reduce-overhead, max-autotune) reuse their output memory
        # at every replay: each step is marked as a new one, and what outlives it is copied.
        self.cuda_graphs = device.type == "cuda" and cfg["compile_mode"] in CUDA_GRAPH_MODES
        self.buffers = steps.BufferGuard(model)
        self.unseen_skips = []  # (batch, flag on the device) of steps the host has not read
        self.step_record = None  # (loss, gradient norm) of a step TensorBoard shows

    def partial_sum_shapes(self):
        """{term: shape} of the running sums a training step adds to (what a checkpoint taken
        inside an epoch holds)."""
        shapes = {**{m: () for m in METRICS}, "kl_per_node": (self.model.n_nodes,), "n": ()}
        if self.model.has_structure_cost:
            shapes["structure_cost"] = ()
        return shapes

    def logged_metrics(self):
        validated = self.valid_data_loader is not None
        return METRICS + tuple(f"val_{m}" for m in METRICS if validated)

    def kl_weight_at(self, epoch):
        """KL warm-up: the KL term's weight in the training objective rises linearly from
        1/warmup to 1 over trainer.kl_warmup_epochs epochs (reported losses are the ELBO)."""
        warmup = self.kl_warmup_epochs
        return min(1.0, epoch / warmup) if warmup else 1.0

    def begin_epoch(self, epoch):
        """The model's gate schedule and the objective's KL weight for `epoch`; when the graph
        freezes now, each edge's value is measured before the networks adapt to it."""
        learned = [g for g in self.model.gate_sets().values() if g.learned]
        was_frozen = [g.is_frozen for g in learned]
        for message in self.model.start_epoch(epoch):
            self.logger.info(message)
        froze = [g for g, before in zip(learned, was_frozen) if g.is_frozen and not before]
        if froze and self.data_parallel:  # the logits get no more gradient: DDP must know
            self.train_forward = None  # the old wrapper's gradient hooks go with it
            self.train_forward = steps.data_parallel(self.model, self.device)
        if froze and self.measure_edges:
            values = edge_values(self.model, self.valid_data_loader, self.device)
            for gates in froze:
                gates.record_values_at_freeze(values)
        self.kl_weight.fill_(self.kl_weight_at(epoch))
        self.model.train()

    def values_at_freeze(self, epoch):
        """{edge: value} measured at the start of `epoch` if the graph froze then, else {}."""
        return {name: value for gates in self.model.gate_sets().values()
                if gates.learned and gates.schedule.freeze_epoch == epoch - 1
                for name, value in gates.measured_values_at_freeze().items()}

    def train_step(self, batch):
        """One ELBO step per chunk of the batch (the batch itself, unless truncated BPTT cuts
        it); returns [(terms, count)], one per chunk. A step whose loss is not finite on some
        rank is skipped, and with it the rest of the batch (earlier chunks keep their
        updates): parameters, optimiser state and buffers (BatchNorm statistics, which the
        forward pass already updated) stay as they were, its terms and count are zeros, and
        its flag waits in unseen_skips until the host reads it (count_skipped_steps). All of
        it on the device: no sync, unless an optimiser cannot skip a step there."""
        self.buffers.remember()
        results, state, skip = [], None, None
        for chunk in steps.chunks(batch, self.tbptt_steps, whole=self.compiled):
            if state is not None:
                chunk["state"] = state
            for optimizer in self.optimizers:
                optimizer.zero_grad(set_to_none=True)
            if self.cuda_graphs:
                torch.compiler.cudagraph_mark_step_begin()
            with steps.autocast(self.device, self.amp):
                output, loss, terms, count = self.objective(chunk, self.kl_weight)
            loss = steps.touching_state(loss, output)
            loss, skip = steps.weighted_and_skipped(loss, count, skip)
            loss.backward()
            self._record_step(terms["loss"])
            steps.step_unless(self.optimizers, skip)
            self.buffers.restore_where(skip)
            results.append(steps.unless_skipped(terms, count, skip))
            state = output.get("state")  # a copy: a CUDA graph's next replay overwrites it
            state = None if state is None else tuple(s.detach().clone() for s in state)
        self.unseen_skips.append((self.batches_done, skip))
        return results

    def count_skipped_steps(self, epoch):
        """Read the flags of the steps since the last look (one sync for all of them): warn
        about each skipped one, and stop the run when too many were."""
        if not self.unseen_skips:
            return
        batches = [batch for batch, _ in self.unseen_skips]
        flags = torch.stack([flag for _, flag in self.unseen_skips]).tolist()
        self.unseen_skips = []
        for batch, skipped in zip(batches, flags):
            if skipped:
                self._count_nonfinite(epoch, batch)

    def _record_step(self, loss):
        """Keep the loss and gradient norm of every log_every_steps-th step for TensorBoard."""
        if self.writer is not None and self.writer.enabled \
                and (self.batches_done + 1) % self.log_every_steps == 0:
            self.step_record = (loss.clone(), steps.gradient_norm(self.model.parameters()))

    def _objective(self, chunk, kl_weight):
        """(model output, training loss, reported terms, count) of one batch or chunk."""
        output = self.train_forward(chunk, posterior_means=False)
        return (output, *negative_elbo(output, kl_weight, self.free_bits))

    def _train_epoch(self, epoch):
        self.begin_epoch(epoch)
        self.data_loader.set_epoch(epoch)
        batches = self.data_loader.iter_from(self.batches_done)
        progress = tqdm(batches, desc=f"epoch {epoch}", leave=False, mininterval=1.0,
                        dynamic_ncols=True, initial=self.batches_done, total=len(self.data_loader),
                        disable=True if not distributed.is_main() else None)  # None: ttys only
        for batch in progress:
            results = self.train_step(to_device(batch, self.device))
            for terms, count in results:
                self.partial_sums = running_sums(terms, count, self.partial_sums)
            self.batches_done += 1
            if self.step_record is not None:
                step = (epoch - 1) * len(self.data_loader) + self.batches_done
                tensorboard.write_step(self.writer, step, *self.step_record)
                self.step_record = None
            if self.batches_done % LOOK_EVERY == 0:
                self.count_skipped_steps(epoch)
                if not progress.disable:
                    progress.set_postfix(loss=f"{results[-1][0]['loss'].item():.2f}")
            self._checkpoint_inside_epoch(epoch)
        self.count_skipped_steps(epoch)
        sums = distributed.sum_over_ranks(self.partial_sums, self.device)
        # Skipped steps add zeros (count 0): an epoch of only skipped steps has no training
        # loss, as one without any step (base_trainer's _stop_unless_finite stops the run).
        log = means(sums) if sums and float(sums["n"]) > 0 else {}
        log.update(nonfinite_steps=self.nonfinite_steps, kl_weight=self.kl_weight_at(epoch),
                   tau=next((float(g.tau) for g in self.model.gate_sets().values()), None),
                   edge_probs=self.model.edge_probs())
        if self.valid_data_loader is not None:
            valid = evaluate(self.model, self.valid_data_loader, self.device)
            log.update({f"val_{k}": v for k, v in valid.items() if not k.startswith("n_")})
        if self.values_at_freeze(epoch):
            log["edge_values_at_freeze"] = self.values_at_freeze(epoch)
        if self.measure_edges and epoch == self.epochs:
            log["edge_values"] = edge_values(self.model, self.valid_data_loader, self.device)
        if is_plateau(self.lr_scheduler):
            self.lr_scheduler.step(log[self.monitor_metric])
        elif self.lr_scheduler is not None:
            self.lr_scheduler.step()
        self._write_tensorboard(epoch, log)
        return log

    def _checkpoint_inside_epoch(self, epoch):
        """Save checkpoint-latest.pth every checkpoint_every_steps, or on a stop request."""
        every = self.checkpoint_every_steps
        periodic = every and self.batches_done % every == 0 \
            and self.batches_done < len(self.data_loader)
        stop = self._stop_requested()
        if periodic or stop:
            self.count_skipped_steps(epoch)  # the checkpoint holds their count
            self._save_mid_epoch(epoch)
        if stop:
            raise StopRequested

    def _stop_requested(self):
        """Whether to stop now. Under DDP every rank stops at the same step: the ranks agree
        every LOOK_EVERY steps (an all-reduce and a sync; a stop waits for it)."""
        if not distributed.active():
            return self.stops.requested
        return self.batches_done % LOOK_EVERY == 0 \
            and distributed.any_true(self.stops.requested, self.device)

    def _checkpoint_state(self, epoch):
        """The base trainer's, and the images' (C, H, W) shape (None for sequences), so that
        sample.py draws them without loading any data."""
        shape = getattr(self.data_loader, "image_shape", None)
        return {**super()._checkpoint_state(epoch),
                "image_shape": None if shape is None else list(shape)}

    def _count_nonfinite(self, epoch, batch):
        self.nonfinite_steps += 1
        self.logger.warning(f"non-finite loss at epoch {epoch}, batch {batch}: "
                            f"step skipped ({self.nonfinite_steps} so far)")
        if self.nonfinite_steps >= self.max_nonfinite_steps:
            where = self._roll_back()
            raise TrainingDiverged(
                f"training stopped after {self.nonfinite_steps} non-finite losses "
                f"(trainer.max_nonfinite_steps); {self.latest_checkpoint} is set back to the "
                f"last state known finite ({where}); {self._resume_advice()}")

    def _write_hparams(self):
        tensorboard.write_hparams(self.writer, self.config)

    def _write_tensorboard(self, epoch, log):
        """The epoch's scalars and figures (trainer/tensorboard.py)."""
        if not self.writer.enabled:
            return
        rates = {"networks": self.optimizer.param_groups[0]["lr"]}
        structure = self.structure_optimizer or (self.optimizer if
                                                 len(self.optimizer.param_groups) > 1 else None)
        if structure is not None:
            rates["structure"] = structure.param_groups[-1]["lr"]
        tensorboard.write_epoch(self.writer, log, epoch, rates)
        tensorboard.write_figures(self.writer, self.model, self.valid_data_loader or
                                  self.data_loader, self.device, epoch, self.config["seed"])
