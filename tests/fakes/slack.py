"""A real HTTP server on 127.0.0.1 playing a Slack incoming webhook, recording what it receives.

Modes (the answer to each request): `ok` (200 `ok`), `429` (Retry-After: `retry_after`), `500`,
`404` (`no_service`), `400` (`invalid_payload`), `410` (`channel_is_archived`), `slow` (sleeps
`delay` seconds, then 200). `script` lists modes for the first requests; `mode` answers the
rest. Like Slack, a body that is not JSON with a string `text`, or whose blocks break Slack's
size limits, gets 400 `invalid_payload` whatever the mode.

    with FakeSlack() as slack:
        env["SLACK_WEBHOOK_URL"] = slack.url
        ...
        assert len(slack.received) == 1
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ERRORS = {"500": (500, "internal_error"), "404": (404, "no_service"), "400": (400, "invalid_payload"),
           "410": (410, "channel_is_archived"), "403": (403, "action_prohibited")}


@dataclass
class Received:
    """One request as it arrived: wall time (time.time()), path, headers, raw body and its JSON."""

    at: float
    path: str
    headers: dict[str, str]
    body: str
    payload: dict[str, Any] | None
    answered: int = 0


@dataclass
class FakeSlack:
    mode: str = "ok"
    retry_after: int = 1
    delay: float = 0.0
    script: list[str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/services/T000/B000/fakehooksecret0123"

    def __enter__(self) -> FakeSlack:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def messages(self, answered: int | None = 200) -> list[Received]:
        """Requests that got `answered` (default: the ones Slack would have posted)."""
        with self._lock:
            return [r for r in self.received if answered is None or r.answered == answered]

    def wait_for(self, count: int, timeout: float = 20.0, answered: int | None = 200) -> list[Received]:
        """Block until `count` matching requests arrived (or the timeout), then return them."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(self.messages(answered)) < count:
            time.sleep(0.05)
        return self.messages(answered)

    def _next_mode(self) -> str:
        with self._lock:
            return self.script.pop(0) if self.script else self.mode

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length).decode("utf-8", "replace")
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        record = Received(time.time(), request.path, dict(request.headers), body, payload)
        with self._lock:
            self.received.append(record)
        mode = self._next_mode()
        status, text, headers = 200, "ok", {}
        if not _well_formed(payload):
            status, text = 400, "invalid_payload"
        elif mode == "429":
            status, text, headers = 429, "rate_limited", {"Retry-After": str(self.retry_after)}
        elif mode in _ERRORS:
            status, text = _ERRORS[mode]
        elif mode == "slow":
            time.sleep(self.delay)
        record.answered = status
        try:
            request.send_response(status)
            for key, value in headers.items():
                request.send_header(key, value)
            request.send_header("Content-Type", "text/plain")
            request.send_header("Content-Length", str(len(text)))
            request.end_headers()
            request.wfile.write(text.encode())
        except OSError:
            pass  # the client gave up (timeout) before the answer


def _well_formed(payload: Any) -> bool:
    """Slack's own checks that matter here: text is a string, blocks within their size limits."""
    if not isinstance(payload, dict) or not isinstance(payload.get("text"), str) or not payload["text"]:
        return False
    blocks = payload.get("blocks", [])
    if not isinstance(blocks, list) or len(blocks) > 50:
        return False
    for block in blocks:
        kind = block.get("type")
        if kind == "header" and len(block["text"]["text"]) > 150:
            return False
        if kind == "section":
            texts: Iterable[dict[str, Any]] = [block["text"]] if "text" in block else block.get("fields", [])
            if any(len(t["text"]) > 3000 for t in texts) or len(block.get("fields", [])) > 10:
                return False
    return True
