"""Registries: the names a config may use for the things it builds (models, their networks,
likelihoods, edge-gate structures; data sets in data_loader/), each added by the code that
defines it with one decorator:

    @MODELS.register()
    class GraphVAE(BaseModel): ...

    @ENCODERS.register("my_encoder")
    def my_encoder(input_dim, hidden, feature_dim): ...

A config names registered things only; it never names code to import. A researcher's own
module adds to a registry when their script (or `--import my_module`) imports it.
docs/extending.md says what each registry's entries are called with.
"""
import difflib
from typing import Annotated


class Registry:
    def __init__(self, kind):
        self.kind, self.entries = kind, {}

    def register(self, name=None):
        """A decorator that adds a class or function under name (default: its own name)."""
        def add(thing):
            key = name or thing.__name__
            if key in self.entries and self.entries[key] is not thing:
                raise ValueError(f"{self.kind} {key!r} is registered already")
            self.entries[key] = thing
            return thing
        return add

    def __contains__(self, name):
        return name in self.entries

    def __getitem__(self, name):
        if name not in self.entries:
            raise LookupError(f"unknown {self.kind} {name!r}; {self.unknown(name)}")
        return self.entries[name]

    def names(self):
        return list(self.entries)

    def unknown(self, name):
        """What to say of a name nothing registered: the closest name, or all of them."""
        close = difflib.get_close_matches(str(name), self.names(), n=1)
        return f"did you mean {close[0]!r}?" if close else \
            f"registered {self.kind}s: {', '.join(self.names())} (one of your own is there " \
            f"once its module is imported: --import MODULE)"


def one_of(registry):
    """The annotation of a setting that names an entry of registry: checked against the names
    registered when the config is read (a user's module may have added some), not when the
    class that declares it was defined."""
    return Annotated[str, registry]


MODELS = Registry("model")
ENCODERS = Registry("encoder")  # (input_dim, hidden, feature_dim) -> (B, D) to (B, feature_dim)
# (n_nodes, node_dim, hidden, likelihood) -> (..., N, d) latents to (..., likelihood.n_params)
DECODERS = Registry("decoder")
TOP_DOWN = Registry("top-down network")  # (n_nodes, node_dim, hidden): model/top_down.py
LIKELIHOODS = Registry("likelihood")  # classes of (width, **options): model/likelihoods.py
STRUCTURES = Registry("structure")  # edges -> fixed gates, or None (learned): model/edge_gates.py
