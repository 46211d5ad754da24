"""Reconcile: settle `unknown` recipients with the provider's own record, where it keeps one.

An `unknown` is a request that may have reached the provider (a read timeout, a connection
dropped after the request was written, a run killed while it was in flight). Twilio can say:
a Message resource exists as soon as a create was accepted, and `GET .../Messages.json` lists
them by `To`, `From` and `DateSent`. For each unknown SMS of a send:

- found (to this number, from our sender, with this send's body, created no earlier than the
  recipient entered the ledger): `sent`, with the message's sid;
- not found and its last attempt older than `[sms_campaign] reconcile_grace_minutes`: back to
  `pending` (the provider never got it), and the next run sends it;
- not found but younger: stays `unknown` (a message still in Twilio's queue has no DateSent).

Every lookup request takes a token from a bucket with the channel's limit ([sms_campaign] rate,
burst), as a send would; a 429 or 5xx is asked again after its Retry-After (3 tries a page).
The send that follows starts its own bucket, so the first second after a reconcile may see up
to twice the burst; the sender retries a 429 (never delivered) like any other. SendGrid (its
Email Activity API is a paid add-on at 6 requests/minute) and FCM (no lookup at all) cannot
say, so their unknowns stay unknown. `reconcile_send` runs before every Twilio send (tasks.py)
and from `python -m tasks reconcile`; `reconcile_day` also fixes the send's result (counts; when
rows went back to pending, the result files of the send and its shards and, with Postgres state,
their marker rows are removed, so the next run sends them) and reloads its rows into the
warehouse. A message to the number since the recipient entered the ledger with another body (the
template was edited or another named) is never taken as "not found": the row stays unknown.
Reads [<channel>_campaign], [paths], [results].
"""

from __future__ import annotations

import datetime as dt
import glob
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks import config, state
from tasks.campaign import results as results_core
from tasks.campaign import send_config, wiring
from tasks.campaign.providers import limits, make_client
from tasks.campaign.recipients import ParquetRecipients
from tasks.campaign.send_config import CHANNELS
from tasks.channels.ledger import UNKNOWN, SendKey, SendLedger, Shard, ledger_path
from tasks.channels.sender import Recipient
from tasks.channels.twilio import TwilioClient, created_at
from tasks.errors import ApiError, ConfigError, RetriableApiError, TasksError
from tasks.state.targets import ResultTarget

if TYPE_CHECKING:  # pyrate_limiter is loaded where a limiter is made, not by `status`
    from tasks.channels.limiter import ChannelLimiter

logger = logging.getLogger(__name__)

LOOKUP_PROVIDERS = frozenset({"twilio"})
WHY_NO_LOOKUP = {
    "outbox": "the outbox has no delivery record to ask",
    "sendgrid": "SendGrid has no idempotency key and its Email Activity API is a paid add-on (6 requests/min)",
    "fcm": "FCM has no message lookup",
}
CLOCK_SKEW_S = 300.0  # a message created this much before its ledger row still counts as ours
LOOKUP_ATTEMPTS = 3  # per page: a 429 / 5xx / timeout waits (Retry-After, else 1 s) and asks again


@dataclass
class ReconcileResult:
    """What one reconcile of one send did."""

    channel: str
    campaign: str
    date: str
    segment: str
    provider: str
    unknown_before: int = 0
    settled_sent: int = 0
    reopened: int = 0
    still_unknown: int = 0
    other_body: int = 0  # of still_unknown: a message with another body was found (never reopened)
    lookups: int = 0
    note: str = ""
    settled: dict[str, str] = field(default_factory=dict, repr=False)  # customer_id -> sid (never logged)

    def as_dict(self) -> dict[str, object]:
        payload = asdict(self)
        payload.pop("settled")
        return payload

    def __str__(self) -> str:
        text = (f"{self.channel} {self.campaign}/{self.segment} {self.date} via {self.provider}: "
                f"{self.unknown_before} unknown -> {self.settled_sent} sent, {self.reopened} pending again, "
                f"{self.still_unknown} still unknown ({self.lookups} lookups)")
        if self.other_body:
            text += (f"; {self.other_body} of them got a message from us with another body than this send's "
                     "template renders (left unknown, never sent again)")
        return text + (f"; {self.note}" if self.note else "")


def _sum_results(total: ReconcileResult, parts: list[ReconcileResult]) -> ReconcileResult:
    """One send's result from its shards' results."""
    for part in parts:
        for name in ("unknown_before", "lookups", "settled_sent", "reopened", "still_unknown", "other_body"):
            setattr(total, name, getattr(total, name) + getattr(part, name))
        total.settled.update(part.settled)
        total.note = total.note or part.note
    return total


def supported(cfg: config.ChannelCampaignConfig) -> bool:
    """True when the section's provider can look a message up (Twilio)."""
    return cfg.provider in LOOKUP_PROVIDERS


