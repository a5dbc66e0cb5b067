"""The data directory and the files written into it: each failure is one line naming the path
and the fix."""
from pathlib import Path

from utils.errors import DataError, writing

DATA_DIR_FIX = "set data_loader.args.data_dir (--data-dir) to a writable directory"


def data_directory(data_dir):
    """data_dir as a Path; one line if it names a file."""
    path = Path(data_dir)
    if path.exists() and not path.is_dir():
        raise DataError(f"data_dir {path} is a file, not a directory; set "
                        f"data_loader.args.data_dir (--data-dir) to a directory")
    return path


def writing_data(path):
    """Around a write into the data directory: an OSError becomes one line."""
    return writing(path, DATA_DIR_FIX)
