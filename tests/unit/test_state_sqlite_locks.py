"""A second connection to a SQLite state file in the same process must not drop the first one's locks.

Closing any descriptor of a file drops every POSIX lock the process holds on it, and SQLite's locks are such
locks. When opening a store re-opened the database file to set its mode, a second store in a process that had
the file open already (the web endpoint's delivery applier beside its suppression store) released the first
connection's locks; another process then took the database for unused, checkpointed and removed the WAL, and
the first connection's later commits went to a deleted file: an acknowledged unsubscribe was lost."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from tasks.state.db import SqliteDatabase


def rows(path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT v FROM t ORDER BY v").fetchall()
    finally:
        conn.close()


def test_a_second_connection_in_one_process_keeps_the_first_ones_commits(tmp_path) -> None:
    path = tmp_path / "state.sqlite3"
    first = SqliteDatabase(path)
    with first.transaction() as tx:
        tx.script("CREATE TABLE t (v INTEGER)")
        tx.execute("INSERT INTO t VALUES (1)")
    second = SqliteDatabase(path)  # as the applier thread opens its own store on the same file
    # another process opens and closes the database: with the first connection's locks gone it would be the
    # last user, checkpoint and delete the WAL
    code = (f"import sqlite3; c = sqlite3.connect({str(path)!r}); c.execute('SELECT COUNT(*) FROM t').fetchall(); "
            "c.close()")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    with first.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (2)")
    assert rows(path) == [(1,), (2,)], "a commit of the first connection went to a deleted WAL file"
    second.close()
    first.close()
