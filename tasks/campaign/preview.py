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
(owner-only). Sections read: those of a send (tasks/campaign/wiring.py) and [segments].
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tasks import config, state
from tasks.campaign import segments as segments_core
from tasks.campaign import send_config, wiring
from tasks.campaign.recipients import ParquetRecipients
from tasks.campaign.send_config import CHANNELS
from tasks.channels.ledger import FINAL_STATES, SendKey, SendLedger, ledger_path
from tasks.channels.screen import SYSTEM_CLOCK, Clock, Hold, Screen, Skip
from tasks.channels.send_result import utc_label
from tasks.channels.sender import Recipient, SourceBatch
from tasks.channels.suppressions import SuppressionStore, suppressions_path
from tasks.errors import FatalApiError, MissingFieldError
from tasks.files import write_json_atomic
from tasks.state.db import Database

PREVIEW_LIMIT = 20
Opened = TypeVar("Opened", bound=contextlib.AbstractContextManager[Any])


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
def _existing(opener: Callable[[Database], Opened], path: Path) -> Iterator[Opened | None]:
    """The store (a ledger, the suppression store) when it exists already, else None: a preview creates none."""
    db = state.backend().existing_database(path)
    if db is None:
        yield None
        return
    with opener(db) as opened:
        yield opened


def preview_channel(channel: str, date: datetime.date, campaign: str, customers_path: Path, var_dir: Path,
                    segment: str = "", template: str = "", limit: int = PREVIEW_LIMIT,
                    clock: Clock = SYSTEM_CLOCK) -> dict[str, object]:
    """The dry run of one channel; returns its counts and writes its first `limit` messages."""
    cfg = send_config.channel_config(channel)
    chosen = send_config.channel_template(channel, template or cfg.template)
    segment = segment or cfg.segment
    recipients = ParquetRecipients(customers_path, channel, segment, campaign, date)
    chosen.check_fields(send_config.available_fields(channel, cfg, recipients))
    key = SendKey(campaign, date.isoformat(), channel)
    tally = _Tally(wiring.make_render(chosen, key, cfg), send_config.MASKS[channel], limit)
    with (
        _existing(SendLedger, ledger_path(var_dir, channel)) as ledger,
        _existing(SuppressionStore, suppressions_path(var_dir)) as store,
    ):
        states = ledger.states(key) if ledger is not None else {}  # one id per recipient of a started send
        screen = wiring.build_screen(channel, cfg, key, cfg.provider, customers_path, segment, ledger, store, clock)
        for batch in recipients.batches():
            tally.batch(batch, states, screen)
    report: dict[str, object] = {
        "channel": channel, "campaign": campaign, "date": date.isoformat(), "segment": segment,
        "provider": cfg.provider, "template": str(chosen.path), "target": tally.target,
        "counts": dict(sorted(tally.counts.items())),
        "held_until": [utc_label(min(tally.held)), utc_label(max(tally.held))] if tally.held else None,
        "previewed_at": utc_label(clock.time()), "messages": tally.messages,
    }
    write_json_atomic(preview_dir(var_dir, date, campaign) / f"{channel}.json", report)
    return report


class _Tally:
    """What a preview counts, batch by batch: the state each recipient would end in, the hold times, and the
    first `limit` rendered messages (addresses masked)."""

    def __init__(self, render: Callable[[Recipient], dict[str, str]], mask: Callable[[str], str],
                 limit: int) -> None:
        self.render, self.mask, self.limit = render, mask, limit
        self.counts: collections.Counter[str] = collections.Counter()
        self.held: list[float] = []
        self.messages: list[dict[str, object]] = []
        self.target = 0

    def batch(self, batch: SourceBatch, states: dict[str, str], screen: Screen) -> None:
        """Count one source batch: recipients final in the ledger already, then the screen's verdicts, then
        the messages that would go now."""
        self.target += len(batch.ids)
        for cid in batch.ids:
            if states.get(cid) in FINAL_STATES:
                self.counts[f"already_{states[cid]}"] += 1
        todo = batch.build({cid for cid in batch.ids if states.get(cid) not in FINAL_STATES})
        verdicts = screen.check(todo)
        for recipient in todo:
            verdict = verdicts.get(recipient.customer_id)
            if isinstance(verdict, Skip):
                self.counts[verdict.state] += 1
            elif isinstance(verdict, Hold):
                self.counts["held"] += 1
                if verdict.until is not None:
                    self.held.append(verdict.until)
                else:
                    self.counts["held_without_time"] += 1
            else:
                self.message(recipient)

    def message(self, recipient: Recipient) -> None:
        """A recipient the screen lets go: rendered (a render failure counts as the send would fail it)."""
        try:
            content = self.render(recipient)
        except MissingFieldError:
            self.counts["failed_missing_field"] += 1
            return
        except FatalApiError:
            self.counts["failed"] += 1
            return
        self.counts["sent"] += 1
        if len(self.messages) < self.limit:
            shown = {k: v for k, v in content.items() if k != "unsubscribe_url"}
            self.messages.append({"customer_id": recipient.customer_id, "to": self.mask(recipient.address), **shown})


def preview(date: datetime.date, campaign: str = "demo", channels: Sequence[str] = CHANNELS,
            template: str = "", segment: str = "", clock: Clock = SYSTEM_CLOCK) -> dict[str, dict[str, object]]:
    """The dry run of `channels` for one day and campaign; {channel: report}."""
    var_dir = config.var_dir()
    with _customers(var_dir, date) as customers_path:
        return {ch: preview_channel(ch, date, campaign, customers_path, var_dir, segment, template, clock=clock)
                for ch in channels}


def summary_line(report: dict[str, Any]) -> str:
    """`email (outbox, demo): 880 sent, 2 suppressed, ... of 891` for the terminal."""
    parts = ", ".join(f"{n} {state}" for state, n in report["counts"].items()) or "nobody"
    line = f"{report['channel']} ({report['provider']}, template {Path(str(report['template'])).name}): {parts} " \
           f"of {report['target']}"
    if report.get("held_until"):
        first, last = report["held_until"]
        line += f"; held until {first}" + ("" if first == last else f" to {last}")
    return line
