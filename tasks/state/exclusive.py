"""Exclusive locks that die with their holder: flock files (one host) or Postgres advisory locks (every host).

A lock is held for as long as the process keeps it, and released by the kernel (flock) or by
the server when the session ends (advisory), so a SIGKILLed holder never leaves a stale lock:
no lease to expire, no pid file to trust. An advisory lock is a session lock on a connection
of its own with TCP keepalives, so a host that vanished releases it within about a minute.
These are the two kinds; which one a lock is, the state backend says (tasks/state/locks.py).
Reads no luigi.cfg section.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.files import FILE_MODE, private_dir


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for `name` (the same in every process and on every host)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@dataclass(frozen=True)
class Held:
    """What try_lock yields: true while the lock is held; `session_pid` names the Postgres backend holding an
    advisory lock, so that a statement can check the lock is still held (pg_locks) before it claims work."""

    held: bool
    session_pid: int | None = None
    fd: int | None = None  # a flock's descriptor: a child given it (pass_fds) keeps the lock while it lives

    def __bool__(self) -> bool:
        return self.held


@contextlib.contextmanager
def flock(lock_dir: str | os.PathLike[str], name: str) -> Iterator[Held]:
    """The flock `<lock_dir>/<name>.lock` (this host only), without waiting."""
    path = Path(lock_dir) / f"{_safe(name)}.lock"
    private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield Held(False)
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield Held(True, fd=fd)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def host_lock(lock_dir: str | os.PathLike[str], name: str) -> Iterator[None]:
    """Wait for the flock `<lock_dir>/<name>.lock` and hold it (this host's processes take turns: work on
    this host's own files, whatever the state backend)."""
    path = Path(lock_dir) / f"{_safe(name)}.lock"
    private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def advisory(connect: Callable[[], Any], name: str) -> Iterator[Held]:
    """The session advisory lock `name` on a connection of its own from `connect` (every host), without waiting."""
    conn = connect()
    try:
        held, pid = conn.execute("SELECT pg_try_advisory_lock(%s), pg_backend_pid()", (lock_key(name),)).fetchone()
        yield Held(bool(held), int(pid) if held else None)
    finally:
        conn.close()  # ending the session releases the lock


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
