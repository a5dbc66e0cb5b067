"""Models built by type name from a config's `arch` section. This package imports only torch."""
from model.graph_vae import GraphLSTMVAE, GraphVAE
from model.recurrent_graph_vae import RecurrentGraphVAE

__all__ = ["GraphVAE", "GraphLSTMVAE", "RecurrentGraphVAE"]
