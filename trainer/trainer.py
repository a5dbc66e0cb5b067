"""The training loop of every model: one ELBO step per batch, validation, gate schedule.

Batches are image tensors (B, D) or sequence dicts {"x", "mask"}; with trainer.tbptt_steps a
sequence batch is cut into chunks of that many steps, one optimisation step each, the
recurrent state carried (detached) from chunk to chunk: truncated backpropagation in time.
"""
import torch
from tqdm import tqdm

from base import BaseTrainer
from base.base_trainer import StopRequested, TrainingDiverged
from data_loader.batches import time_chunks, to_device
from logger.figures import log_epoch_figures
from model.edge_gates import EdgeGates
from model.loss import means, running_sums
from utils import distributed

PROGRESS_EVERY = 25  # steps between progress-bar updates (each costs one device sync)


class Trainer(BaseTrainer):
    def __init__(self, model, loss_fn, optimizer, config, device, data_loader,
                 valid_data_loader=None, lr_scheduler=None, train_forward=None):
        """train_forward: what runs the training forward pass, e.g. the model wrapped in
        DistributedDataParallel; by default the model itself."""
        super().__init__(model, optimizer, config, device, lr_scheduler)
        self.loss_fn = loss_fn
        self.data_loader, self.valid_data_loader = data_loader, valid_data_loader
        self.temperature = config["trainer"]["temperature"]
        self.freeze_graph_epoch = config["trainer"]["freeze_graph_epoch"]
        self.checkpoint_every_steps = config["trainer"]["checkpoint_every_steps"]
        self.max_nonfinite_steps = config["trainer"]["max_nonfinite_steps"]
        self.tbptt_steps = config["trainer"]["tbptt_steps"]
        self.kl_warmup_epochs = config["trainer"]["kl_warmup_epochs"]
        self.kl_weight = 1.0
        # The same weight as a tensor for the step: a changing Python float would make a
        # torch.compile'd step recompile at every epoch of the warm-up.
        self._kl_weight = torch.tensor(1.0, device=device)
        # bf16 autocast of the training step (matmuls in bf16; the model keeps its Gaussian
        # and likelihood maths in fp32); evaluation always runs in fp32.
        self.amp = config["trainer"]["amp"]
        self.train_forward = model if train_forward is None else train_forward
        # The training forward pass and its loss, as one torch.compile'd graph if asked for
        # (self.model stays the plain module that is saved).
        self.objective = torch.compile(self._objective) if config["trainer"]["compile"] \
            else self._objective
        # Every set of edge gates in the model, e.g. {"gates": ..., "cross_gates": ...}.
        self.gate_sets = {name: m for name, m in model.named_modules() if isinstance(m, EdgeGates)}
        self._float_buffers = [b for b in model.buffers() if b.is_floating_point()]
        self._saved_buffers = [b.detach().clone() for b in self._float_buffers]

    def temperature_at(self, epoch):
        """tau = max(floor, init * rate^(epoch-1)): the paper's 0.999^epoch with init 1."""
        t = self.temperature
        return max(t["floor"], t["init"] * t["rate"] ** (epoch - 1))

    def kl_weight_at(self, epoch):
        """KL warm-up: the KL term's weight in the training objective rises linearly from
        1/warmup to 1 over trainer.kl_warmup_epochs epochs (reported losses are the ELBO)."""
        warmup = self.kl_warmup_epochs
        return min(1.0, epoch / warmup) if warmup else 1.0

    def _prepare_gates(self, epoch):
        freeze = self.freeze_graph_epoch is not None and epoch > self.freeze_graph_epoch
        for name, gates in self.gate_sets.items():
            gates.set_temperature(self.temperature_at(epoch))
            if freeze and gates.learned and not gates.is_frozen:
                gates.freeze()
                self.logger.info(f"{name}: graph frozen to its discrete value from epoch {epoch} on.")

    def _train_step(self, batch):
        """Optimisation step(s) on one batch; returns [(terms, count)] (one per TBPTT chunk),
        or None when a loss is not finite. A non-finite step is skipped: parameters and
        buffers (BatchNorm statistics, which the forward pass already updated) stay as they
        were before it (with TBPTT, the chunks before it keep their updates)."""
        for saved, buffer in zip(self._saved_buffers, self._float_buffers):
            saved.copy_(buffer)
        results, state = [], None
        for chunk in time_chunks(batch, self.tbptt_steps):
            if state is not None:
                chunk["state"] = tuple(s.detach() for s in state)
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                output, loss, terms, count = self.objective(chunk, self._kl_weight)
            if not distributed.all_true(torch.isfinite(loss), self.device):
                for saved, buffer in zip(self._saved_buffers, self._float_buffers):
                    buffer.copy_(saved)
                return None
            loss.backward()
            self.optimizer.step()
            results.append((terms, count))
            state = output.get("state")
        return results

    def _objective(self, chunk, kl_weight):
        """(model output, training loss, reported terms, count) of one batch or chunk."""
        output = self.train_forward(chunk)
        return (output, *self.loss_fn(self.model, output, chunk, kl_weight))

    def _train_epoch(self, epoch):
        self._prepare_gates(epoch)
        self.kl_weight = self.kl_weight_at(epoch)
        self._kl_weight.fill_(self.kl_weight)
        self.model.train()
        self.data_loader.set_epoch(epoch)
        batches = self.data_loader.iter_from(self.batches_done)
        progress = tqdm(batches, desc=f"epoch {epoch}", leave=False, mininterval=1.0,
                        dynamic_ncols=True, initial=self.batches_done, total=len(self.data_loader),
                        disable=not distributed.is_main())
        for batch in progress:
            results = self._train_step(to_device(batch, self.device))
            if results is None:
                self._count_nonfinite(epoch)
            for terms, count in results or []:
                self.partial_sums = running_sums(terms, count, self.partial_sums)
            self.batches_done += 1
            if self.batches_done % PROGRESS_EVERY == 0 and results:
                progress.set_postfix(loss=f"{results[-1][0]['loss'].item():.2f}")
            self._checkpoint_inside_epoch(epoch)
        log = means(distributed.sum_over_ranks(self.partial_sums, self.device))
        log["nonfinite_steps"] = self.nonfinite_steps
        log["tau"] = self.temperature_at(epoch)
        log["kl_weight"] = self.kl_weight
        for name, gates in self.gate_sets.items():
            log[f"{name.replace('gates', 'edge')}_probs"] = gates.probs().tolist()
        if self.valid_data_loader is not None:
            log.update({f"val_{k}": v for k, v in self.evaluate(self.valid_data_loader).items()})
        if self.lr_scheduler is not None:
            self.lr_scheduler.step()
        self._write_tensorboard(epoch, log)
        return log

    def _log_figures(self, epoch):
        """Reconstructions, prior samples and the graph picture for TensorBoard."""
        loader = self.valid_data_loader or self.data_loader
        x = to_device(next(iter(loader)), self.device)
        # Own random numbers, so that switching TensorBoard on does not change training.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            log_epoch_figures(self.writer, self.model, x, getattr(loader, "image_shape", None),
                              epoch)

    def _checkpoint_inside_epoch(self, epoch):
        """Save checkpoint-latest.pth every checkpoint_every_steps, or on a stop request."""
        every = self.checkpoint_every_steps
        periodic = every and self.batches_done % every == 0 \
            and self.batches_done < len(self.data_loader)
        stop = distributed.any_true(self.stop_requested, self.device)  # every rank stops together
        if periodic or stop:
            self._save_mid_epoch(epoch)
        if stop:
            raise StopRequested

    def _count_nonfinite(self, epoch):
        self.nonfinite_steps += 1
        self.logger.warning(f"non-finite loss at epoch {epoch}, batch {self.batches_done}: "
                            f"step skipped ({self.nonfinite_steps} so far)")
        if self.nonfinite_steps >= self.max_nonfinite_steps:
            self._save_mid_epoch(epoch)
            raise TrainingDiverged(
                f"training stopped after {self.nonfinite_steps} non-finite losses "
                f"(trainer.max_nonfinite_steps); the last good state is saved in "
                f"{self.latest_checkpoint}: lower optimizer.args.lr and resume from it")

    @torch.no_grad()
    def evaluate(self, loader):
        """Mean -ELBO and its terms over loader, with the discrete graph (model.eval())."""
        self.model.eval()
        sums = None
        for batch in loader:
            batch = to_device(batch, self.device)
            _, terms, count = self.loss_fn(self.model, self.model(batch), batch)
            sums = running_sums(terms, count, sums)
        return means(distributed.sum_over_ranks(sums, self.device))

    def _write_tensorboard(self, epoch, log):
        if not self.writer.enabled:
            return
        self._log_figures(epoch)
        for key, value in log.items():
            if isinstance(value, list):
                names = self._edge_names(key) if key.endswith("edge_probs") \
                    else map(str, range(len(value)))
                self.writer.add_scalars(key, dict(zip(names, value)), epoch)
            else:
                self.writer.add_scalar(key, value, epoch)

    def _edge_names(self, key):
        gates = self.gate_sets[key.replace("edge", "gates").replace("_probs", "")]
        return [f"z{j}->z{i}" for j, i in gates.edges]

