"""A controllable clock for the sender and the compliance screen: `sleep` moves time on at once.

Quiet hours hold recipients for hours; with this clock a test runs them in milliseconds and
knows exactly when each message went (read `clock.time()` in the fake provider's on_accept).
"""

from __future__ import annotations

import datetime
import threading


class FakeClock:
    """Wall and monotonic time that only move when someone sleeps (or `advance` is called)."""

    def __init__(self, start: datetime.datetime):
        self._now = start.timestamp()
        self._mono = 1_000.0
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
            self._mono += seconds

    def set(self, when: datetime.datetime) -> None:
        """Jump to `when` (a later run of the task)."""
        with self._lock:
            self._mono += max(0.0, when.timestamp() - self._now)
            self._now = when.timestamp()

    def utc(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.time(), datetime.UTC)
