"""Models built by type name from a config's `arch` section."""
from model.graph_vae import GraphLSTMVAE, GraphVAE

__all__ = ["GraphVAE", "GraphLSTMVAE"]
