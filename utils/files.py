"""The one writer of the files graphvae writes: whole, in the folder it was given, never
through a link.

A new content goes to a temporary file unique to this writer, created in the target's folder
(O_EXCL | O_NOFOLLOW: a name planted there is never opened); it is flushed to disk (fsync) and
renamed over the target (atomic), so a crash at any moment leaves the old file or the new one,
never a torn one, and processes that write the same file at once all succeed (the last rename
wins, and every version is whole). The folder is opened once and every step names the file
relative to it, so the file lands in that folder whatever is renamed meanwhile. A target that
is a symbolic link is refused: a link planted in a run folder (as config.json, a log, a
results file) would otherwise send the write somewhere else. A writer killed mid-way leaves
its temporary file; remove_stale clears those of writers that are gone.
"""
import errno
import fcntl
import glob
import os
import secrets
import stat
from contextlib import contextmanager, suppress
from pathlib import Path

from utils.errors import UserError

NO_LINK = os.O_NOFOLLOW | os.O_CLOEXEC


class LinkRefused(UserError):
    def __init__(self, path):
        super().__init__(f"{path} is a symbolic link; graphvae writes no file through a link "
                         f"(it could point anywhere): remove the link, or write elsewhere")


@contextmanager
def atomic_write(path, check=None):
    """A binary file to write path's new content into; on leaving the block it replaces path,
    whole. check(temporary path), if given, runs before the rename and may refuse the file by
    raising. On any error the temporary file is removed and path is left as it was."""
    path = Path(path)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if refuse_link(path, folder) == "folder":  # refused before anything is created
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        tmp = f".{path.name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NO_LINK, 0o666, dir_fd=folder)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held while the file is written: see remove_stale
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            if check is not None:
                check(path.parent / tmp)
            os.replace(tmp, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=folder)
            raise
        os.fsync(folder)  # the rename, durable
    finally:
        os.close(folder)


def write_file(path, content):
    """Write content (bytes, or text as UTF-8) to path, whole (atomic_write), read back and
    compared before it replaces the old file (a disk that corrupts writes is found here)."""
    data = content.encode() if isinstance(content, str) else content

    def reads_back(written):
        if written.read_bytes() != data:
            raise OSError(f"{written} does not read back as written")

    with atomic_write(path, check=reads_back) as f:
        f.write(data)


def refuse_link(path, folder=None):
    """A LinkRefused if path (its name in the open folder, if given) is a symbolic link;
    "folder" if it is one."""
    path = Path(path)
    try:
        mode = os.stat(path.name if folder is not None else path, dir_fd=folder,
                       follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise LinkRefused(path)
    return "folder" if stat.S_ISDIR(mode) else None


def open_no_link(path, flags, mode=0o666):
    """os.open(path, flags) that never opens a symbolic link (a LinkRefused instead): for the
    files written in place (a run's lock, its log)."""
    try:
        return os.open(path, flags | NO_LINK, mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise LinkRefused(path) from None
        raise


def real_folders(root, folder):
    """Create folder (inside root) and every folder between them, refusing any that is a
    symbolic link: the folders a run makes under the one the user gave stay inside it."""
    root, folder = Path(root), Path(folder)
    root.mkdir(parents=True, exist_ok=True)  # the user's: followed as given
    for path in [*reversed(folder.relative_to(root).parents), folder.relative_to(root)]:
        if str(path) == ".":
            continue
        refuse_link(root / path)
        (root / path).mkdir(exist_ok=True)
    return folder


def not_a_file(path, what):
    """Why path cannot be read as a file, as a phrase naming what it should be ("config file
    not found: x.json", "config file x.json is a folder, not a file"); None for a regular file
    (or a link to one). A FIFO, a device or a folder is never reported as missing."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"{what} not found: {path}"
    except OSError as e:
        return f"{what} {path} cannot be read ({e.strerror or e})"
    if stat.S_ISREG(mode):
        return None
    kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket")
    return f"{what} {path} is {kind}, not a file"


def remove_stale(path):
    """Remove the temporary files that writers of path killed mid-way (kill -9, a crash)
    left beside it. A live writer holds a lock on its file (atomic_write), so only the files
    of writers that are gone are removed."""
    path = Path(path)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            fd = open_no_link(stale, os.O_RDONLY)
        except (UserError, OSError):
            continue  # a link, gone already, or not ours to open
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            stale.unlink()
        except (BlockingIOError, FileNotFoundError, PermissionError):
            continue  # a live writer's, gone already, or not ours to remove
        finally:
            os.close(fd)
