"""The embedded provider: each message becomes one JSON line in a local outbox file.

<var_dir>/outbox/<channel>/<campaign>-<date>.jsonl, appended and flushed per message, so
the demo goes through the same limiter, ledger and sender as a real send and its result
can be read back. The file holds addresses (it plays the provider's mailbox): never log
it. Reads no luigi.cfg section ([<channel>_campaign] provider = outbox selects it).

It also writes the delivery events a real provider would post back, one JSON line per event, in
<var_dir>/outbox/events/<channel>/<campaign>-<date>.jsonl: for e-mail the SendGrid Event
Webhook's event objects (`processed` then `delivered`, with our `send_id` as SendGrid echoes
custom_args), for SMS Twilio's status callback fields (`sent` then `delivered`); push has no
delivery events (FCM has no webhook). The demo marks a fictional address as dead with a local
part that starts with `bounce` or a domain under `.invalid` (RFC 2606: never resolves): its
e-mail hard-bounces (`bounce`, type `bounce`, Invalid Address) and its SMS ends `undelivered`
with Twilio's 30005 (unknown handset) when the number is a 555-01xx fictional one ending in 99.
`python -m tasks events ingest-outbox` stores them (tasks/campaign/web.py).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tasks.channels.base import Message
from tasks.channels.unsubscribe import unsubscribe_headers
from tasks.files import private_file


def outbox_path(var_dir: str | os.PathLike[str], channel: str, campaign: str, date: str) -> Path:
    """Where the outbox provider writes one send's messages."""
    return Path(var_dir) / "outbox" / channel / f"{campaign}-{date}.jsonl"


def events_path_of(path: str | os.PathLike[str]) -> Path:
    """The events file beside an outbox file: <var_dir>/outbox/events/<channel>/<campaign>-<date>.jsonl."""
    path = Path(path)
    return path.parent.parent / "events" / path.parent.name / path.name


def events_files(var_dir: str | os.PathLike[str]) -> list[Path]:
    """Every events file the outbox wrote under this var dir."""
    return sorted((Path(var_dir) / "outbox" / "events").glob("*/*.jsonl"))


def marked_dead(channel: str, address: str) -> bool:
    """True for the fictional addresses the demo marks as dead (see the module docstring)."""
    if channel == "email":
        local, _, domain = address.lower().rpartition("@")
        return local.startswith("bounce") or domain.endswith(".invalid")
    return channel == "sms" and len(address) >= 7 and address[-7:-2] == "55501" and address.endswith("99")


def provider_events(channel: str, message: Message, message_id: str, at: float) -> list[dict[str, Any]]:
    """The events a real provider would post for one accepted message, as it would post them."""
    dead = marked_dead(channel, message.address)
    if channel == "email":
        base = {"email": message.address, "timestamp": int(at), "sg_message_id": message_id,
                "send_id": message.send_id, "smtp-id": f"<{message_id}@outbox>"}
        last = {"event": "bounce", "type": "bounce", "bounce_classification": "Invalid Address",
                "reason": "550 5.1.1 The email account that you tried to reach does not exist", "status": "5.1.1"} \
            if dead else {"event": "delivered", "response": "250 OK"}
        return [{**base, "event": "processed", "sg_event_id": f"{message_id}-processed"},
                {**base, **last, "sg_event_id": f"{message_id}-{last['event']}"}]
    if channel == "sms":
        base = {"MessageSid": message_id, "To": message.address, "AccountSid": "outbox", "send_id": message.send_id}
        last = {"MessageStatus": "undelivered", "ErrorCode": "30005"} if dead else {"MessageStatus": "delivered"}
        return [{**base, "MessageStatus": "sent"}, {**base, **last}]
    return []


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
        self._events = None
        if channel in ("email", "sms"):
            events = events_path_of(self.path)
            private_file(events)  # addresses: owner-only
            self._events = open(events, "a", encoding="utf-8")  # noqa: SIM115 - held open for the whole send
        self._count = 0
        self._run = uuid.uuid4().hex[:12]  # message ids unique across runs (they key the events)

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
                message_id = f"outbox-{self._run}-{self._count}"
                ids.append(message_id)
                if self._events is not None:
                    for event in provider_events(self.channel, message, message_id, time.time()):
                        self._events.write(json.dumps(event, sort_keys=True) + "\n")
                    self._events.flush()
        return ids

    def close(self) -> None:
        with self._lock:
            self._fh.close()
            if self._events is not None:
                self._events.close()
