"""Dry run of a day's sends: `python -m tasks preview --date D [--campaign C] [--channel X]`.

Everything a send does up to the request, for each channel: the segment (the day's
customers.parquet, or the segment CSV validated into a temporary folder when LoadSegments has
not run), the suppression list and store, one message per address, the frequency cap, quiet
hours (at the current time) and the template. It contacts no provider and changes no ledger
row (it reads the ledger and the store when they exist, and creates neither file; with
`[state] backend = postgres` it reads them in the shared database). Recipients are read in
batches and screened a batch at a time, as the send does.

Per channel it returns the count of each state the recipients would end in (`sent` meaning
"would be sent now"; `held` with the earliest and latest time they may go; recipients already
final in the ledger counted as `already_<state>`), and writes the first `limit` rendered
messages, addresses masked, to <var_dir>/campaigns/<date>/<campaign>/preview/<channel>.json
(owner-only). Sections read: those of a send (tasks/campaign/sends.py) and [segments].
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from tasks import config, state
from tasks.campaign import segments as segments_core
from tasks.campaign import sends
from tasks.channels.ledger import FINAL_STATES, SendKey, SendLedger, ledger_path
from tasks.channels.screen import SYSTEM_CLOCK, Clock, Hold, Skip
from tasks.channels.suppressions import SuppressionStore, suppressions_path
from tasks.errors import FatalApiError, MissingFieldError
from tasks.files import write_json_atomic

PREVIEW_LIMIT = 20


def preview_dir(var_dir: str | os.PathLike[str], date: datetime.date, campaign: str) -> Path:
    """<var_dir>/campaigns/<date>/<campaign>/preview/."""
    return Path(var_dir) / "campaigns" / date.isoformat() / campaign / "preview"


@contextlib.contextmanager
def _customers(var_dir: Path, date: datetime.date) -> Iterator[Path]:
    """The day's customers.parquet; without one, the segment CSV validated into a temporary folder."""
    path = segments_core.output_dir(var_dir, date) / segments_core.CUSTOMERS_FILE
    if path.is_file():
        yield path
        return
    cfg = config.SegmentsConfig()
    options = config.settings(
        segments_core.LoadOptions, cfg, segments=tuple(s.strip() for s in cfg.segments.split(",") if s.strip())
    )
    with tempfile.TemporaryDirectory(prefix="preview-", dir=var_dir) as tmp:  # var_dir is owner-only
        result = segments_core.load_segments(config.resolve_path(cfg.input_path), tmp, options)
        yield result.customers_path


@contextlib.contextmanager
def _existing(opener, path: Path):  # noqa: ANN001, ANN202 - a store's opener and its SQLite file
    """The store when it exists (always with shared state: the database is there), else None."""
    if not state.settings().shared and not path.exists():
        yield None
        return
    with opener(state.database(path)) as opened:
        yield opened


def preview_channel(channel: str, date: datetime.date, campaign: str, customers_path: Path, var_dir: Path,
                    segment: str = "", template: str = "", limit: int = PREVIEW_LIMIT,
                    clock: Clock = SYSTEM_CLOCK) -> dict[str, object]:
    """The dry run of one channel; returns its counts and writes its first `limit` messages."""
    cfg = sends.channel_config(channel)
    chosen = sends.channel_template(channel, template or cfg.template)
    segment = segment or cfg.segment
    recipients = sends.ParquetRecipients(customers_path, channel, segment, campaign, date)
    chosen.check_fields(sends.available_fields(channel, cfg, recipients))
    key = SendKey(campaign, date.isoformat(), channel)
    counts: collections.Counter[str] = collections.Counter()
    held: list[float] = []
    messages: list[dict[str, object]] = []
    render = sends.make_render(chosen, key, cfg)
    mask = sends.MASKS[channel]
    target = 0
    with (
        _existing(SendLedger, ledger_path(var_dir, channel)) as ledger,
        _existing(SuppressionStore, suppressions_path(var_dir)) as store,
    ):
        states = ledger.states(key) if ledger is not None else {}  # one id per recipient of a started send
        screen = sends.build_screen(channel, cfg, key, cfg.provider, customers_path, segment, ledger, store, clock)
        for batch in recipients.batches():
            target += len(batch.ids)
            for cid in batch.ids:
                if states.get(cid) in FINAL_STATES:
                    counts[f"already_{states[cid]}"] += 1
            todo = batch.build({cid for cid in batch.ids if states.get(cid) not in FINAL_STATES})
            verdicts = screen.check(todo)
            for recipient in todo:
                verdict = verdicts.get(recipient.customer_id)
                if isinstance(verdict, Skip):
                    counts[verdict.state] += 1
                    continue
                if isinstance(verdict, Hold):
                    counts["held"] += 1
                    if verdict.until is not None:
                        held.append(verdict.until)
                    else:
                        counts["held_without_time"] += 1
                    continue
                try:
                    content = render(recipient)
                except MissingFieldError:
                    counts["failed_missing_field"] += 1
                    continue
                except FatalApiError:
                    counts["failed"] += 1
                    continue
                counts["sent"] += 1
                if len(messages) < limit:
                    shown = {k: v for k, v in content.items() if k != "unsubscribe_url"}
                    messages.append({"customer_id": recipient.customer_id, "to": mask(recipient.address), **shown})
    report: dict[str, object] = {
        "channel": channel, "campaign": campaign, "date": date.isoformat(), "segment": segment,
        "provider": cfg.provider, "template": str(chosen.path), "target": target,
        "counts": dict(sorted(counts.items())),
        "held_until": [_utc(min(held)), _utc(max(held))] if held else None,
        "previewed_at": _utc(clock.time()), "messages": messages,
    }
    write_json_atomic(preview_dir(var_dir, date, campaign) / f"{channel}.json", report)
    return report


def preview(date: datetime.date, campaign: str = "demo", channels: Sequence[str] = sends.CHANNELS,
            template: str = "", segment: str = "", clock: Clock = SYSTEM_CLOCK) -> dict[str, dict[str, object]]:
    """The dry run of `channels` for one day and campaign; {channel: report}."""
    var_dir = config.var_dir()
    with _customers(var_dir, date) as customers_path:
        return {ch: preview_channel(ch, date, campaign, customers_path, var_dir, segment, template, clock=clock)
                for ch in channels}


def summary_line(report: dict[str, object]) -> str:
    """`email (outbox, demo): 880 sent, 2 suppressed, ... of 891` for the terminal."""
    counts = report["counts"]
    parts = ", ".join(f"{n} {state}" for state, n in counts.items()) or "nobody"  # type: ignore[union-attr]
    line = f"{report['channel']} ({report['provider']}, template {Path(str(report['template'])).name}): {parts} " \
           f"of {report['target']}"
    if report.get("held_until"):
        first, last = report["held_until"]  # type: ignore[misc]
        line += f"; held until {first}" + ("" if first == last else f" to {last}")
    return line


def _utc(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
