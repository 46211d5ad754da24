"""What a channel send's result says to the Luigi shell: the shards' results added up, and the reasons a send
fails without a result (too many failures, recipients still held for quiet hours, the breaker held the send).
The arithmetic of a result is SendResult's (tasks/channels/send_result.py); this module only applies it to
result documents.

Reads the channel section it is given (max_hold_hours).
"""

from __future__ import annotations

from typing import Any

from tasks import config
from tasks.channels.ledger import PENDING
from tasks.channels.send_result import SendResult, utc_label
from tasks.errors import CampaignFailedError, RecipientsHeldError, SendHeldError
from tasks.state.holds import SendHold, SendHolds


def combine_results(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One channel result document from its shards' documents (SendResult.combine), with the send's segment and
    template and how many shards it had."""
    combined = SendResult.combine([SendResult.from_dict(part) for part in parts])
    first = parts[0]["extra"]
    combined.extra = {"segment": first.get("segment"), "template": first.get("template"), "shards": len(parts),
                      **combined.extra}
    return combined.as_dict()


def check_held(result: dict[str, Any], cfg: config.ChannelCampaignConfig) -> None:
    """RecipientsHeldError when recipients are still pending (held for quiet hours past the section's
    max_hold_hours, or without a known zone): no result file, and the next run of the same send resumes
    them (`result`: a send's result document)."""
    pending = result["counts"].get(PENDING, 0)
    if not pending:
        return
    max_hold_hours = getattr(cfg, "max_hold_hours", 0.0)  # e-mail has no quiet hours
    extra = result.get("extra", {})
    until, no_time = extra.get("held_until"), extra.get("held_without_time", 0)
    raise RecipientsHeldError(
        f"{result['channel']} campaign {result['campaign']!r} {result['date']}: {pending} recipient(s) still "
        f"pending, held for quiet hours beyond max_hold_hours ({max_hold_hours:g} h)"
        + (f" until {until[0]} to {until[1]}" if until else "")
        + (f"; {no_time} without a known time zone (set default_timezone)" if no_time else "")
        + "; run the task again after that to send them"
    )


def check_failure_ratio(result: dict[str, Any], max_failure_ratio: float) -> None:
    """CampaignFailedError when more than `max_failure_ratio` of the recipients failed permanently
    (`result`: a send's result document)."""
    if result["failed_share"] > max_failure_ratio:
        raise CampaignFailedError(
            f"{result['channel']} campaign {result['campaign']!r} {result['date']}: "
            f"{result['counts'].get('failed', 0)} of {result['target']} recipients failed "
            f"({result['failed_share']:.1%} > max_failure_ratio {max_failure_ratio:.1%}); see the ledger for reasons"
        )


def held_message(label: str, hold: SendHold, pending: int | None = None) -> str:
    """Why the send is held, with the figures of the trip, and what to do about it."""
    figures = hold.figures
    rates = (f"{figures.get('hard_bounces', 0)} hard bounce(s) ({figures.get('bounce_rate', 0):.2%}), "
             f"{figures.get('complaints', 0)} complaint(s) ({figures.get('complaint_rate', 0):.2%}), "
             f"{figures.get('filtered', 0)} filtered ({figures.get('filtered_rate', 0):.2%}) "
             f"of {figures.get('outcomes', 0)} delivery outcomes")
    left = f"; {pending} recipient(s) left pending" if pending is not None else ""
    date, channel = hold.send_key.split("/")[-2:]
    campaign = hold.send_key.rsplit("/", 2)[0]
    return (f"{label}: held by the breaker: {hold.reason} ({rates}){left}; after looking, run `python -m tasks "
            f"release-send --date {date} --campaign {campaign} --channel {channel}` to let the next run finish it "
            f"with the breaker off")


def refuse_held(label: str, hold: SendHold | None) -> None:
    """SendHeldError (not the first: alerted already) when the send is held and not released: nothing is claimed."""
    if hold is not None and not hold.released:
        raise SendHeldError(held_message(label, hold), first=False)


def check_breaker(result: dict[str, Any], send_key: str, holds: SendHolds) -> None:
    """When the send's breaker tripped (`result`'s extra `breaker`): record the hold, once, and raise SendHeldError
    (`first` when this run recorded it, so the alert goes once whatever shard or rerun trips again)."""
    trip = result.get("extra", {}).get("breaker")
    if not trip:
        return
    figures = {k: v for k, v in trip.items() if k != "reason"}
    first = holds.hold(send_key, trip["reason"], figures)
    hold = holds.get(send_key) or SendHold(send_key, 0.0, trip["reason"], figures)
    label = f"{result['channel']} campaign {result['campaign']!r} {result['date']}"
    raise SendHeldError(held_message(label, hold, result["counts"].get(PENDING, 0)), first=first)


def hold_text(hold: SendHold) -> str:
    """One line for the run summary and `status`: when and why the breaker held the send, and its release."""
    figures = hold.figures
    text = (f"held by its breaker {utc_label(hold.held_at)}: {hold.reason} ({figures.get('hard_bounces', 0)} hard "
            f"bounce(s), {figures.get('complaints', 0)} complaint(s), {figures.get('filtered', 0)} filtered of "
            f"{figures.get('outcomes', 0)} outcomes)")
    if hold.released_at is not None:
        return f"{text}; released by {hold.released_by} {utc_label(hold.released_at)} (breaker off)"
    return f"{text}; not released (python -m tasks release-send)"
