"""One channel send, wired from config: recipients, template, provider client, limiter, ledger, the
compliance screen (suppressions, one message per address, frequency cap, quiet hours), the breaker (the
send's own delivery events, its hold and release records), and where its result goes.

Sections read: those of tasks/campaign/send_config.py and tasks/campaign/providers.py, [paths], and
[state] through tasks.state.backend() (which database, which token bucket).
"""

from __future__ import annotations

import datetime
import functools
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tasks import config, state
from tasks.campaign import outcome
from tasks.campaign.providers import limits, make_client
from tasks.campaign.send_config import (
    MASKS,
    available_fields,
    campaign_problems,
    channel_config,
    channel_template,
    config_problems,
    quiet_hours,
    refuse,
    unsubscribe_url,
)
from tasks.channels.breaker import Breaker, BreakerLimits
from tasks.channels.ledger import SendKey, SendLedger, Shard, ledger_path
from tasks.channels.screen import SYSTEM_CLOCK, Clock
from tasks.channels.sender import WHOLE_SEND, Progress, Recipient, SendPolicy, SendResult, send_campaign
from tasks.channels.suppressions import SuppressionStore
from tasks.channels.templates import ChannelTemplate
from tasks.channels.unsubscribe import SECRET_ENV, make_token
from tasks.state.events import EventStore, events_path
from tasks.state.holds import SendHold, SendHolds, holds_path

if TYPE_CHECKING:  # compliance (numpy, pyarrow) and pyrate_limiter are loaded by a send, not by `import tasks`
    from tasks.campaign import compliance
    from tasks.channels.limiter import ChannelLimiter


def result_path(
    var_dir: str | os.PathLike[str], date: datetime.date, campaign: str, channel: str, segment: str
) -> Path:
    """<var_dir>/campaigns/<date>/<campaign>/<channel>-<segment>.json: one send's result file."""
    return Path(var_dir) / "campaigns" / date.isoformat() / campaign / f"{channel}-{segment}.json"


SHARD_SUFFIX = re.compile(r"\.shard-\d+-of-\d+$")  # of a shard's result file's stem


def shard_result_path(send_result: Path, shard: int, shards: int) -> Path:
    """<channel>-<segment>.shard-<shard+1>-of-<shards>.json beside the send's result file."""
    return send_result.with_name(f"{send_result.stem}.shard-{shard + 1}-of-{shards}.json")


def marker_id(channel: str, campaign: str, date: datetime.date, segment: str, shard: int = 0, shards: int = 1) -> str:
    """The id of the send's (or one shard's) completion mark where the state backend keeps one beside the result
    file (tasks/state/targets.py); a shard's id extends its send's."""
    whole = f"{channel}/{campaign}/{date}/{segment}"
    return whole if shards <= 1 else f"{whole}/shard-{shard + 1}-of-{shards}"


def make_render(template: ChannelTemplate, key: SendKey, cfg: config.ChannelCampaignConfig) -> Callable[
        [Recipient], dict[str, str]]:
    """The sender's render function: the template with the recipient's fields, plus (e-mail with
    [email_campaign] unsubscribe_url) the recipient's one-click unsubscribe URL, signed with
    UNSUBSCRIBE_SECRET, as a field and as content the provider turns into RFC 8058 headers."""
    url_template = unsubscribe_url(cfg)
    secret = os.environ.get(SECRET_ENV, "").encode() if url_template else b""

    def render(recipient: Recipient) -> dict[str, str]:
        if not url_template:
            return template.render(recipient.fields)
        url = url_template.replace("{token}", make_token(secret, key, recipient.customer_id))
        content = template.render({**recipient.fields, "unsubscribe_url": url})
        content["unsubscribe_url"] = url
        return content

    return render


def build_screen(channel: str, cfg: config.ChannelCampaignConfig, key: SendKey, provider: str,
                 customers_path: str | os.PathLike[str], segment: str, ledger: SendLedger | None,
                 store: SuppressionStore | None, clock: Clock = SYSTEM_CLOCK) -> compliance.CampaignScreen:
    """The compliance screen of one send ([campaign] suppression_list, re-read now; frequency_cap; the
    channel's quiet hours; the duplicate addresses among the whole send's customers, every shard's)."""
    from tasks.campaign import compliance

    shared = config.campaign()
    region = config.SegmentsConfig().default_region
    listed = (compliance.read_suppression_list(config.resolve_path(shared.suppression_list), region)
              if shared.suppression_list else set())
    quiet = quiet_hours(cfg)
    return compliance.CampaignScreen(
        key, provider, listed=listed, store=store, ledger=ledger, clock=clock, quiet=quiet,
        duplicates=functools.partial(compliance.send_duplicates, customers_path, channel, segment),
        cap=compliance.parse_frequency_cap(shared.frequency_cap),
    )


def send_events_key(key: SendKey) -> str:
    """`campaign/date/channel`: how the event store and the hold records name one send."""
    return f"{key.campaign}/{key.date}/{key.channel}"


