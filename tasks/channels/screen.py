"""What a send asks just before each request: skip this recipient, hold it, or send it; and the clock.

The sender calls a `Screen` with the recipients of each request right before it (and again once
the rate limiter's token is in hand, so a suppression added meanwhile is still honoured); one call
per request, so a screen looks its recipients up together (a million recipients must not cost a
million queries). For each recipient it may answer:

- `Skip(state, reason)`: never send; the recipient ends in a skipped final state
  (`suppressed`, `capped`, `duplicate_address`), never counted as a failure;
- `Hold(until, reason)`: not now (quiet hours); the recipient stays `pending` and is tried
  again at `until` (epoch seconds; None when no time is known) while the send goes on with
  everyone else;
- `None`: send.

A frequency cap is counted twice: by `check`, and again by the claim itself (`claim_cap`), in the
transaction that claims the recipients with each customer locked, since `check`'s count can be
stale by the time a concurrent campaign claims the same customer.

A provider that answers that an address has opted out or is dead (Twilio 21610, FCM
UNREGISTERED) is reported back through `Screen.opted_out`, so later sends skip it.

`Clock` is the time the sender and screens read; tests pass a controllable one, so quiet
hours are tested without waiting. Reads no luigi.cfg section: tasks/campaign/ builds the
screen from config.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from tasks.channels.base import Message


@dataclass(frozen=True)
class Skip:
    """Never send this recipient: it ends in `state` (a skipped final state) with `reason`."""

    state: str
    reason: str


@dataclass(frozen=True)
class ClaimCap:
    """A frequency cap the claim itself enforces: at most `limit` messages per customer on the channel since
    `since` (epoch seconds) in other sends, counted in the claim's own transaction with the customers locked,
    so two campaigns claiming the same customer at the same moment cannot both pass it. `reason` is the
    capped row's reason, with `{count}` for the messages found."""

    limit: int
    since: float
    reason: str


@dataclass(frozen=True)
class Hold:
    """Not before `until` (epoch seconds; None: no known time, screened again by the next run); the
    recipient stays pending."""

    until: float | None
    reason: str


class Screened(Protocol):
    """What a screen reads of a recipient (the sender's Recipient), read-only."""

    @property
    def customer_id(self) -> str: ...

    @property
    def address(self) -> str: ...

    @property
    def fields(self) -> Mapping[str, str | None]: ...


class Screen(Protocol):
    """Decides for the recipients of one request, just before it; must be thread-safe (sender threads call it)."""

    def check(self, recipients: Sequence[Screened]) -> dict[str, Skip | Hold]:
        """customer_id -> Skip or Hold for the recipients that may not go now; the others are sent."""

    def recheck(self, recipients: Sequence[Screened]) -> dict[str, Skip | Hold]:
        """The same, once the limiter's token is in hand: what may have changed since `check` (an opt-out
        added meanwhile)."""

    def opted_out(self, message: Message, reason: str) -> None:
        """The provider says this address may never be messaged again: remember it."""

    def claim_cap(self) -> ClaimCap | None:
        """The frequency cap to enforce again in the claim (`check` counted a moment before, without a lock),
        or None."""


class Clock(Protocol):
    """Wall time, monotonic time and sleeping, as the sender uses them."""

    def time(self) -> float: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


SYSTEM_CLOCK = SystemClock()
