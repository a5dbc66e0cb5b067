"""Registries: the names a config may use for the things it builds (models, data sets,
networks, likelihoods), each added by the code that defines it with one decorator.

    @MODELS.register()
    class GraphVAE(BaseModel): ...

A config names registered things only; it never names code to import. A researcher's own
module adds to a registry when their script (or `--import my_module`) imports it.
"""
import difflib


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
            f"registered {self.kind}s: {', '.join(self.names())}"


MODELS = Registry("model")
