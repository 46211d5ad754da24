"""Campaign results in the warehouse: per-recipient outcomes and per-day segment loads (no luigi).

- `analytics.campaign_sends` ([results] campaign_sends_table): one row per recipient of a channel
  send, from the send ledger: campaign, date, channel, segment, provider, customer_id, state,
  reason, attempts, provider_message_id, first and last attempt time. No address ever goes
  there: customer_id is the join key. Every state string of the ledger is copied as it is.
  delivery, delivery_type, delivery_detail, delivery_at: the latest delivery outcome the ledger held
  when the send was exported (tasks/channels/delivery.py decides which wins); ExportCampaignEvents
  refreshes them for the sends whose events it exported.
- `analytics.campaign_events` ([results] campaign_events_table): one row per delivery event in the
  event store (tasks/state/events.py), never an address (a reason text is scrubbed of any address
  it quotes): event_seq, send_id and its parts, provider, event, times, provider ids, bounce type and
  classification, reason, error code. `export_events` loads every event stored after the highest
  event_seq already in the table, whatever send it belongs to.
- `analytics.segment_loads` ([results] segment_loads_table): one row per LoadSegments date,
  from its summary.json: counts read / valid / rejected / blank, valid addresses per channel,
  rejects by reason and channel issues by reason (JSON text), where rejects.csv is.

All are loaded in bulk (a Parquet file; Snowflake PUT + COPY INTO, the embedded warehouse reads
the file) and idempotently: one transaction deletes that send's (that date's) rows and loads
the new ones (`Dialect.replace_rows`; for events: the seq range of the export), so a re-run
replaces, never duplicates. A table made before a column existed gains it (ALTER TABLE ADD COLUMN
IF NOT EXISTS, at its end, where the load file puts it). The Parquet file
is written owner-only under <var_dir>/results/ and removed after the load. `export_send` reads
[results] and [paths]; the other functions take what they need as arguments.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tasks import config, state
from tasks.addresses import CHANNELS
from tasks.campaign import segments as segments_core
from tasks.channels.delivery import split_send_id
from tasks.channels.ledger import SendKey, SendLedger, ledger_path
from tasks.files import private_dir, private_file
from tasks.pii import mask_email, mask_phone
from tasks.state.events import EventStore, StoredEvent, events_path
from tasks.warehouse import MarkerTableTarget
from tasks.warehouse.client import WarehouseClient, session
from tasks.warehouse.sql import qualified

logger = logging.getLogger(__name__)

# column order = the CREATE TABLE order (the embedded load matches columns by position)
SENDS_SCHEMA = pa.schema([
    ("campaign", pa.string()), ("date", pa.date32()), ("channel", pa.string()), ("segment", pa.string()),
    ("provider", pa.string()), ("customer_id", pa.string()), ("state", pa.string()), ("reason", pa.string()),
    ("attempts", pa.int32()), ("provider_message_id", pa.string()), ("first_attempt_at", pa.timestamp("us")),
    ("last_attempt_at", pa.timestamp("us")), ("loaded_at", pa.timestamp("us")),
    ("delivery", pa.string()), ("delivery_type", pa.string()), ("delivery_detail", pa.string()),
    ("delivery_at", pa.timestamp("us")),
])
# columns campaign_sends gained after its first release: added to an existing table, in this order, at its end
ADDED_SENDS_COLUMNS = (("delivery", "VARCHAR"), ("delivery_type", "VARCHAR"), ("delivery_detail", "VARCHAR"),
                       ("delivery_at", "TIMESTAMP_NTZ"))
EVENTS_SCHEMA = pa.schema([
    ("event_seq", pa.int64()), ("send_id", pa.string()), ("campaign", pa.string()), ("date", pa.date32()),
    ("channel", pa.string()), ("customer_id", pa.string()), ("provider", pa.string()), ("event", pa.string()),
    ("provider_event", pa.string()), ("event_at", pa.timestamp("us")), ("received_at", pa.timestamp("us")),
    ("provider_event_id", pa.string()), ("provider_message_id", pa.string()), ("bounce_type", pa.string()),
    ("bounce_classification", pa.string()), ("reason", pa.string()), ("error_code", pa.string()),
    ("loaded_at", pa.timestamp("us")),
])
# an address quoted in a provider's reason text (an SMTP reply often names the mailbox)
_EMAIL_IN_TEXT = re.compile(r"[^\s<>()\[\]\"',;:@]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE_IN_TEXT = re.compile(r"\+?\d[\d ().-]{7,}\d")
LOADS_SCHEMA = pa.schema([
    ("date", pa.date32()), ("input_file", pa.string()), ("rows_read", pa.int32()), ("valid", pa.int32()),
    ("rejected", pa.int32()), ("blank_lines", pa.int32()), ("valid_email", pa.int32()), ("valid_sms", pa.int32()),
    ("valid_push", pa.int32()), ("rejected_by_reason", pa.string()), ("channel_issues_by_reason", pa.string()),
    ("rejects_file", pa.string()), ("duration_s", pa.float64()), ("loaded_at", pa.timestamp("us")),
])


def utc_now() -> dt.datetime:
    """Now in UTC without a zone (the tables' TIMESTAMP_NTZ columns are UTC)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _utc(epoch: float | None) -> dt.datetime | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, dt.UTC).replace(tzinfo=None)


def send_marker_id(key: SendKey, segment: str) -> str:
    """The marker-table row of one send's export: `campaign_sends:<campaign>:<date>:<channel>:<segment>`."""
    return f"campaign_sends:{key.campaign}:{key.date}:{key.channel}:{segment}"


def load_marker_id(date: dt.date) -> str:
    """The marker-table row of one day's segment-load export: `segment_loads:<date>`."""
    return f"segment_loads:{date.isoformat()}"


def send_rows(
    rows: Iterable[Mapping[str, Any]],
    key: SendKey,
    segment: str,
    provider: str,
    customer_ids: set[str] | None = None,
    loaded_at: dt.datetime | None = None,
) -> pa.Table:
    """campaign_sends rows of one send from its ledger rows (only `customer_ids`, the send's
    recipients, when given: one ledger holds every segment of a campaign's day and channel).

    The ledger keeps when a row was created (just before its first attempt) and last changed;
    a row never attempted (attempts 0) has neither time."""
    loaded_at = loaded_at or utc_now()
    cols: dict[str, list[Any]] = {name: [] for name in SENDS_SCHEMA.names}
    day = dt.date.fromisoformat(key.date)
    for row in rows:
        cid = str(row["customer_id"])
        if customer_ids is not None and cid not in customer_ids:
            continue
        attempted = int(row.get("attempts") or 0) > 0
        cols["customer_id"].append(cid)
        cols["state"].append(str(row["state"]))
        cols["reason"].append(row.get("reason"))
        cols["attempts"].append(int(row.get("attempts") or 0))
        cols["provider_message_id"].append(row.get("provider_message_id"))
        cols["first_attempt_at"].append(_utc(row.get("created_at")) if attempted else None)
        cols["last_attempt_at"].append(_utc(row.get("updated_at")) if attempted else None)
        for name in ("delivery", "delivery_type", "delivery_detail"):
            cols[name].append(row.get(name))
        cols["delivery_at"].append(_utc(row.get("delivery_at")))
    n = len(cols["customer_id"])
    for name, value in (("campaign", key.campaign), ("date", day), ("channel", key.channel), ("segment", segment),
                        ("provider", provider), ("loaded_at", loaded_at)):
        cols[name] = [value] * n
    return pa.table({name: pa.array(cols[name], type=SENDS_SCHEMA.field(name).type) for name in SENDS_SCHEMA.names})


def segment_load_row(
    date: dt.date, summary: Mapping[str, object], rejects_file: str | os.PathLike[str] | None,
    loaded_at: dt.datetime | None = None,
) -> pa.Table:
    """The segment_loads row of one LoadSegments date, from its summary.json."""
    per_channel = summary.get("valid_per_channel") or {}
    assert isinstance(per_channel, Mapping)
    row = {
        "date": date, "input_file": summary.get("input_path"), "rows_read": summary.get("rows_read"),
        "valid": summary.get("valid"), "rejected": summary.get("rejected"), "blank_lines": summary.get("blank_lines"),
        "valid_email": per_channel.get("email"), "valid_sms": per_channel.get("sms"),
        "valid_push": per_channel.get("push"),
        "rejected_by_reason": json.dumps(summary.get("rejected_by_reason") or {}, sort_keys=True),
        "channel_issues_by_reason": json.dumps(summary.get("channel_issues_by_reason") or {}, sort_keys=True),
        "rejects_file": None if rejects_file is None else str(rejects_file),
        "duration_s": summary.get("duration_s"), "loaded_at": loaded_at or utc_now(),
    }
    return pa.table({name: pa.array([row[name]], type=LOADS_SCHEMA.field(name).type) for name in LOADS_SCHEMA.names})


def replace_send(client: WarehouseClient, table: str, rows: pa.Table | Iterable[pa.Table], key: SendKey,
                 segment: str, work_dir: Path) -> int:
    """Replace the send's rows in `table` with `rows` (a table, or tables streamed into the load file one at a
    time) in one transaction; returns the row count."""
    params = {"campaign": key.campaign, "date": key.date, "channel": key.channel, "segment": segment}
    add_sends_columns(client, table)
    return _load(client, table, "campaign_sends_create", "campaign_sends_delete", params, rows, work_dir,
                 SENDS_SCHEMA)


def replace_segment_load(client: WarehouseClient, table: str, row: pa.Table, date: dt.date, work_dir: Path) -> None:
    """Replace the date's row in `table` in one transaction."""
    _load(client, table, "segment_loads_create", "segment_loads_delete", {"date": date.isoformat()}, row, work_dir)


def _load(client: WarehouseClient, table: str, create: str, delete: str, params: Mapping[str, object],
          rows: pa.Table | Iterable[pa.Table], work_dir: Path, schema: pa.Schema | None = None) -> int:
    table = qualified(table)
    client.ensure("create_schema", schema=table.split(".")[0])
    client.ensure(create, table=table)
    private_dir(work_dir)
    # a unique name: Snowflake's COPY names the staged file, so a concurrent load's file is never taken
    path = private_file(work_dir / f"{table.replace('.', '__')}-{uuid.uuid4().hex[:12]}.parquet")
    try:
        parts = [rows] if isinstance(rows, pa.Table) else rows
        count = 0
        with pq.ParquetWriter(path, rows.schema if isinstance(rows, pa.Table) else schema,
                              compression="zstd") as writer:
            for part in parts:
                writer.write_table(part)
                count += part.num_rows
        client.dialect.replace_rows(client, table, path, delete, params)
    finally:
        path.unlink(missing_ok=True)
    return count


def state_counts(rows: pa.Table) -> dict[str, int]:
    """Rows per state (what an analyst's GROUP BY state gives)."""
    counts: dict[str, int] = {}
    for name in rows.column("state").to_pylist():
        counts[name] = counts.get(name, 0) + 1
    return counts


def result_digest(result_path: str | os.PathLike[str]) -> str | None:
    """A short digest of a send's result file (what its export marker records), None without one."""
    try:
        return hashlib.sha256(Path(result_path).read_bytes()).hexdigest()[:16]
    except FileNotFoundError:
        return None


def load_digest(summary: Mapping[str, object]) -> str:
    """A short digest of what a segment load found (its summary.json without the time it took): what the
    load's export marker records, so a load redone on other data is exported again, and the same data
    loaded again (another host, a re-run) is not."""
    stable = {k: v for k, v in summary.items() if k != "duration_s"}
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:16]


