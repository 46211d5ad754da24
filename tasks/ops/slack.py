"""Deliver one Slack message: incoming webhook, rate-limited across processes, or the alerts file.

Reads [slack] (through `SlackSettings.load()`) and [paths] (the alerts folder under var_dir). The
webhook URL comes from the environment variable SLACK_WEBHOOK_URL, else `[slack] webhook_url`;
with neither, messages are appended as JSON lines to <var_dir>/alerts/alerts.jsonl and a WARNING
says where.

Slack is one more provider of the channels library: the POST goes through its HTTP transport
(tasks/channels/http.py), the answer through its shared status rules (tasks/channels/status.py)
with Slack's own codes below, and the rate limit is its token bucket (tasks/channels/limiter.py,
`rate_per_second` with `burst`) kept in SQLite under <var_dir>/alerts/, so every process of a run
(Luigi forks one per task) draws from the same bucket. Answers: 200 is delivered; 429 waits
`Retry-After`; 5xx, timeouts and connection errors back off and retry up to `max_retries` (a
request that may have reached Slack is retried too: a duplicate alert is better than none); any
other 4xx (`invalid_payload`, `action_prohibited`, `channel_not_found`, `no_service`,
`channel_is_archived`) is a dead webhook and is never retried. Everything, each request
included, is bounded by `handler_budget` seconds. A message that was not delivered is also
appended to the alerts file with its reason, so nothing is lost. `deliver()` never raises; logs
name the webhook by a short hash, never its URL.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tasks import config
from tasks.channels.http import HttpTransport, retry_after_seconds
from tasks.channels.status import ProviderCodes, classify
from tasks.errors import FatalApiError, RetriableApiError
from tasks.files import append_json_line, private_dir

logger = logging.getLogger(__name__)

WEBHOOK_ENV = "SLACK_WEBHOOK_URL"
# Slack answers a webhook POST with a plain-text code ("ok", "invalid_payload", ...); anything
# else in the body is not a code and is never copied.
_CODE = re.compile(r"[a-z0-9_]{1,64}")
CODES = ProviderCodes(
    permanent={
        "invalid_payload": "the payload is not a valid message",
        "action_prohibited": "an admin restricted this webhook",
        "channel_not_found": "the channel was deleted or cannot be seen",
        "no_service": "the webhook is disabled, revoked or invalid",
        "channel_is_archived": "the channel is archived",
        "posting_to_general_channel_denied": "only admins may post to this channel",
    },
    rate_limit=frozenset({"rate_limited"}),
)


@dataclass(frozen=True)
class SlackSettings:
    """[slack] values as plain data, read once per message (config is never read at import)."""

    webhook_url: str
    rate_per_second: float
    burst: int
    timeout: float
    max_retries: int
    backoff: float
    handler_budget: float

    @classmethod
    def load(cls) -> SlackSettings:
        cfg = config.SlackConfig()
        return config.settings(cls, cfg, webhook_url=os.environ.get(WEBHOOK_ENV) or cfg.webhook_url)

    @property
    def hook_id(self) -> str:
        """A short, non-secret name for the webhook (logs and the rate-limit key never hold the URL)."""
        return hashlib.sha256(self.webhook_url.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Delivery:
    """What happened to one message: `sent` to Slack, `file` (no webhook), `dead`, `gave_up`."""

    outcome: str
    attempts: int = 0
    status: int | None = None
    detail: str = ""

    @property
    def delivered(self) -> bool:
        return self.outcome in ("sent", "file")


def alerts_dir() -> Path:
    """<var_dir>/alerts, created if needed."""
    path = config.var_dir() / "alerts"
    private_dir(path)
    return path


def alerts_file() -> Path:
    return alerts_dir() / "alerts.jsonl"


def append_to_file(payload: dict[str, Any], **extra: Any) -> Path:
    """Append one JSON line (payload plus `extra`) to the alerts file with a single O_APPEND write."""
    path = alerts_file()
    append_json_line(path, {"at": time.time(), **extra, "message": payload})
    return path


def deliver(payload: dict[str, Any], settings: SlackSettings | None = None) -> Delivery:
    """Send `payload` (Block Kit JSON) to the webhook, or append it to the alerts file. Never raises."""
    try:
        settings = settings or SlackSettings.load()
        if not settings.webhook_url:
            path = append_to_file(payload, delivery="file")
            logger.warning("No Slack webhook configured (%s or [slack] webhook_url): alert written to %s",
                           WEBHOOK_ENV, path)
            return Delivery("file")
        result = _post_with_retries(payload, settings)
        if not result.delivered:
            append_to_file(payload, delivery=result.outcome, status=result.status, detail=result.detail)
            logger.warning(
                "Slack alert not delivered (webhook %s): %s after %d attempt(s), status %s, %s; kept in %s",
                settings.hook_id, result.outcome, result.attempts, result.status, result.detail, alerts_file(),
            )
        return result
    except Exception as exc:  # noqa: BLE001 - alerting must never fail the run; this is its one broad catch
        logger.warning("Slack alert failed with %s; the run is not affected", type(exc).__name__)
        return Delivery("gave_up", detail=type(exc).__name__)


def _post_with_retries(payload: dict[str, Any], settings: SlackSettings) -> Delivery:
    """One alert's single retry loop, bounded by `max_retries` and `handler_budget`."""
    from tasks.channels.limiter import ChannelLimiter  # pyrate_limiter: loaded when an alert is posted

    deadline = time.monotonic() + settings.handler_budget
    limiter = ChannelLimiter(settings.rate_per_second, settings.burst, name=f"slack-{settings.hook_id}",
                             state_path=alerts_dir() / "ratelimit.sqlite")
    transport = HttpTransport("slack", settings.webhook_url, connect_timeout=settings.timeout,
                              read_timeout=settings.timeout)
    attempts = 0
    status: int | None = None
    detail = ""
    try:
        while attempts <= settings.max_retries:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not limiter.acquire(timeout=remaining):
                return Delivery("gave_up", attempts, status, detail or "time budget spent waiting for the rate limit")
            attempts += 1
            wait = settings.backoff * 2 ** (attempts - 1)
            try:
                response = transport.post("", json=payload, timeout=max(0.1, deadline - time.monotonic()))
                classify_response(response)
                return Delivery("sent", attempts, response.status_code)
            except FatalApiError as exc:
                return Delivery("dead", attempts, exc.status, str(exc))
            except RetriableApiError as exc:  # 429, 5xx, and every transport failure
                status, detail = exc.status, str(exc)
                wait = wait if exc.retry_after is None else exc.retry_after
            if attempts > settings.max_retries or time.monotonic() + wait >= deadline:
                break
            time.sleep(wait)
        return Delivery("gave_up", attempts, status, detail)
    finally:
        transport.close()
        limiter.close()


def classify_response(response: requests.Response) -> None:
    """Raise the typed error a webhook answer means (Slack's codes on the shared status rules)."""
    text = response.text.strip()
    classify("slack", response.status_code, code=text if _CODE.fullmatch(text) else None, codes=CODES,
             retry_after=retry_after_seconds(response.headers.get("Retry-After")))
