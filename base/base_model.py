"""Base class of every model: an nn.Module that can say how many parameters it trains."""
from torch import nn


class BaseModel(nn.Module):
    def forward(self, *inputs):
        raise NotImplementedError

    def n_parameters(self):
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def __str__(self):
        return f"{super().__str__()}\nTrainable parameters: {self.n_parameters():,}"
