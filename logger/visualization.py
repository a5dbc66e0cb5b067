"""TensorBoard writer that does nothing when TensorBoard is switched off in the config."""
from torch.utils.tensorboard import SummaryWriter


class TensorboardWriter:
    def __init__(self, log_dir, enabled):
        self.writer = SummaryWriter(str(log_dir)) if enabled else None

    @property
    def enabled(self):
        return self.writer is not None

    def __getattr__(self, name):
        """writer.add_scalar(...) etc. when enabled, a no-op otherwise."""
        if self.writer is None:
            return lambda *args, **kwargs: None
        return getattr(self.writer, name)

    def close(self):
        if self.writer is not None:
            self.writer.close()
