"""What a send checks before each request: suppressions, one message per address, the frequency cap,
quiet hours. Pure rules plus the screen the sender calls (tasks/channels/screen.py).

Sections read (through tasks/campaign/wiring.py, which passes plain values): [campaign]
suppression_list and frequency_cap, [sms_campaign] / [push_campaign] quiet_hours,
default_timezone. In the order a recipient meets them:

1. Suppressed: its address is on `[campaign] suppression_list` (a CSV `channel,address`, read
   at every send) or in the suppression store (provider opt-outs, one-click unsubscribes,
   `python -m tasks suppress`), for its channel or for `all`; or its customer id unsubscribed.
   The store is asked just before each request, so an entry added mid-send is honoured.
2. Duplicate address: within one send, a second customer id with the same normalised address
   (the first by customer id keeps it), found in one pass over the send's customers before the
   first request, so every shard of the send agrees.
3. Capped: `frequency_cap = N/<window>` and the customer already had N messages on this channel
   within the window, in any campaign or date (from the ledger; `sending`, `sent` and `unknown`
   count: each may have reached the customer).
4. Held: quiet hours in the recipient's local time. The zone comes from the segment CSV's
   `timezone` column, else the phone number (phonenumbers' zone data; a number spanning zones
   must be inside every zone's window); with none, or zones whose windows never overlap (+1 800
   numbers map to 42 zones), `default_timezone` decides; without it the recipient is held.
"""

from __future__ import annotations

import csv
import datetime
import functools
import logging
import os
import re
import threading
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from tasks import addresses, pii, state
from tasks.campaign import segments as segments_core
from tasks.campaign.segments.model import TIMEZONE_COLUMN
from tasks.channels.base import Message
from tasks.channels.ledger import CAPPED, DUPLICATE_ADDRESS, SUPPRESSED, SendKey, SendLedger
from tasks.channels.screen import SYSTEM_CLOCK, ClaimCap, Clock, Hold, Screened, Skip
from tasks.channels.suppressions import Suppression, SuppressionStore, suppressions_path
from tasks.errors import ConfigError

logger = logging.getLogger(__name__)

# The TCPA's window for marketing texts is 8:00-21:00 local: quiet from 21:00 to 8:00.
TCPA_QUIET_HOURS = "21:00-08:00"
_LOOKAHEAD = 2 * 86_400  # how far ahead a common window of several zones is looked for
_MASKS = {"email": pii.mask_email, "sms": pii.mask_phone, "push": pii.mask_token}


# -- the frequency cap ------------------------------------------------------------------------------

@dataclass(frozen=True)
class FrequencyCap:
    """At most `limit` messages per customer per channel in any `window` seconds."""

    limit: int
    window: float
    text: str


def parse_frequency_cap(text: str) -> FrequencyCap | None:
    """`2/7d` -> FrequencyCap(2, 7 days); `off` or empty -> None; ConfigError otherwise."""
    value = text.strip().lower()
    if value in ("", "off", "none"):
        return None
    match = re.fullmatch(r"(\d+)\s*/\s*(\d+)\s*([dh])", value)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise ConfigError(f"[campaign] frequency_cap = {text!r}: expected N/<days>d or N/<hours>h (e.g. 2/7d), "
                          f"N and the window at least 1, or 'off'")
    unit = 86_400 if match.group(3) == "d" else 3_600
    return FrequencyCap(int(match.group(1)), int(match.group(2)) * unit, value)


# -- quiet hours --------------------------------------------------------------------------------------

def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    try:
        return zoneinfo.ZoneInfo(name.strip())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


@functools.lru_cache(maxsize=65_536)
def zones_for_phone(e164: str) -> tuple[str, ...]:
    """The IANA zones of a phone number (phonenumbers' data); () when unknown."""
    import phonenumbers  # here: its tables load when a send screens quiet hours, not for `status`
    from phonenumbers import timezone as phone_zones

    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = phone_zones.time_zones_for_number(number)
    return tuple(z for z in zones if z != "Etc/Unknown" and _zone(z) is not None)


