"""The send's breaker: stop claiming recipients once the send's own delivery events show too many hard bounces,
complaints or (SMS) carrier filtering.

While a send runs, its claim stage asks `Breaker.allows(n)` before claiming each request's recipients. The breaker
reads the events of the send (`campaign/date/channel`) from the event store incrementally (one indexed count over
the events stored since the last read, by sequence number), and only every `check_every` claimed recipients or
every `CHECK_INTERVAL_S` seconds, never per recipient. Once the rates are taken over at least `min_outcomes`
outcomes and one passes its limit, the breaker trips and stays tripped: the send claims nothing more, the unsent
recipients stay `pending`, and the caller records the hold (tasks/state/holds.py).

What counts (`tally`):

- outcomes: the messages that reached a final delivery outcome. E-mail: delivered, bounced (hard `bounce` or soft
  `blocked`), dropped. SMS: delivered, undelivered, failed (Twilio's MessageStatus). Processed, deferred, sent,
  opens and clicks are not outcomes. A complaint or an unsubscribe follows a delivery: it is not an outcome of
  its own.
- hard bounces: e-mail bounces of type `bounce`; SMS undelivered or failed with Twilio 30005 (unknown handset)
  or 30006 (landline or unreachable carrier), the SMS equivalents of a dead mailbox.
- complaints: e-mail spam reports (`complained`).
- filtered: SMS undelivered or failed with Twilio 30007 (filtered by the carrier or Twilio).

Pure logic and a reader callable: no database, no luigi.cfg section (tasks/campaign/wiring.py passes
`[<channel>_campaign] breaker_min_outcomes`, `max_bounce_rate`, `max_complaint_rate`, `max_filtered_rate`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CHECK_INTERVAL_S", "Breaker", "BreakerLimits", "Figures", "Trip", "tally", "trip_for"]

CHECK_INTERVAL_S = 2.0  # the events are read again at least this often while recipients are claimed

EMAIL_OUTCOMES = frozenset({"delivered", "bounced", "dropped"})
SMS_OUTCOMES = frozenset({"delivered", "undelivered", "failed"})
SMS_HARD_CODES = frozenset({"30005", "30006"})  # unknown handset; landline or unreachable carrier
SMS_FILTERED_CODES = frozenset({"30007"})  # filtered by the carrier or Twilio (spam, policy)

# (event, bounce_type, error_code) -> how many events: the event store's counts, '' where a column is empty
EventCounts = Mapping[tuple[str, str, str], int]
# reads the counts of the send's events stored after a sequence number: (counts, the last sequence number seen)
Reader = Callable[[int], tuple[EventCounts, int]]


@dataclass(frozen=True)
class BreakerLimits:
    """The limits of one channel's sends. `min_outcomes` 0 turns the breaker off; a rate limit of 0 or more
    than 1 never trips."""

    min_outcomes: int = 500
    max_bounce_rate: float = 0.05
    max_complaint_rate: float = 0.003
    max_filtered_rate: float = 0.02

    @property
    def enabled(self) -> bool:
        return self.min_outcomes > 0

    @property
    def check_every(self) -> int:
        """Claimed recipients between two reads of the events (a tenth of min_outcomes, at least 1)."""
        return max(1, self.min_outcomes // 10)


@dataclass(frozen=True)
class Figures:
    """The send's delivery outcomes so far, as the breaker counts them."""

    outcomes: int = 0
    hard_bounces: int = 0
    complaints: int = 0
    filtered: int = 0

    def __add__(self, other: Figures) -> Figures:
        return Figures(self.outcomes + other.outcomes, self.hard_bounces + other.hard_bounces,
                       self.complaints + other.complaints, self.filtered + other.filtered)

    def rate(self, count: int) -> float:
        return count / self.outcomes if self.outcomes else 0.0

    @property
    def bounce_rate(self) -> float:
        return self.rate(self.hard_bounces)

    @property
    def complaint_rate(self) -> float:
        return self.rate(self.complaints)

    @property
    def filtered_rate(self) -> float:
        return self.rate(self.filtered)

    def as_dict(self) -> dict[str, Any]:
        return {"outcomes": self.outcomes, "hard_bounces": self.hard_bounces, "complaints": self.complaints,
                "filtered": self.filtered, "bounce_rate": round(self.bounce_rate, 6),
                "complaint_rate": round(self.complaint_rate, 6), "filtered_rate": round(self.filtered_rate, 6)}

    def __str__(self) -> str:
        return (f"{self.hard_bounces} hard bounce(s) ({self.bounce_rate:.2%}), {self.complaints} complaint(s) "
                f"({self.complaint_rate:.2%}), {self.filtered} filtered ({self.filtered_rate:.2%}) "
                f"of {self.outcomes} outcomes")


