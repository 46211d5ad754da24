"""The embedded provider: each message becomes one JSON line in a local outbox file.

<var_dir>/outbox/<channel>/<campaign>-<date>.jsonl, appended and flushed per message, so
the demo goes through the same limiter, ledger and sender as a real send and its result
can be read back. The file holds addresses (it plays the provider's mailbox): never log
it. Reads no luigi.cfg section ([<channel>_campaign] provider = outbox selects it).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from tasks.channels.base import Message
from tasks.channels.unsubscribe import unsubscribe_headers
from tasks.files import private_file


def outbox_path(var_dir: str | os.PathLike[str], channel: str, campaign: str, date: str) -> Path:
    """Where the outbox provider writes one send's messages."""
    return Path(var_dir) / "outbox" / channel / f"{campaign}-{date}.jsonl"


class OutboxClient:
    """Appends messages to a JSONL file; a line is written (and flushed) before `send` returns."""

    provider = "outbox"
    batch_size = 1
    idempotent = False

    def __init__(self, path: str | os.PathLike[str], channel: str) -> None:
        self.path = Path(path)
        self.channel = channel
        private_file(self.path)  # addresses and bodies: 0600 in a 0700 folder
        self._lock = threading.Lock()
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open for the whole send
        self._count = 0

    def reject_reason(self, message: Message) -> str | None:
        return None

    def send(self, messages: Sequence[Message]) -> list[str | None]:
        ids: list[str | None] = []
        with self._lock:
            for message in messages:
                self._count += 1
                line = {
                    "send_id": message.send_id,
                    "channel": self.channel,
                    "customer_id": message.customer_id,
                    "to": message.address,
                    **message.content,
                    "queued_at": round(time.time(), 6),
                }
                if message.content.get("unsubscribe_url"):
                    line["headers"] = unsubscribe_headers(message.content["unsubscribe_url"])
                self._fh.write(json.dumps(line, sort_keys=True) + "\n")
                self._fh.flush()
                ids.append(f"outbox-{os.getpid()}-{self._count}")
        return ids

    def close(self) -> None:
        with self._lock:
            self._fh.close()
