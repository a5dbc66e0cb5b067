"""The training loop of every model: one ELBO step per batch, validation, gate schedule."""
import torch
from tqdm import tqdm

from base import BaseTrainer
from model.loss import means, running_sums

PROGRESS_EVERY = 25  # steps between progress-bar updates (each costs one device sync)


class Trainer(BaseTrainer):
    def __init__(self, model, loss_fn, optimizer, config, device, data_loader,
                 valid_data_loader=None, lr_scheduler=None):
        super().__init__(model, optimizer, config, lr_scheduler)
        self.loss_fn, self.device = loss_fn, device
        self.data_loader, self.valid_data_loader = data_loader, valid_data_loader
        self.temperature = config["trainer"]["temperature"]
        self.freeze_graph_epoch = config["trainer"]["freeze_graph_epoch"]

    def temperature_at(self, epoch):
        """tau = max(floor, init * rate^(epoch-1)): the paper's 0.999^epoch with init 1."""
        t = self.temperature
        return max(t["floor"], t["init"] * t["rate"] ** (epoch - 1))

    def _prepare_gates(self, epoch):
        gates = self.model.gates
        gates.set_temperature(self.temperature_at(epoch))
        if self.freeze_graph_epoch is not None and epoch > self.freeze_graph_epoch \
                and gates.learned and not gates.frozen:
            gates.freeze()
            self.logger.info(f"Graph frozen to its discrete value from epoch {epoch} on.")

    def _train_epoch(self, epoch):
        self._prepare_gates(epoch)
        self.model.train()
        self.data_loader.set_epoch(epoch)
        sums = None
        progress = tqdm(self.data_loader, desc=f"epoch {epoch}", leave=False,
                        mininterval=1.0, dynamic_ncols=True)
        for step, x in enumerate(progress):
            x = x.to(self.device, non_blocking=True)
            self.optimizer.zero_grad(set_to_none=True)
            loss, terms = self.loss_fn(self.model, self.model(x), x)
            loss.backward()
            self.optimizer.step()
            sums = running_sums(terms, x.shape[0], sums)
            if step % PROGRESS_EVERY == 0:
                progress.set_postfix(loss=f"{loss.item():.2f}")
        log = means(sums)
        log["tau"] = float(self.model.gates.tau)
        log["edge_probs"] = self.model.gates.probs().tolist()
        if self.valid_data_loader is not None:
            log.update({f"val_{k}": v for k, v in self.evaluate(self.valid_data_loader).items()})
        if self.lr_scheduler is not None:
            self.lr_scheduler.step()
        self._write_tensorboard(epoch, log)
        return log

    @torch.no_grad()
    def evaluate(self, loader):
        """Mean -ELBO and its terms over loader, with the discrete graph (model.eval())."""
        self.model.eval()
        sums = None
        for x in loader:
            x = x.to(self.device, non_blocking=True)
            _, terms = self.loss_fn(self.model, self.model(x), x)
            sums = running_sums(terms, x.shape[0], sums)
        return means(sums)

    def _write_tensorboard(self, epoch, log):
        for key, value in log.items():
            if isinstance(value, list):
                names = self._edge_names() if key == "edge_probs" else map(str, range(len(value)))
                self.writer.add_scalars(key, dict(zip(names, value)), epoch)
            else:
                self.writer.add_scalar(key, value, epoch)

    def _edge_names(self):
        return [f"z{j}->z{i}" for j, i in self.model.gates.edges]
