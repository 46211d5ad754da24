"""Where a task's result document goes, as the state backend decides: its completion target.

Every result is a JSON file on the host that wrote it (local tools and exports read it). With
SQLite state that file is the completion target (`FileResult`); with Postgres state a marker row
in the shared database is (`MarkedResult`, tasks/state/markers.py): it holds the same document,
so a task on another host sees the result done and can read it without that host's files.
Reads no luigi.cfg section: the backend passes the database.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import luigi

from tasks.files import write_json_atomic
from tasks.state.markers import MarkerTarget, present


class ResultTarget(luigi.Target):
    """A result document: `exists()` once the task finished, `read()` it, `write()` it (the file and wherever
    completion lives), `local_file()` on this host. `path` is the file (a str, as luigi.LocalTarget's)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)

    def exists(self) -> bool:
        raise NotImplementedError

    def read(self) -> dict[str, Any] | None:
        """The document, or None when the task has not finished."""
        raise NotImplementedError

    def write(self, payload: dict[str, Any]) -> None:
        """Record the result: the file on this host always, written atomically."""
        write_json_atomic(self.path, payload)

    def local_file(self) -> Path:
        """The result file on this host, written from the document first when the task finished elsewhere."""
        path = Path(self.path)
        if not path.exists():
            write_json_atomic(path, self.read() or {})
        return path

    def unmark(self) -> int:
        """Remove the completion marks kept beside the files (this result's and those whose id extends it: a
        send's shards); returns how many went. The caller removes the files."""
        raise NotImplementedError

    def _file(self) -> dict[str, Any] | None:
        path = Path(self.path)
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"


class FileResult(ResultTarget):
    """SQLite state: the file is the result and its completion (this host is the only one)."""

    def exists(self) -> bool:
        return Path(self.path).exists()

    def read(self) -> dict[str, Any] | None:
        return self._file()

    def unmark(self) -> int:
        return 0  # nothing beside the files


class MarkedResult(ResultTarget):
    """Postgres state: a marker row holding the document is the completion every host sees; the file is this
    host's copy."""

    def __init__(self, path: str | os.PathLike[str], marker: MarkerTarget) -> None:
        super().__init__(path)
        self.marker = marker

    def exists(self) -> bool:
        return self.marker.exists()

    def read(self) -> dict[str, Any] | None:
        document = self.marker.read()
        return document if document is not None else self._file()

    def write(self, payload: dict[str, Any]) -> None:
        super().write(payload)
        self.marker.write(payload)

    def unmark(self) -> int:
        return self.marker.remove()


def existing(targets: Sequence[ResultTarget]) -> list[bool]:
    """`exists()` of each target, the marker rows among them read in one query (Luigi's bulk_complete over a
    range): a file is a stat, a marker a row of that query."""
    found = present([t.marker for t in targets if isinstance(t, MarkedResult)])
    return [t.marker.marker_id in found if isinstance(t, MarkedResult) else t.exists() for t in targets]
