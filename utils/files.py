"""Writing a file so that it is always whole: the one mechanism behind checkpoints and data
caches.

The new content goes to a temporary file unique to this writer, in the target's folder; it is
flushed to disk (fsync) and renamed over the target (os.replace, atomic), so a crash at any
moment leaves the old file or the new one, never a torn one, and processes that write the same
file at once all succeed (the last rename wins, and every version is whole).
"""
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

UMASK = os.umask(0o022)
os.umask(UMASK)  # read once, restored at once: mkstemp's files get open()'s usual permissions


@contextmanager
def atomic_write(path, check=None):
    """A binary file to write path's new content into; on leaving the block it replaces path,
    whole. check(temporary path), if given, runs before the rename and may refuse the file by
    raising. On any error the temporary file is removed and path is left as it was."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~UMASK)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if check is not None:
            check(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory):
    """Make a rename in directory durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
