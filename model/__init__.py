"""Models, built by their registered name from a config's `arch` section (model.registry).
This package imports only torch and the standard library."""
from model.graph_vae import GraphLSTMVAE, GraphVAE
from model.recurrent_graph_vae import RecurrentGraphVAE
from model.registry import MODELS

__all__ = ["GraphVAE", "GraphLSTMVAE", "RecurrentGraphVAE", "MODELS"]