def make_breaker(channel: str, cfg: config.ChannelCampaignConfig, key: SendKey, events: EventStore,
                 hold: SendHold | None) -> Breaker | None:
    """The send's breaker over its own events ([<channel>_campaign] breaker_min_outcomes and the max_*_rate
    keys), or None: breaker_min_outcomes = 0, or a person released the send (`release-send`)."""
    limits = config.settings(BreakerLimits, cfg, min_outcomes=cfg.breaker_min_outcomes)
    if not limits.enabled or (hold is not None and hold.released):
        return None
    return Breaker(channel, limits, functools.partial(events.counts_of_send_since, send_events_key(key)))


def run_channel_send(
    channel: str,
    date: datetime.date,
    campaign: str,
    segment: str,
    customers_path: str | os.PathLike[str],
    progress: Callable[[Progress], None] | None = None,
    shard: Shard = WHOLE_SEND,
    template: str = "",
    clock: Clock = SYSTEM_CLOCK,
) -> SendResult:
    """Send `campaign` to `segment` on `channel` (or one shard of it) until every recipient is final (or held
    past max_hold_hours); returns the result. `template` is a template name (empty: the section's).

    A send its breaker held claims nothing until released: SendHeldError, before any request; a breaker that
    trips during this run records the hold and raises SendHeldError (the unsent recipients stay pending)."""
    cfg = channel_config(channel)
    refuse(config_problems(channel, cfg) + campaign_problems())
    key = SendKey(campaign, date.isoformat(), channel)
    send_key = send_events_key(key)
    with open_holds() as holds:
        hold = holds.get(send_key)
        outcome.refuse_held(f"{channel} campaign {campaign!r} {key.date}", hold)
        result = _send(channel, cfg, key, segment, customers_path, progress, shard, template, clock, hold)
        outcome.check_breaker(result.as_dict(), send_key, holds)
    return result


def _send(channel: str, cfg: config.ChannelCampaignConfig, key: SendKey, segment: str,
          customers_path: str | os.PathLike[str], progress: Callable[[Progress], None] | None, shard: Shard,
          template: str, clock: Clock, hold: SendHold | None) -> SendResult:
    """The send itself, wired: recipients, template, client, limiter, ledger, screen and breaker."""
    from tasks.campaign import compliance
    from tasks.campaign.delivery import apply_delivery_events
    from tasks.campaign.recipients import ParquetRecipients  # pyarrow: loaded by a send only

    chosen = channel_template(channel, template or cfg.template)
    var_dir = config.var_dir()
    recipients = ParquetRecipients(customers_path, channel, segment, key.campaign, datetime.date.fromisoformat(
        key.date), shard)
    chosen.check_fields(available_fields(channel, cfg, recipients))
    policy = config.settings(SendPolicy, cfg)
    backend = state.backend()
    apply_delivery_events(var_dir)  # what earlier events suppressed is skipped by this send
    client = make_client(channel, cfg, var_dir, key)
    try:
        with (
            make_limiter(channel, cfg, var_dir, shard, backend) as limiter,
            SendLedger(backend.database(ledger_path(var_dir, channel))) as ledger,
            compliance.open_suppressions(var_dir) as store,
            EventStore(backend.database(events_path(var_dir))) as events,
        ):
            screen = build_screen(channel, cfg, key, client.provider, customers_path, segment, ledger, store, clock)
            result = send_campaign(
                key, recipients, make_render(chosen, key, cfg), client, limiter, ledger, policy,
                progress=progress, mask=MASKS[channel], shard=shard, screen=screen, clock=clock,
                breaker=make_breaker(channel, cfg, key, events, hold),
            )
    finally:
        client.close()
    result.extra["segment"] = segment
    result.extra["template"] = str(chosen.path)
    return result


def open_holds(var_dir: str | os.PathLike[str] | None = None) -> SendHolds:
    """The hold records of every send's breaker, in the state backend (<var_dir>/ledger/holds.sqlite3 or the shared
    Postgres database)."""
    return SendHolds(state.database(holds_path(var_dir if var_dir is not None else config.var_dir())))


def release_send(date: datetime.date, campaign: str, channel: str, who: str) -> SendHold | None:
    """Release a send its breaker held (`python -m tasks release-send`): the next run goes on with the breaker off
    for that send; the release records `who` and when. None when the send is not held."""
    key = send_events_key(SendKey(campaign, date.isoformat(), channel))
    with open_holds() as holds:
        if holds.get(key) is None:
            return None
        return holds.release(key, who)


def make_limiter(channel: str, cfg: config.ChannelCampaignConfig, var_dir: Path, shard: Shard,
                 backend: state.StateBackend) -> ChannelLimiter:
    """The channel's token bucket, where the state backend keeps it: shared by the processes of this host
    through <var_dir>/limiter/<channel>.sqlite3 when the send is split into shards (one process per shard),
    else in this process; with Postgres state in the database, for every host."""
    from tasks.channels.limiter import ChannelLimiter

    rate, burst = limits(cfg)
    shared_here = var_dir / "limiter" / f"{channel}.sqlite3" if shard.count > 1 else None
    return ChannelLimiter(rate, burst, name=channel, store=backend.bucket_store(channel, shared_here))
