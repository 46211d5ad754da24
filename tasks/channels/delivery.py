"""What delivery events change: a message's delivery outcome in the send ledger, and automatic suppressions.

Every event in the delivery event store (tasks/state/events.py) is read once by the applier (cursor `ledger`
of the store), and:

- an outcome event (delivered, deferred, bounced, dropped, complained; Twilio's delivered, undelivered,
  failed) sets the message's outcome in its send's ledger row (tasks/channels/ledger.py `apply_outcomes`)
  where it beats the row's current one: a final bad outcome (a hard bounce, a complaint) beats any other,
  then the later event time wins, then, at the same time, the higher of `RANKS`. So an outcome applied twice,
  or events applied in any order, end in the same row, and a hard bounce or a complaint is never overwritten
  by a delivered or deferred reported later.
- an event that says "never again" suppresses the address on its channel through the suppression store
  (tasks/channels/suppressions.py), with the reason: a hard bounce (SendGrid `type = bounce`; `blocked` is a
  temporary, soft bounce and suppresses nothing), a spam report, an unsubscribe or group unsubscribe, Twilio
  ErrorCodes marked `suppress` in tasks/channels/twilio.py's `DELIVERY_CODES` (21610, 30005, 30006).

Order of the work per page of events: suppressions first, then the ledgers, then the cursor. A crash anywhere
leaves the cursor behind, and the next applier does the page again, which changes nothing already done.
Concurrent appliers (the web endpoint, a send starting, the export) may overlap the same way. Events without a
send id, or whose send id matches no ledger row, change no ledger row (they still suppress).

Reads no luigi.cfg section: the caller passes the stores and the region of phone numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tasks.addresses import normalise
from tasks.channels.ledger import DeliveryOutcome, SendLedger
from tasks.channels.suppressions import Suppression, SuppressionStore
from tasks.channels.twilio import DELIVERY_CODES
from tasks.state.events import PAGE, DeliveryEvent, EventStore, StoredEvent

logger = logging.getLogger(__name__)

CURSOR = "ledger"  # the event store's cursor of this applier
# the store's event names that are a delivery outcome of the message, and which wins at the same event time
RANKS = {"deferred": 0, "delivered": 1, "dropped": 2, "undelivered": 2, "failed": 2, "bounced": 3, "complained": 4}
HARD, SOFT = "hard", "soft"
SUPPRESSING_EVENTS = {  # store event -> the suppression's reason
    "complained": "spam complaint", "unsubscribed": "unsubscribed at the provider",
    "group_unsubscribed": "unsubscribed from the group at the provider",
}


def split_send_id(send_id: str | None) -> tuple[str, str, str, str] | None:
    """(campaign, date, channel, customer_id) of a send id (`SendKey.send_id`), None when it is not one."""
    if not send_id:
        return None
    parts = send_id.rsplit("/", 3)
    return (parts[0], parts[1], parts[2], parts[3]) if len(parts) == 4 and all(parts) else None


def outcome_of(event: DeliveryEvent) -> tuple[str, DeliveryOutcome] | None:
    """(channel, the message's outcome) of an outcome event of a known message; None for any other event."""
    if event.event not in RANKS:
        return None
    ids = split_send_id(event.send_id)
    if ids is None:
        return None
    campaign, date, channel, customer_id = ids
    kind = detail = None
    if event.event == "bounced":
        kind = HARD if event.bounce_type == "bounce" else SOFT
        detail = event.bounce_classification
    elif event.error_code:
        detail = event.error_code
    elif event.event == "dropped":
        detail = event.reason
    bad = int(event.event == "complained" or (event.event == "bounced" and kind == HARD))
    return channel, DeliveryOutcome(campaign, date, customer_id, event.event, kind, detail, event.event_at, bad,
                                    RANKS[event.event])


def beats(new: DeliveryOutcome, old: DeliveryOutcome) -> bool:
    """True when `new` replaces `old` as the message's outcome (the order apply_delivery.sql applies)."""
    return (new.bad, new.at, new.rank) > (old.bad, old.at, old.rank)


def latest(outcomes: Iterable[tuple[str, DeliveryOutcome]]) -> dict[str, list[DeliveryOutcome]]:
    """channel -> the winning outcome per message among `outcomes` (one statement may set a row once only)."""
    best: dict[tuple[str, str, str, str], DeliveryOutcome] = {}
    for channel, outcome in outcomes:
        key = (channel, outcome.campaign, outcome.date, outcome.customer_id)
        held = best.get(key)
        if held is None or beats(outcome, held):
            best[key] = outcome
    by_channel: dict[str, list[DeliveryOutcome]] = {}
    for (channel, *_), outcome in best.items():
        by_channel.setdefault(channel, []).append(outcome)
    return by_channel


def suppression_reason(event: DeliveryEvent) -> str | None:
    """Why this event suppresses its address, or None when it does not."""
    if event.event == "bounced" and event.bounce_type == "bounce":
        return "hard bounce" + (f": {event.bounce_classification}" if event.bounce_classification else "")
    if event.event in SUPPRESSING_EVENTS:
        return SUPPRESSING_EVENTS[event.event]
    code = DELIVERY_CODES.get(event.error_code or "")
    if event.channel == "sms" and code is not None and code.suppress:  # Twilio's, or the demo outbox's
        return f"Twilio {event.error_code}: {code.meaning}"
    return None


def suppression_of(event: DeliveryEvent, region: str = "US") -> Suppression | None:
    """The suppression an event asks for (its address, normalised, on its channel), or None."""
    reason = suppression_reason(event)
    address = normalise(event.channel, event.address, region) if event.address and reason else None
    if reason is None or address is None:
        return None
    return Suppression(event.channel, "address", address, event.provider, reason, created_at=event.event_at)


@dataclass
class Applied:
    """What one apply did: events read, ledger rows changed, suppressions newly added, the cursor reached."""

    events: int = 0
    outcomes: int = 0
    suppressed: int = 0
    seq: int = 0


def apply_page(events: Sequence[StoredEvent], ledger_of: Callable[[str], SendLedger], suppressions: SuppressionStore,
               region: str = "US") -> tuple[int, int]:
    """Apply one page of events: suppressions, then ledger outcomes; (outcomes changed, suppressions added)."""
    entries = [s for s in (suppression_of(e, region) for e in events) if s is not None]
    added = suppressions.add(entries)
    changed = 0
    for channel, outcomes in latest(o for o in map(outcome_of, events) if o is not None).items():
        changed += ledger_of(channel).apply_outcomes(channel, outcomes)
    return changed, added


def apply_events(store: EventStore, ledger_of: Callable[[str], SendLedger], suppressions: SuppressionStore,
                 region: str = "US", page: int = PAGE) -> Applied:
    """Apply every event stored after the store's `ledger` cursor, a page at a time, advancing the cursor after
    each page. `ledger_of(channel)` is that channel's send ledger (opened by the caller)."""
    done = Applied(seq=store.cursor(CURSOR))
    while True:
        events = store.events_since(done.seq, page)
        if not events:
            return done
        changed, added = apply_page(events, ledger_of, suppressions, region)
        done.events += len(events)
        done.outcomes += changed
        done.suppressed += added
        done.seq = events[-1].seq
        store.advance(CURSOR, done.seq)
        if added:
            logger.info("delivery events: %d address(es) newly suppressed (bounces, complaints, opt-outs)", added)


FIGURES = ("delivered", "bounced", "complained", "filtered")


def figures(outcomes: dict[tuple[str, str, str], int], sent: int) -> dict[str, Any]:
    """A send's delivery figures from its ledger's (delivery, delivery_type, delivery_detail) counts
    (SendLedger.delivery_counts): delivered, bounced (hard and soft; `bounced_hard` apart), complained, and
    filtered (an SMS the carrier or Twilio filtered: a code marked `filtered` in DELIVERY_CODES, e.g. 30007),
    each with its rate over `sent` (the messages the provider accepted), None when nothing was sent."""
    counts = dict.fromkeys(FIGURES, 0)
    hard = 0
    for (outcome, kind, detail), n in outcomes.items():
        code = DELIVERY_CODES.get(detail)
        if outcome in ("undelivered", "failed") and code is not None and code.filtered:
            counts["filtered"] += n
        elif outcome in counts:
            counts[outcome] += n
            hard += n if outcome == "bounced" and kind == HARD else 0
    rates = {f"{name}_rate": (counts[name] / sent if sent else None) for name in FIGURES}
    return {"sent": sent, **counts, "bounced_hard": hard, **rates}