@dataclass(frozen=True)
class QuietHours:
    """No sending from `start` to `end` (minutes after local midnight; `start > end` spans midnight)."""

    start: int
    end: int
    default_zone: str = ""
    text: str = TCPA_QUIET_HOURS

    def quiet_at(self, epoch: float, zone: zoneinfo.ZoneInfo) -> bool:
        local = datetime.datetime.fromtimestamp(epoch, zone)
        minute = local.hour * 60 + local.minute + local.second / 60
        if self.start > self.end:
            return minute >= self.start or minute < self.end
        return self.start <= minute < self.end

    def _openings(self, zone: zoneinfo.ZoneInfo, now: float) -> list[float]:
        """The times the window opens (the quiet period ends) in `zone` around the next two days."""
        today = datetime.datetime.fromtimestamp(now, zone).date()
        hour, minute = divmod(self.end, 60)
        out = []
        for offset in range(-1, 4):
            day = today + datetime.timedelta(days=offset)
            out.append(datetime.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).timestamp())
        return out

    def next_window(self, zones: Sequence[zoneinfo.ZoneInfo], now: float) -> float | None:
        """The first time at or after `now` inside every zone's window (now itself when open); None when
        the zones have no common window within two days (their windows never overlap)."""
        if not any(self.quiet_at(now, z) for z in zones):
            return now
        candidates = sorted(t for z in zones for t in self._openings(z, now) if now < t <= now + _LOOKAHEAD)
        return next((t for t in candidates if not any(self.quiet_at(t, z) for z in zones)), None)

    def check(self, zone_names: Sequence[str], now: float) -> Hold | None:
        """None when every zone of the recipient is inside its window now, else when it may go."""
        zones = [z for z in (_zone(n) for n in zone_names) if z is not None]
        if zones:
            when = self.next_window(zones, now)
            if when is not None:
                return None if when == now else Hold(when, f"quiet hours {self.text} in {_zones_label(zone_names)}")
            why = f"the windows of {len(zones)} zones never overlap"
        else:
            why = "time zone unknown"
        default = _zone(self.default_zone) if self.default_zone else None
        if default is None:
            return Hold(None, f"quiet hours {self.text}: {why}, and no default_timezone; held, not sent")
        when = self.next_window([default], now)
        if when is None:
            return Hold(None, f"quiet hours {self.text} leave no window in {self.default_zone}")
        return None if when == now else Hold(when, f"quiet hours {self.text} in {self.default_zone} ({why})")


