"""Owner-only files and folders, whatever the process umask.

Everything the gateway keeps under its state directory (the PKI, the history database and its
WAL/SHM files, anything added later) is created with mode 0700 (folders) or 0600 (files): under
``umask 000`` a folder that follows the umask would be 0777, and any local user could drop a
certificate into ``trusted/`` or read the history. The modes are set explicitly with ``os.open``
/ ``os.mkdir`` and then ``chmod``-ed, so neither the umask nor an existing file with wider bits
changes the result.

Pure file-system helpers with no gateway imports: any module that writes state uses them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "private_dir", "private_file", "private_sqlite", "tighten", "write_private"]

SQLITE_SUFFIXES = ("-wal", "-shm", "-journal")

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path | str, *, root: Path | str | None = None) -> Path:
    """Create *path* (and its missing parents) with mode 0700 and return it.

    Folders that already exist keep their mode, except, when *root* is given, every folder from
    *path* up to *root* (both included), which is set to 0700: a folder the gateway owns.
    """
    path = Path(path)
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(d, DIR_MODE)
        os.chmod(d, DIR_MODE)
    if root is not None:
        r = Path(root)
        for d in [path, *path.parents]:
            os.chmod(d, DIR_MODE)
            if d == r:
                break
    return path


def private_file(path: Path | str) -> Path:
    """Create *path* empty with mode 0600 if it does not exist; an existing file is set to 0600."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


def private_sqlite(path: Path | str) -> Path:
    """Make the SQLite database *path* owner-only before it is opened: the file is created 0600
    if missing (SQLite then creates its WAL, SHM and journal files with the same mode) and the
    database and any existing WAL/SHM/journal files are set to 0600."""
    path = Path(path)
    private_file(path)
    for suffix in SQLITE_SUFFIXES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.chmod(side, FILE_MODE)
    return path


def write_private(path: Path | str, data: bytes) -> Path:
    """Write *data* to *path* atomically (temporary file, then rename) with mode 0600."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def tighten(root: Path | str) -> int:
    """Set every folder under *root* (and *root*) to 0700 and every file to 0600; return how
    many modes changed. Symbolic links are not followed."""
    changed = 0
    root = Path(root)
    if not root.exists():
        return 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name, mode in [(dirpath, DIR_MODE)] + [(os.path.join(dirpath, f), FILE_MODE) for f in filenames]:
            st = os.lstat(name)
            if os.path.islink(name):
                continue
            if st.st_mode & 0o777 != mode:
                os.chmod(name, mode)
                changed += 1
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
    return changed
