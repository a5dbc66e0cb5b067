"""Data loaders, built by their registered name from the config's `data_loader` section.

Each constructor's signature declares its settings (type, range, default: utils/settings.py);
split, seed, num_replicas and rank are set by the program. A researcher's own loader is
registered with @DATA_LOADERS.register() (docs/extending.md)."""
from data_loader.image_loader import ImageDataLoader
from data_loader.sequence_loaders import PianoRollDataLoader, StrokesDataLoader
from model.registry import Registry

DATA_LOADERS = Registry("data loader")
PROGRAM_SET = ("split", "seed", "num_replicas", "rank")  # what a config never sets
for loader in (ImageDataLoader, StrokesDataLoader, PianoRollDataLoader):
    DATA_LOADERS.register()(loader)
