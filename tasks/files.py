"""Atomic, owner-only files: write to a temporary file beside the target, fsync, then os.replace.

What the package writes under var/ holds personal data (segments, ledgers, outbox, alerts),
so every file made here is 0600 and every folder 0700, whatever the process umask.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: str | os.PathLike[str]) -> Path:
    """`path` created owner-only (0700) with its missing parents (also 0700).

    Only the folders created here change mode: an existing folder (a user's log folder, /tmp)
    keeps its own. The var dir itself is made 0700 by config.var_dir.
    """
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    for folder in missing:  # mkdir's mode passes through the umask; chmod does not
        os.chmod(folder, DIR_MODE)
    return path


def private_file(path: str | os.PathLike[str]) -> Path:
    """Create `path` (and its folder) owner-only if it does not exist yet; make it 0600 if it does."""
    path = Path(path)
    private_dir(path.parent)
    if not path.exists():
        # never open (and so close) a file that exists: closing any descriptor of a file drops every POSIX lock
        # this process holds on it, and SQLite's locks are such locks. A second connection opened in a process
        # that already had the database open (the web endpoint's delivery applier beside its stores) released
        # the first one's locks; another process then took the database for unused, checkpointed and removed
        # the WAL, and the first connection's later commits went to a deleted file.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    os.chmod(path, FILE_MODE)
    return path


def append_json_line(path: str | os.PathLike[str], record: Any) -> Path:
    """Append `record` as one JSON line with a single O_APPEND write (whole lines even when several
    processes append at once), to an owner-only file in an owner-only folder."""
    path = Path(path)
    private_dir(path.parent)
    line = json.dumps(record, default=str, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` atomically."""
    target = Path(path)
    private_dir(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file for writing; it replaces `path` atomically when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_json_atomic(path: str | os.PathLike[str], payload: Any) -> None:
    """Write `payload` as indented JSON to `path` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