def send_target(key: SendKey, segment: str) -> MarkerTableTarget:
    """The marker row of one send's export; its build id is the digest of the result file exported."""
    return MarkerTableTarget(send_marker_id(key, segment), config.ResultsConfig().campaign_sends_table)


def send_exported(key: SendKey, segment: str, result_path: str | os.PathLike[str]) -> bool:
    """True when the send's current result file is the one last exported: a result rewritten since
    (a re-run, a reconcile) makes the export due again."""
    digest = result_digest(result_path)
    return digest is not None and send_target(key, segment).build_id() == digest


def export_send(channel: str, date: dt.date, campaign: str, segment: str, customers_path: str | os.PathLike[str],
                provider: str, result_path: str | os.PathLike[str], expected: Mapping[str, int] | None = None) -> int:
    """Load one send's ledger rows (its segment's recipients) into campaign_sends and mark the result
    file exported; returns the row count. ExportSendResults runs it, and `python -m tasks reconcile`
    after settling unknowns."""
    key = SendKey(campaign, date.isoformat(), channel)
    # the ledger read a page at a time (pc.is_in would hash the segment's ids again for every page: a set once)
    ids = set(segments_core.customers_for_channel(customers_path, channel, segment).column("customer_id").to_pylist())
    counts: dict[str, int] = {}
    loaded_at = utc_now()

    def tables() -> Iterator[pa.Table]:
        with SendLedger(state.database(ledger_path(config.var_dir(), channel))) as ledger:
            for page in ledger.row_pages(key):
                rows = send_rows(page, key, segment, provider, ids, loaded_at=loaded_at)
                for name, n in state_counts(rows).items():
                    counts[name] = counts.get(name, 0) + n
                yield rows

    digest = result_digest(result_path) or "no-result-file"
    with session() as client:
        total = replace_send(client, config.ResultsConfig().campaign_sends_table, tables(), key, segment,
                             config.var_dir() / "results")
        send_target(key, segment).touch(client, digest)
    wanted = {k: v for k, v in (expected or {}).items() if v}
    if expected is not None and wanted != counts:
        logger.warning("%s %s/%s %s: the ledger's counts %s differ from the result file's %s (settled since?)",
                       channel, campaign, segment, date, counts, wanted)
    return total


