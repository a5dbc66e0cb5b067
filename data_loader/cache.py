"""Data caches built on first use (decompressed or converted data under data_dir).

A cache is written whole or not at all (utils.files.atomic_write: a temporary file of the
writer's own, renamed over the target), so processes that build the same cache at once all
succeed; under torchrun only local rank 0 builds while the others wait
(utils.distributed.local_main_first, around the loaders). A cache found broken (truncated by a
crash, or another kind of file) is built again, with a warning that names it.
"""
import sys

from data_loader.data_dir import writing_data
from utils.errors import DataError
from utils.files import atomic_write, remove_stale


class BrokenCache(DataError):
    """A cache file that is not whole: truncated, corrupt or not the expected data."""


def cached(path, load, write):
    """load(path), after building the cache with write(file) if it is missing or broken.

    load returns the cached data or raises BrokenCache; write writes the whole cache into a
    binary file (a temporary one, renamed to path when write returns)."""
    if path.is_file():
        try:
            return load(path)
        except BrokenCache as e:
            print(f"warning: {path} is not a whole cache ({e}); building it again",
                  file=sys.stderr)
    # Said, so that a mistyped data_dir is seen filling a new folder rather than found later.
    print(f"Building {path} (once per data_dir)", flush=True)
    with writing_data(path):  # an unwritable data_dir is one line
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(path)  # of a build killed mid-way: tens of MB each
        with atomic_write(path) as f:
            write(f)
    return load(path)