def _zones_label(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{len(names)} zones"


def parse_quiet_hours(text: str, provider: str, default_zone: str = "") -> QuietHours | None:
    """`21:00-08:00` -> QuietHours; `off` -> None; `auto` -> the TCPA window with a real provider and
    None with the outbox (the demo runs at any hour). ConfigError for anything else."""
    if default_zone.strip() and _zone(default_zone) is None:
        raise ConfigError(f"default_timezone = {default_zone!r} is not an IANA time zone")
    value = text.strip().lower()
    if value == "auto":
        value = "off" if provider == "outbox" else TCPA_QUIET_HOURS
    if value in ("", "off", "none"):
        return None
    match = re.fullmatch(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})", value)
    if not match:
        raise ConfigError(f"quiet_hours = {text!r}: expected HH:MM-HH:MM (e.g. 21:00-08:00), 'auto' or 'off'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59 or (h1, m1) == (h2, m2):
        raise ConfigError(f"quiet_hours = {text!r}: not two different times of day")
    return QuietHours(h1 * 60 + m1, h2 * 60 + m2, default_zone.strip(), value)


def zone_hints(channel: str, address: str, fields: Mapping[str, str | None]) -> tuple[str, ...]:
    """Where a recipient lives: the CSV's `timezone` column when it names a zone, else the zones of its
    phone number (the address for SMS; the `phone` field for push)."""
    named = fields.get(TIMEZONE_COLUMN)
    if named and _zone(named) is not None:
        return (named.strip(),)
    phone = address if channel == "sms" else fields.get("phone")
    return zones_for_phone(phone) if phone else ()


# -- suppressions --------------------------------------------------------------------------------------

def read_suppression_list(path: str | os.PathLike[str], region: str = "US") -> set[tuple[str, str]]:
    """{(channel, normalised address)} of a `channel,address` CSV; ConfigError naming bad lines (an
    opt-out that cannot be read must stop the send, not be skipped)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"[campaign] suppression_list {path} does not exist") from None
    rows = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(rows, [])]
    if header[:2] != ["channel", "address"]:
        raise ConfigError(f"[campaign] suppression_list {path}: the header must be `channel,address`")
    entries: set[tuple[str, str]] = set()
    bad: list[int] = []
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        entry = parse_entry(row[0] if row else "", row[1] if len(row) > 1 else "", region)
        if entry is None:
            bad.append(line)
        else:
            entries.add(entry)
    if bad:
        raise ConfigError(f"[campaign] suppression_list {path}: line(s) {bad[:20]} are not `channel,address` with "
                          f"channel email, sms, push or all and a valid address for it")
    return entries


def parse_entry(channel: str, address: str, region: str = "US") -> tuple[str, str] | None:
    """(channel, normalised address), or None when the address is not valid for the channel. For `all`
    the address is an e-mail or a phone number (a device token belongs to push)."""
    channel = channel.strip().lower()
    if channel == "all":
        guessed = addresses.channel_of(address, region)
        return ("all", guessed[1]) if guessed else None
    if channel not in addresses.CHANNELS:
        return None
    value = addresses.normalise(channel, address, region)
    return (channel, value) if value else None


def open_suppressions(var_dir: str | os.PathLike[str]) -> SuppressionStore:
    """The project's suppression store, in the state backend: <var_dir>/ledger/suppressions.sqlite3, or the
    shared database with `[state] backend = postgres` (every host's sends and unsubscribes in one place)."""
    return SuppressionStore(state.database(suppressions_path(var_dir)))


def send_duplicates(customers_path: str | os.PathLike[str], channel: str, segment: str,
                    batch_rows: int = 65_536) -> dict[str, str]:
    """duplicate_addresses over one send's customers (`segment` with an address for `channel`), read from
    customers.parquet in two streamed scans of the address column: a 64-bit hash per address finds the
    hashes held more than once, then only their rows are compared as strings (a hash collision is no
    duplicate). Memory holds 8 bytes per customer and one batch, never the column (a million customers:
    8 MB, where the column and its counts took ~80 MB)."""
    import pyarrow.dataset as ds  # here: it imports pandas, which the CLI's `status` never needs

    column = segments_core.CHANNEL_COLUMNS[channel]
    _, wanted = segments_core.channel_scan(customers_path, channel, segment)
    dataset = ds.dataset(customers_path, format="parquet")

    def batches(columns: list[str]) -> Iterator[pa.RecordBatch]:
        yield from dataset.scanner(columns=columns, filter=wanted, batch_size=batch_rows,
                                   use_threads=False).to_batches()

    def hashes(batch: pa.RecordBatch) -> np.ndarray:
        values = batch.column(column).to_pylist()
        return np.fromiter((hash(v) for v in values), dtype=np.int64, count=len(values))

    parts = [hashes(b) for b in batches([column])]
    if not parts:
        return {}
    values, counts = np.unique(np.concatenate(parts), return_counts=True)
    shared = values[counts > 1]
    del parts, values, counts
    if not len(shared):
        return {}
    pairs: list[tuple[str, str]] = []
    for batch in batches(["customer_id", column]):
        keep = np.flatnonzero(np.isin(hashes(batch), shared))
        if len(keep):
            taken = batch.take(pa.array(keep))
            pairs += zip((str(c) for c in taken.column("customer_id").to_pylist()),
                         taken.column(column).to_pylist(), strict=True)
    return duplicate_addresses(pairs)


def duplicate_addresses(recipients: Iterable[tuple[str, str]]) -> dict[str, str]:
    """customer_id -> the customer id that has its address first, for every recipient whose (normalised)
    address an earlier one (by customer id) already has. `recipients` are (customer_id, address)."""
    first: dict[str, str] = {}
    duplicates: dict[str, str] = {}
    for cid, address in sorted(recipients):
        holder = first.setdefault(address, cid)
        if holder != cid:
            duplicates[cid] = holder
    return duplicates


# -- the screen -----------------------------------------------------------------------------------------

class CampaignScreen:
    """The checks above for one channel send, in that order (tasks/channels/screen.py's Screen).

    `ledger` and `store` may be None (a preview of a project that never sent). Thread-safe: the
    store and the ledger lock their connections; everything else is read-only.
    """

    def __init__(
        self,
        key: SendKey,
        provider: str,
        *,
        listed: AbstractSet[tuple[str, str]] = frozenset(),
        store: SuppressionStore | None = None,
        duplicates: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
        cap: FrequencyCap | None = None,
        ledger: SendLedger | None = None,
        quiet: QuietHours | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.key, self.channel, self.provider = key, key.channel, provider
        self.listed = listed
        self.store = store
        # a mapping, or how to compute it: then computed at the first check (a send with nothing left to
        # screen never scans for duplicates)
        self._duplicates = duplicates if duplicates is not None else {}
        self._duplicates_lock = threading.Lock()
        self.cap = cap
        self.ledger = ledger
        self.quiet = quiet
        self.clock = clock

    @property
    def duplicates(self) -> Mapping[str, str]:
        with self._duplicates_lock:
            if callable(self._duplicates):
                self._duplicates = self._duplicates()
            return self._duplicates

    def recheck(self, recipients: Sequence[Screened]) -> dict[str, Skip | Hold]:
        """With the token in hand: only what can change within a send, the suppression store (an opt-out or
        unsubscribe recorded meanwhile). The list, the duplicates and quiet hours were checked a moment ago,
        and the cap is counted again by the claim itself, under a lock (claim_cap)."""
        if self.store is None or not recipients:
            return {}
        found = self.store.find_many(self.channel, [(r.customer_id, r.address) for r in recipients])
        return {cid: self._suppressed(entry) for cid, entry in found.items()}

    def claim_cap(self) -> ClaimCap | None:
        """The cap again, for the claim to count under its lock (see tasks/channels/screen.py)."""
        if self.cap is None or self.ledger is None:
            return None
        return ClaimCap(self.cap.limit, self.clock.time() - self.cap.window,
                        f"{{count}} message(s) on {self.channel} within frequency_cap {self.cap.text} "
                        "(counted at the claim: another send claimed this customer meanwhile)")

    @staticmethod
    def _suppressed(entry: Suppression) -> Skip:
        what = "address" if entry.kind == "address" else "customer"
        return Skip(SUPPRESSED, f"{what} suppressed on {entry.channel} ({entry.source})")

    def check(self, recipients: Sequence[Screened]) -> dict[str, Skip | Hold]:
        """customer_id -> Skip or Hold for those of `recipients` that may not go now: one store query and one
        ledger query for the lot."""
        verdicts: dict[str, Skip | Hold] = {}
        for r in recipients:
            if (self.channel, r.address) in self.listed or ("all", r.address) in self.listed:
                verdicts[r.customer_id] = Skip(SUPPRESSED, "on [campaign] suppression_list")
        rest = [r for r in recipients if r.customer_id not in verdicts]
        if self.store is not None and rest:
            found = self.store.find_many(self.channel, [(r.customer_id, r.address) for r in rest])
            for cid, entry in found.items():
                verdicts[cid] = self._suppressed(entry)
            rest = [r for r in rest if r.customer_id not in verdicts]
        duplicates = self.duplicates
        for r in rest:
            first = duplicates.get(r.customer_id)
            if first is not None:
                verdicts[r.customer_id] = Skip(DUPLICATE_ADDRESS, f"customer {first} has the same address in this send")
        rest = [r for r in rest if r.customer_id not in verdicts]
        now = self.clock.time()
        if self.cap is not None and self.ledger is not None and rest:
            recent = self.ledger.recent_messages(self.key, [r.customer_id for r in rest], now - self.cap.window)
            for cid, count in recent.items():
                if count >= self.cap.limit:
                    verdicts[cid] = Skip(CAPPED, f"{count} message(s) on {self.channel} within frequency_cap "
                                                 f"{self.cap.text}")
            rest = [r for r in rest if r.customer_id not in verdicts]
        if self.quiet is not None:
            for r in rest:
                held = self.quiet.check(zone_hints(self.channel, r.address, r.fields), now)
                if held is not None:
                    verdicts[r.customer_id] = held
        return verdicts

    def opted_out(self, message: Message, reason: str) -> None:
        """Remember an address the provider says is opted out or dead, so later sends skip it."""
        if self.store is None:
            return
        added = self.store.add([Suppression(self.channel, "address", message.address, self.provider, reason)])
        if added:
            logger.info("%s: %s (customer %s) added to the suppression store: %s", self.provider,
                        _MASKS[self.channel](message.address), message.customer_id, reason)
