"""Models built by type name from a config's `arch` section."""
from model.graph_vae import GraphVAE

__all__ = ["GraphVAE"]
