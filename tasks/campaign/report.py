"""What the campaign did for one date, from what is stored, for the run summary and `status` (no luigi).

- the segment load: LoadSegments' summary.json (counts by reason and channel) and where its
  rejects.csv is; a rejects.csv without a summary means the reject gate failed the load;
- every send of the date (each result file under <var_dir>/campaigns/<date>/, and each channel's
  configured send): its result file when it finished (counts by state, rate, duration,
  provider), else its ledger's counts (a send that failed or is still going). States are
  copied as they are: a state the ledger gains later shows without a change here; a send its
  breaker held carries `hold`, one line saying why and whether a person released it. E-mail and SMS
  sends also carry their delivery figures (delivered, bounced, complained, filtered: counts and
  rates over the messages sent, tasks/channels/delivery.py `figures`) from the ledger's delivery
  outcomes, as far as the events applied so far tell.

Reads [paths] and the channel sections (configured segments). Holds no address: counts only.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from tasks import config, state
from tasks.campaign import outcome, send_config, wiring
from tasks.campaign import segments as segments_core
from tasks.campaign.reconcile import sends_of_day
from tasks.channels.delivery import figures
from tasks.channels.ledger import SENT, SendKey, SendLedger, ledger_path
from tasks.state.holds import SendHolds, holds_path

DELIVERY_CHANNELS = ("email", "sms")  # the channels whose providers report delivery events (FCM has none)


def segment_report(date: dt.date) -> dict[str, object] | None:
    """The date's segment load: summary counts plus `rejects_file`; None when it never ran."""
    out_dir = segments_core.output_dir(config.var_dir(create=False), date)
    summary_path = out_dir / segments_core.SUMMARY_FILE
    rejects = out_dir / segments_core.REJECTS_FILE
    if summary_path.exists():
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        return {**summary, "rejects_file": str(rejects), "done": True}
    if rejects.exists():
        return {"done": False, "rejects_file": str(rejects), "note": "failed its reject gate (no customers.parquet)"}
    return None


def send_reports(date: dt.date) -> list[dict[str, object]]:
    """One dict per send of the date: channel, campaign, segment, provider, counts, rate, duration_s, done."""
    var_dir = config.var_dir(create=False)
    out = []
    for channel, campaign, segment in sends_of_day(date):
        path = wiring.result_path(var_dir, date, campaign, channel, segment)
        base: dict[str, object] = {"channel": channel, "campaign": campaign, "segment": segment}
        if channel in DELIVERY_CHANNELS:
            base["delivery"] = _delivery(var_dir, SendKey(campaign, date.isoformat(), channel))
        if path.exists():
            result = json.loads(path.read_text(encoding="utf-8"))
            out.append({**base, "provider": result.get("provider"), "target": result.get("target"),
                        "counts": {k: v for k, v in (result.get("counts") or {}).items() if v},
                        "rate": result.get("achieved_rate"), "duration_s": result.get("duration_s"), "done": True,
                        "result_file": str(path)})
            continue
        counts = _ledger_counts(var_dir, SendKey(campaign, date.isoformat(), channel))
        if counts:
            out.append({**base, "provider": send_config.channel_config(channel).provider,
                        "target": sum(counts.values()), "counts": counts, "rate": None, "duration_s": None,
                        "done": False})
    _add_holds(out, var_dir, date)
    return out


def _add_holds(sends: list[dict[str, object]], var_dir: Path, date: dt.date) -> None:
    """`hold` of each send its breaker held (no record is created by a report: none without the store)."""
    db = state.backend().existing_database(holds_path(var_dir))
    if db is None:
        return
    with SendHolds(db) as holds:
        held = {h.send_key: h for h in holds.all()}
    for send in sends:
        hold = held.get(wiring.send_events_key(SendKey(str(send["campaign"]), date.isoformat(), str(send["channel"]))))
        if hold is not None:
            send["hold"] = outcome.hold_text(hold)


def _ledger_counts(var_dir: Path, key: SendKey) -> dict[str, int]:
    """The send's counts by state in its ledger ({} when the ledger does not exist: a report creates none)."""
    db = state.backend().existing_database(ledger_path(var_dir, key.channel))
    if db is None:
        return {}
    with SendLedger(db) as ledger:
        return ledger.counts(key)


def _delivery(var_dir: Path, key: SendKey) -> dict[str, object] | None:
    """The send's delivery figures from its ledger (None when the ledger does not exist). The ledger holds every
    segment of the campaign's day and channel: the figures are the whole send's."""
    db = state.backend().existing_database(ledger_path(var_dir, key.channel))
    if db is None:
        return None
    with SendLedger(db) as ledger:
        return figures(ledger.delivery_counts(key), ledger.counts(key).get(SENT, 0))
