"""The types of the settings models declare in their signatures: each a type and a range (an
interval; utils/settings.py reads them), so that a config's values are checked before a model
is built, against the model's own declaration."""
from typing import Annotated

Size = Annotated[int, "[1, inf)"]  # a width, a count
Sizes = Annotated[tuple[int, ...], "[1, inf)"]  # the widths of hidden layers
Probability = Annotated[float, "(0, 1)"]
NonNegative = Annotated[float, "[0, inf)"]
Positive = Annotated[float, "(0, inf)"]


def settings(cls, value):
    """A settings dataclass from a config's object of its keys (None: the defaults)."""
    return value if isinstance(value, cls) else cls(**(value or {}))