def reconcile_send(
    channel: str, date: dt.date, campaign: str, segment: str, customers_path: str | os.PathLike[str],
    now: float | None = None, shard: Shard | None = None, template: str = "",
) -> ReconcileResult:
    """Settle the unknown recipients of one send (or of one `shard` of it) with the provider's lookup (see the
    module docstring). A sharded send without `shard` is settled shard by shard, each under its own lock.
    `template` names the send's template (empty: the section's), whose body the lookup matches."""
    cfg = send_config.channel_config(channel)
    key = SendKey(campaign, date.isoformat(), channel)
    result = ReconcileResult(channel, campaign, key.date, segment, cfg.provider)
    with SendLedger(state.database(ledger_path(config.var_dir(), channel))) as ledger:
        rows = ledger.rows(key, UNKNOWN)
        count = max(max((int(r["shard"]) for r in rows), default=0) + 1, cfg.shards)
        if shard is None and count > 1:  # e.g. `python -m tasks reconcile`: every shard under the lock its send
            # takes (SendShard(i, N) locks shard i of N), so a reconcile never runs beside that shard's send
            parts = [reconcile_send(channel, date, campaign, segment, customers_path, now, Shard(i, count), template)
                     for i in range(count)]
            return _sum_results(result, parts)
        shard = shard or Shard()
        unknown = {r["customer_id"]: r for r in rows if shard.count == 1 or int(r["shard"]) == shard.index}
        if not unknown:
            return result
        recipients = _recipients(unknown, customers_path, channel, segment, campaign, date)
        result.unknown_before = len(recipients)
        if not supported(cfg):
            result.still_unknown = len(recipients)
            result.note = WHY_NO_LOOKUP.get(cfg.provider, f"{cfg.provider} has no lookup")
            return result
        lookup = _Lookup(ledger, key, shard, cfg, template, time.time() if now is None else now)
        lookup.settle(recipients, unknown, result)
    logger.info("reconcile %s", result)
    return result


def _recipients(unknown: dict[str, dict[str, Any]], customers_path: str | os.PathLike[str], channel: str,
                segment: str, campaign: str, date: dt.date) -> dict[str, Recipient]:
    """customer_id -> the recipient (address, fields) of each unknown row still in the customers file."""
    source = ParquetRecipients(customers_path, channel, segment, campaign, date)
    return {r.customer_id: r for batch in source.batches() for r in batch.build(set(unknown))}


@dataclass(frozen=True)
class _Lookup:
    """One reconcile's lookups: the send's ledger and run lock, its section, template and `now` (epoch s)."""

    ledger: SendLedger
    key: SendKey
    shard: Shard
    cfg: config.ChannelCampaignConfig
    template: str
    now: float

    def settle(self, recipients: dict[str, Recipient], unknown: dict[str, dict[str, Any]],
               result: ReconcileResult) -> None:
        """Look every recipient up (under the send's run lock, each request paced by the channel's limit)."""
        channel = self.key.channel
        problems = send_config.config_problems(channel, self.cfg)
        if problems:
            raise ConfigError("; ".join(what for _, _, what in problems))
        chosen = send_config.channel_template(channel, self.template or self.cfg.template)
        render = wiring.make_render(chosen, self.key, self.cfg)
        client = make_client(channel, self.cfg, config.var_dir(), self.key)
        if not isinstance(client, TwilioClient):
            client.close()
            raise ConfigError(f"[{channel}_campaign] provider = {self.cfg.provider}: no lookup to reconcile with")
        from tasks.channels.limiter import ChannelLimiter

        rate, burst = limits(self.cfg)
        try:
            with ChannelLimiter(rate, burst, name=f"{channel}-lookup") as limiter, \
                    self.ledger.run_lock(self.key, self.shard):
                for cid, recipient in sorted(recipients.items()):
                    body = render(recipient)["body"]
                    found = _find(client, limiter, recipient.address, body, float(unknown[cid]["created_at"]))
                    self._settle_one(cid, unknown[cid], found, result)
        finally:
            client.close()

    def _settle_one(self, cid: str, row: dict[str, Any], found: tuple[str | None, bool, int],
                    result: ReconcileResult) -> None:
        """One recipient by what its lookup found: sent; left unknown (another body, or too recent); pending."""
        sid, other, lookups = found
        result.lookups += lookups
        if sid is not None:
            if self.ledger.settle_unknown(self.key, cid, sid):
                result.settled_sent += 1
                result.settled[cid] = sid
        elif other:
            # a message from us reached this number since, with another body (the template was
            # edited, or another one was named): it may be this send's, so never send it again
            result.still_unknown += 1
            result.other_body += 1
        elif self.now - float(row["updated_at"]) >= 60.0 * self._grace_minutes():
            reason = f"not found at {self.cfg.provider} {self._grace_minutes():g} min after the last attempt"
            result.reopened += len(self.ledger.reopen(self.key, [cid], reason))
        else:
            result.still_unknown += 1

    def _grace_minutes(self) -> float:
        return config.SmsCampaignConfig().reconcile_grace_minutes