@dataclass(frozen=True)
class Trip:
    """Why the breaker tripped: the rate over its limit (`reason`) and the figures at that moment."""

    reason: str
    figures: Figures

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, **self.figures.as_dict()}

    def __str__(self) -> str:
        return f"{self.reason}: {self.figures}"


def tally(channel: str, counts: EventCounts) -> Figures:
    """The figures of one channel's event counts (see the module docstring for what counts)."""
    outcomes = hard = complaints = filtered = 0
    for (event, bounce_type, code), n in counts.items():
        if channel == "sms":
            if event in SMS_OUTCOMES:
                outcomes += n
                hard += n if event != "delivered" and code in SMS_HARD_CODES else 0
                filtered += n if event != "delivered" and code in SMS_FILTERED_CODES else 0
        else:
            outcomes += n if event in EMAIL_OUTCOMES else 0
            hard += n if event == "bounced" and bounce_type == "bounce" else 0
            complaints += n if event == "complained" else 0
    return Figures(outcomes, hard, complaints, filtered)


def trip_for(figures: Figures, limits: BreakerLimits) -> Trip | None:
    """The trip these figures call for under `limits`, or None (too few outcomes yet, or every rate within)."""
    if not limits.enabled or figures.outcomes < limits.min_outcomes:
        return None
    checks = (("hard bounce rate", figures.bounce_rate, limits.max_bounce_rate),
              ("complaint rate", figures.complaint_rate, limits.max_complaint_rate),
              ("carrier filtering rate", figures.filtered_rate, limits.max_filtered_rate))
    for name, rate, limit in checks:
        if 0 < limit <= 1 and rate > limit:
            return Trip(f"{name} {rate:.2%} over max {limit:.2%}", figures)
    return None


class Breaker:
    """One send's breaker (thread-safe: every sender thread asks it before claiming). Figures are read through
    `reader` incrementally, at most once per `check_every` recipients or CHECK_INTERVAL_S seconds; the first
    call reads at once, so a send that tripped before (and was not released) stops before its first claim."""

    def __init__(self, channel: str, limits: BreakerLimits, reader: Reader,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.channel = channel
        self.limits = limits
        self.reader = reader
        self.monotonic = monotonic
        self.figures = Figures()
        self.trip: Trip | None = None
        self.reads = 0
        self._seq = 0
        self._claimed_since = 0
        self._next_read = float("-inf")
        self._lock = threading.Lock()

    def allows(self, recipients: int) -> bool:
        """Whether `recipients` more may be claimed now; False for good once the breaker tripped."""
        with self._lock:
            if self.trip is not None:
                return False
            now = self.monotonic()
            if self._claimed_since >= self.limits.check_every or now >= self._next_read:
                self._read(now)
                if self.trip is not None:
                    return False
            self._claimed_since += recipients
            return True

    def _read(self, now: float) -> None:
        counts, self._seq = self.reader(self._seq)
        self.reads += 1
        self.figures = self.figures + tally(self.channel, counts)
        self.trip = trip_for(self.figures, self.limits)
        self._claimed_since = 0
        self._next_read = now + CHECK_INTERVAL_S