# -- campaign_sends columns added since its first release, and campaign_events -------------------------------------

def add_sends_columns(client: WarehouseClient, table: str) -> None:
    """Give a campaign_sends table made before them the columns of ADDED_SENDS_COLUMNS (idempotent)."""
    table = qualified(table)
    client.ensure("create_schema", schema=table.split(".")[0])
    client.ensure("campaign_sends_create", table=table)
    for column, kind in ADDED_SENDS_COLUMNS:
        client.ensure("campaign_sends_add_column", table=table, column=column, type=kind)


def scrub(text: str | None) -> str | None:
    """A provider's reason text with every e-mail address and phone number it quotes masked (tasks/pii.py)."""
    if not text:
        return text
    text = _EMAIL_IN_TEXT.sub(lambda m: mask_email(m.group(0)), text)
    return _PHONE_IN_TEXT.sub(lambda m: mask_phone(re.sub(r"[^\d+]", "", m.group(0))), text)


def _day(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def event_rows(events: Iterable[StoredEvent], loaded_at: dt.datetime | None = None) -> pa.Table:
    """campaign_events rows of stored events: every column but the address."""
    loaded_at = loaded_at or utc_now()
    cols: dict[str, list[Any]] = {name: [] for name in EVENTS_SCHEMA.names}
    for e in events:
        ids = split_send_id(e.send_id)
        campaign, day, channel, customer_id = ids if ids else (None, "", e.channel, None)
        for name, value in (
            ("event_seq", e.seq), ("send_id", e.send_id), ("campaign", campaign), ("date", _day(day)),
            ("channel", channel), ("customer_id", customer_id), ("provider", e.provider), ("event", e.event),
            ("provider_event", e.provider_event), ("event_at", _utc(e.event_at)),
            ("received_at", _utc(e.received_at)), ("provider_event_id", e.dedupe_key),
            ("provider_message_id", e.provider_message_id), ("bounce_type", e.bounce_type),
            ("bounce_classification", e.bounce_classification), ("reason", scrub(e.reason)),
            ("error_code", e.error_code), ("loaded_at", loaded_at),
        ):
            cols[name].append(value)
    return pa.table({name: pa.array(cols[name], type=EVENTS_SCHEMA.field(name).type)
                     for name in EVENTS_SCHEMA.names})


def events_marker_id(date: dt.date) -> str:
    """The marker-table row of one day's events export: `campaign_events:<date>`."""
    return f"campaign_events:{date.isoformat()}"


def events_target(date: dt.date) -> MarkerTableTarget:
    """The marker row of one day's events export; its build id is the last event seq that export loaded."""
    return MarkerTableTarget(events_marker_id(date), config.ResultsConfig().campaign_events_table)


def export_events(date: dt.date, var_dir: str | os.PathLike[str], page: int = 10_000) -> tuple[int, int, int]:
    """Load every event stored after the highest event_seq already in campaign_events, through the store's last
    seq when the export started, into the table in one transaction (a crash before its commit loads nothing; a
    re-run loads the range again, once), then refresh campaign_sends' delivery columns of the sends those events
    belong to, and mark the date exported. Returns (events loaded, first seq loaded after, last seq)."""
    table = qualified(config.ResultsConfig().campaign_events_table)
    with EventStore(state.database(events_path(var_dir))) as store, session() as client:
        client.ensure("create_schema", schema=table.split(".")[0])
        client.ensure("campaign_events_create", table=table)
        after = int(client.run("campaign_events_last_seq", table=table)[0][0])
        through = store.last_seq()
        loaded_at = utc_now()
        send_keys: set[str] = set()

        def tables() -> Iterator[pa.Table]:
            seq = after
            while seq < through:
                events = [e for e in store.events_since(seq, page) if e.seq <= through]
                if not events:
                    return
                send_keys.update(e.send_key for e in events if e.send_key)
                seq = events[-1].seq
                yield event_rows(events, loaded_at)

        count = _load(client, table, "campaign_events_create", "campaign_events_delete",
                      {"after": after, "through": through}, tables(), Path(var_dir) / "results", EVENTS_SCHEMA)
        refresh_delivery(client, sorted(send_keys), var_dir)
        events_target(date).touch(client, str(through))
    return count, after, through


DELIVERY_SCHEMA = pa.schema([
    ("campaign", pa.string()), ("date", pa.date32()), ("channel", pa.string()), ("customer_id", pa.string()),
    ("delivery", pa.string()), ("delivery_type", pa.string()), ("delivery_detail", pa.string()),
    ("delivery_at", pa.timestamp("us")),
])


def _delivery_tables(send_keys: Sequence[str], var_dir: str | os.PathLike[str]) -> Iterator[pa.Table]:
    """The ledgers' delivery outcomes of these sends (`campaign/date/channel`), a page at a time."""
    for send_key in send_keys:
        campaign, day, channel = send_key.rsplit("/", 2)
        date = _day(day)
        if date is None or channel not in CHANNELS:
            continue
        key = SendKey(campaign, day, channel)
        with SendLedger(state.database(ledger_path(var_dir, channel))) as ledger:
            for page in ledger.delivery_pages(key):
                n = len(page)
                cids, kinds, types, details, ats = zip(*page, strict=True)
                yield pa.table({
                    "campaign": pa.array([campaign] * n, pa.string()), "date": pa.array([date] * n, pa.date32()),
                    "channel": pa.array([channel] * n, pa.string()), "customer_id": pa.array(cids, pa.string()),
                    "delivery": pa.array(kinds, pa.string()), "delivery_type": pa.array(types, pa.string()),
                    "delivery_detail": pa.array(details, pa.string()),
                    "delivery_at": pa.array([_utc(a) for a in ats], pa.timestamp("us")),
                })


def refresh_delivery(client: WarehouseClient, send_keys: Sequence[str], var_dir: str | os.PathLike[str]) -> int:
    """Set campaign_sends' delivery columns of these sends from their ledgers: the outcomes staged in a table of
    their own (loaded in bulk), then one UPDATE, then the staging table dropped. Returns the outcomes staged."""
    if not send_keys:
        return 0
    table = qualified(config.ResultsConfig().campaign_sends_table)
    add_sends_columns(client, table)
    staging = f"{table}_delivery_{uuid.uuid4().hex[:12]}"
    try:
        count = _load(client, staging, "campaign_sends_delivery_create", "campaign_sends_delivery_clear", {},
                      _delivery_tables(send_keys, var_dir), Path(var_dir) / "results", DELIVERY_SCHEMA)
        if count:
            client.run("campaign_sends_delivery_update", table=table, staging=staging)
    finally:
        client.run("drop_table", table=staging)
    return count