def _find(client: TwilioClient, limiter: ChannelLimiter, address: str, body: str,
          entered_at: float) -> tuple[str | None, bool, int]:
    """(sid of our message to `address` with `body`, whether a message to it with another body was sent since the
    recipient entered the ledger, requests made): every page costs one token."""
    since = (dt.datetime.fromtimestamp(entered_at - CLOCK_SKEW_S, dt.UTC) - dt.timedelta(days=1)).date()
    page: str | None = None
    requests_made = 0
    candidates: list[tuple[float, str]] = []
    other = False
    while True:
        for attempt in range(1, LOOKUP_ATTEMPTS + 1):
            limiter.acquire()
            requests_made += 1
            try:
                messages, page = client.list_messages(address, since, page)
                break
            except RetriableApiError as exc:  # a GET changes nothing: retrying is always safe
                if attempt == LOOKUP_ATTEMPTS:
                    raise
                time.sleep(min(exc.retry_after or 1.0, 30.0))
        for message in messages:
            created = created_at(message)
            if message.get("to") != address:
                continue
            if created is not None and created < entered_at - CLOCK_SKEW_S:
                continue  # an older message to this number (another day's send)
            if message.get("body") not in (None, body):
                other = True
                continue
            candidates.append((created or 0.0, str(message.get("sid"))))
        if page is None:
            break
    return (min(candidates)[1] if candidates else None), other, requests_made


# ---------------------------------------------------------------- a day, from the CLI


def sends_of_day(date: dt.date, campaign: str | None = None) -> list[tuple[str, str, str]]:
    """(channel, campaign, segment) of every send of `date` with a result file, plus each channel's
    configured send of `campaign` (default `demo`): a send that died has no result file yet."""
    found: set[tuple[str, str, str]] = set()
    base = config.var_dir() / "campaigns" / date.isoformat()
    for path in sorted(base.glob("*/*.json")) if base.is_dir() else []:
        # a shard's result file names its send: <channel>-<segment>.shard-<i>-of-<n>
        channel, _, segment = wiring.SHARD_SUFFIX.sub("", path.stem).partition("-")
        if channel in CHANNELS and campaign in (None, path.parent.name):
            found.add((channel, path.parent.name, segment))
    for channel in CHANNELS:
        found.add((channel, campaign or "demo", send_config.channel_config(channel).segment))
    return sorted(found)


def reconcile_day(date: dt.date, campaign: str | None, customers_path: Path) -> tuple[list[ReconcileResult], bool]:
    """Reconcile every send of `date` (of `campaign`); (results, whether every step worked)."""
    out: list[ReconcileResult] = []
    ok = True
    for channel, name, segment in sends_of_day(date, campaign):
        try:
            result = reconcile_send(channel, date, name, segment, customers_path)
        except (ApiError, ConfigError) as exc:
            logger.error("reconcile %s %s/%s %s: %s", channel, name, segment, date, exc)
            ok = False
            continue
        if result.unknown_before == 0:
            continue
        out.append(result)
        if result.settled_sent or result.reopened:
            ok = _refresh(result, customers_path) and ok
    return out, ok


def _refresh(result: ReconcileResult, customers_path: Path) -> bool:
    """After rows changed state: fix the send's result (or mark the send not done) and reload its warehouse
    rows."""
    date = dt.date.fromisoformat(result.date)
    path = wiring.result_path(config.var_dir(), date, result.campaign, result.channel, result.segment)
    target = state.backend().result_target(path, wiring.marker_id(result.channel, result.campaign, date,
                                                                   result.segment))
    if result.reopened:
        _unmark(result, target)
        return True
    payload = target.read()
    if payload is None:
        return True  # the send never finished: its next run writes the result and exports
    counts = dict(payload.get("counts") or {})
    counts[UNKNOWN] = counts.get(UNKNOWN, 0) - result.settled_sent
    counts["sent"] = counts.get("sent", 0) + result.settled_sent
    payload["counts"], payload["unknown"] = counts, counts[UNKNOWN]
    payload.setdefault("reconciled", []).append({**result.as_dict(), "at": dt.datetime.now(dt.UTC).isoformat()})
    target.write(payload)
    try:
        results_core.export_send(result.channel, date, result.campaign, result.segment, customers_path,
                                 str(payload.get("provider", "")), expected=counts, result_path=path)
    except TasksError as exc:
        logger.error("reconcile: %s rows not reloaded into the warehouse (%s); the next run's export does it",
                     result.channel, exc)
        return False
    return True


def _unmark(result: ReconcileResult, target: ResultTarget) -> None:
    """Rows are pending again: the send is not complete any more, nor are its shards, so the next run sends
    them; every completion target goes (result files here, and what the backend keeps beside them)."""
    path = Path(target.path)
    files = [p for p in (path, *path.parent.glob(f"{glob.escape(path.stem)}.shard-*-of-*.json")) if p.exists()]
    for p in files:
        p.unlink(missing_ok=True)
    markers = target.unmark()
    logger.info("reconcile: %d recipient(s) of %s are pending again; the send is marked not done (%d result "
                "file(s), %d marker(s) removed), so its next run sends them",
                result.reopened, result.channel, len(files), markers)
