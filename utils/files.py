"""Writing a file so that it is always whole: the one mechanism behind checkpoints and data
caches.

The new content goes to a temporary file unique to this writer, in the target's folder; it is
flushed to disk (fsync) and renamed over the target (os.replace, atomic), so a crash at any
moment leaves the old file or the new one, never a torn one, and processes that write the same
file at once all succeed (the last rename wins, and every version is whole). A writer killed
mid-way leaves its temporary file; remove_stale clears those of writers that are gone.
"""
import fcntl
import glob
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
        fcntl.flock(fd, fcntl.LOCK_EX)  # held while the file is written: see remove_stale
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


def write_file(path, content):
    """Write content (bytes, or text as UTF-8) to path, whole (atomic_write), read back and
    compared before it replaces the old file (a disk that corrupts writes is found here)."""
    data = content.encode() if isinstance(content, str) else content

    def reads_back(written):
        if written.read_bytes() != data:
            raise OSError(f"{written} does not read back as written")

    with atomic_write(path, check=reads_back) as f:
        f.write(data)


def remove_stale(path):
    """Remove the temporary files that writers of path killed mid-way (kill -9, a crash)
    left beside it. A live writer holds a lock on its file (atomic_write), so only the files
    of writers that are gone are removed."""
    path = Path(path)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            with open(stale, "rb") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                stale.unlink()
        except (BlockingIOError, FileNotFoundError, PermissionError):
            continue  # a live writer's, gone already, or not ours to remove


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
