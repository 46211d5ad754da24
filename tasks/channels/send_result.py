"""What a send reports: `Progress` while it runs, `SendResult` when it ends (and when shards add up).

The one place for a result's arithmetic: achieved rates, the failed share, the unknown count,
`complete`, and how the results of a send's shards add up into the send's (`SendResult.combine`).
A result document (`as_dict`, the JSON a send task writes) is read back with `from_dict`.
Reads no luigi.cfg section.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tasks.channels.ledger import FAILED, FINAL_STATES, PENDING, SENDING, SENT, SKIPPED_STATES, UNKNOWN

HOLD_KEYS = ("held", "held_without_time", "held_until")  # a result's `extra` about recipients held past the run


@dataclass(frozen=True)
class Progress:
    """A snapshot for the Luigi shell: counts by final state, the recent message rate, and the
    recipients held for quiet hours (with the earliest and latest time they may go, epoch s)."""

    target: int
    counts: Mapping[str, int]
    remaining: int
    rate: float
    elapsed: float
    held: int = 0
    held_until: tuple[float, float] | None = None

    @property
    def sent(self) -> int:
        return self.counts.get(SENT, 0)

    @property
    def failed(self) -> int:
        return self.counts.get(FAILED, 0)

    @property
    def unknown(self) -> int:
        return self.counts.get(UNKNOWN, 0)

    @property
    def done_fraction(self) -> float:
        return 1.0 if self.target == 0 else (self.target - self.remaining) / self.target

    def __str__(self) -> str:
        skipped = "".join(f", {self.counts[s]} {s}" for s in SKIPPED_STATES if self.counts.get(s))
        text = (
            f"{self.sent} sent, {self.failed} failed, {self.unknown} unknown{skipped}, {self.remaining} remaining "
            f"of {self.target}; {self.rate:.1f} msg/s"
        )
        if self.held:
            text += f"; {self.held} held for quiet hours"
            if self.held_until:
                first, last = (utc_label(t) for t in self.held_until)
                text += f" until {first}" if first == last else f" until {first} to {last}"
        return text


@dataclass
class SendResult:
    """The outcome of one channel send or shard (the Luigi task writes `as_dict()` as its result JSON).

    `duration_s` is kept exact; the document rounds it (to ms) and derives the rates from the exact value.
    """

    campaign: str
    date: str
    channel: str
    provider: str
    target: int
    counts: dict[str, int]
    duration_s: float
    messages_sent_this_run: int
    requests: int
    configured_rate: float
    burst: int
    retries: int
    recovered_unknown: int
    reopened_unknown: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """No recipient is left pending or in flight."""
        return self.counts.get(PENDING, 0) == 0 and self.counts.get(SENDING, 0) == 0

    @property
    def achieved_rate(self) -> float:
        return self._per_second(self.messages_sent_this_run)

    @property
    def achieved_request_rate(self) -> float:
        return self._per_second(self.requests)

    @property
    def failed_share(self) -> float:
        return 0.0 if self.target == 0 else self.counts.get(FAILED, 0) / self.target

    def _per_second(self, count: int) -> float:
        return round(count / self.duration_s, 3) if self.duration_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        payload.update(
            duration_s=round(self.duration_s, 3), achieved_rate=self.achieved_rate,
            achieved_request_rate=self.achieved_request_rate, complete=self.complete,
            unknown=self.counts.get(UNKNOWN, 0), failed_share=round(self.failed_share, 6),
        )
        return payload

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> SendResult:
        """A result read back from its document (the derived keys are derived again)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {name: value for name, value in document.items() if name in names}
        return cls(**{**values, "counts": dict(values["counts"]), "extra": dict(values.get("extra") or {})})

    @classmethod
    def combine(cls, parts: Sequence[SendResult]) -> SendResult:
        """One send's result from its shards' results: counts and tallies added up, the longest duration (the
        shards run side by side), the recipients held by any of them. `extra` holds only the holds."""
        first = parts[0]
        counts: collections.Counter[str] = collections.Counter()
        for part in parts:
            counts.update(part.counts)

        def total(name: str) -> int:
            return sum(getattr(part, name) for part in parts)

        return cls(
            campaign=first.campaign, date=first.date, channel=first.channel, provider=first.provider,
            target=total("target"), counts=dict(counts), duration_s=max(part.duration_s for part in parts),
            messages_sent_this_run=total("messages_sent_this_run"), requests=total("requests"),
            configured_rate=first.configured_rate, burst=first.burst, retries=total("retries"),
            recovered_unknown=total("recovered_unknown"), reopened_unknown=total("reopened_unknown"),
            extra=combined_holds([part.extra for part in parts]),
        )


def hold_extra(held: Mapping[str, float | None]) -> dict[str, Any]:
    """A result's `extra` about recipients still held (customer_id -> when it may go; None: no known time)."""
    if not held:
        return {}
    times = [t for t in held.values() if t is not None]
    return {"held": len(held), "held_without_time": len(held) - len(times),
            "held_until": [utc_label(min(times)), utc_label(max(times))] if times else None}


def combined_holds(extras: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The shards' held counts added up, and the earliest and latest time any of them may go."""
    held = [e for e in extras if e.get("held")]
    if not held:
        return {}
    times = [t for e in held if e.get("held_until") for t in e["held_until"]]
    return {"held": sum(e["held"] for e in held),
            "held_without_time": sum(e.get("held_without_time", 0) for e in held),
            "held_until": [min(times), max(times)] if times else None}


def utc_label(epoch: float) -> str:
    """An epoch time as `YYYY-MM-DD HH:MM UTC` for progress messages and the result file."""
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def fmt_counts(counts: Mapping[str, int]) -> str:
    """`3 pending, 40 sent` for the log: every state with a row, in the ledger's order."""
    return ", ".join(f"{counts.get(s, 0)} {s}" for s in (PENDING, SENDING, *FINAL_STATES) if counts.get(s, 0))
