"""Deliver one Slack message: incoming webhook, rate-limited across processes, or the alerts file.

Reads [slack] (through `SlackSettings.load()`). The webhook URL comes from the environment
variable SLACK_WEBHOOK_URL, else `[slack] webhook_url`; with neither, messages are appended as
JSON lines to <var_dir>/alerts/alerts.jsonl and a WARNING says where.

Rate limit: a token bucket (pyrate-limiter's TokenBucket, `rate_per_second` with `burst`) whose
state lives in SQLite under <var_dir>/alerts/, so every process of a run (Luigi forks one per
task) draws from the same bucket. Responses: 200 is delivered; 429 waits `Retry-After`; 5xx,
timeouts and connection errors back off and retry up to `max_retries`; any other 4xx
(`invalid_payload`, `action_prohibited`, `channel_not_found`, `no_service`,
`channel_is_archived`) is a dead webhook and is never retried. Everything is bounded by
`handler_budget` seconds. A message that was not delivered is also appended to the alerts
file with its reason, so nothing is lost. `deliver()` never raises.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from pyrate_limiter import Limiter, Rate, StateBucket, TokenBucket
from pyrate_limiter.abstracts.store import StateStore
from pyrate_limiter.clocks import WallClock
from pyrate_limiter.limiter import SingleBucketFactory

from tasks import config

logger = logging.getLogger(__name__)

WEBHOOK_ENV = "SLACK_WEBHOOK_URL"


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
        cfg = config.slack()
        return cls(
            webhook_url=os.environ.get(WEBHOOK_ENV) or cfg.webhook_url,
            rate_per_second=cfg.rate_per_second,
            burst=cfg.burst,
            timeout=cfg.timeout,
            max_retries=cfg.max_retries,
            backoff=cfg.backoff,
            handler_budget=cfg.handler_budget,
        )

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
    path.mkdir(parents=True, exist_ok=True)
    return path


def alerts_file() -> Path:
    return alerts_dir() / "alerts.jsonl"


def append_to_file(payload: dict[str, Any], **extra: Any) -> Path:
    """Append one JSON line (payload plus `extra`) to the alerts file with a single O_APPEND write."""
    path = alerts_file()
    line = json.dumps({"at": time.time(), **extra, "message": payload}, sort_keys=True, default=str) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return path


class SqliteStateStore(StateStore):
    """pyrate-limiter state for one key, kept in a SQLite row so that processes share it.

    `check()` is atomic across processes: BEGIN IMMEDIATE takes SQLite's write lock before the
    state is read, and the new state is committed in the same transaction. A connection is
    opened per check, so a store built before Luigi forks is still safe in the child.
    """

    default_clock = WallClock()

    def __init__(self, path: Path, key: str):
        self.path = path
        self.key = key
        with self._connect() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS bucket_state (key TEXT PRIMARY KEY, state TEXT NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def check(self, algorithm, rates, now, weight):
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            state = self._load(conn, algorithm, rates)
            new_state, decision = algorithm.step(rates, state, now, weight)
            if decision.allowed:
                conn.execute(
                    "INSERT OR REPLACE INTO bucket_state (key, state) VALUES (?, ?)",
                    (self.key, json.dumps(list(new_state))),
                )
            conn.execute("COMMIT")
            return decision
        finally:
            conn.close()

    def read(self, algorithm, rates):
        conn = self._connect()
        try:
            return self._load(conn, algorithm, rates)
        finally:
            conn.close()

    def reset(self) -> None:
        conn = self._connect()
        try:
            conn.execute("DELETE FROM bucket_state WHERE key = ?", (self.key,))
        finally:
            conn.close()

    def _load(self, conn: sqlite3.Connection, algorithm, rates):
        row = conn.execute("SELECT state FROM bucket_state WHERE key = ?", (self.key,)).fetchone()
        if row is None:
            return algorithm.initial(rates)
        stored = tuple(json.loads(row[0]))
        return stored if len(stored) == len(rates) else algorithm.initial(rates)


def shared_limiter(settings: SlackSettings, state_path: Path | None = None) -> Limiter:
    """The cross-process token bucket of this webhook (no background leak thread: state is constant)."""
    rate = Rate(1, max(1, round(1000 / settings.rate_per_second)), burst=settings.burst)
    store = SqliteStateStore(state_path or alerts_dir() / "ratelimit.sqlite", settings.hook_id)
    bucket = StateBucket([rate], algorithm=TokenBucket(), store=store)
    return Limiter(SingleBucketFactory(bucket, schedule_leak=False), buffer_ms=10)


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
    deadline = time.monotonic() + settings.handler_budget
    limiter = shared_limiter(settings)
    attempts = 0
    status: int | None = None
    detail = ""
    while attempts <= settings.max_retries:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not limiter.try_acquire(settings.hook_id, blocking=True, timeout=remaining):
            return Delivery("gave_up", attempts, status, detail or "time budget spent waiting for the rate limit")
        attempts += 1
        timeout = min(settings.timeout, max(0.1, deadline - time.monotonic()))
        wait = settings.backoff * 2 ** (attempts - 1)
        try:
            response = requests.post(settings.webhook_url, json=payload, timeout=timeout)
        except (requests.Timeout, requests.ConnectionError) as exc:
            status, detail = None, type(exc).__name__
        else:
            status, detail = response.status_code, response.text[:100].strip()
            if status == 200:
                return Delivery("sent", attempts, status, detail)
            if status == 429:
                wait = _retry_after(response, default=wait)
            elif status < 500:
                return Delivery("dead", attempts, status, detail)
        if attempts > settings.max_retries or time.monotonic() + wait >= deadline:
            break
        time.sleep(wait)
    return Delivery("gave_up", attempts, status, detail)


def _retry_after(response: requests.Response, default: float) -> float:
    """Seconds from a Retry-After header (Slack sends whole seconds)."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return default
