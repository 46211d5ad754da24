"""One channel send, wired from config: recipients, template, provider client, limiter, ledger, and
the compliance screen (suppressions, one message per address, frequency cap, quiet hours).

Sections read: [email_campaign], [sms_campaign], [push_campaign], [campaign] (tasks/config.py),
[segments] default_region, [paths], [state]. UNSUBSCRIBE_SECRET signs the one-click links when
[email_campaign] unsubscribe_url is set. Credentials come from the environment only:
SENDGRID_API_KEY; TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER or
TWILIO_MESSAGING_SERVICE_SID; for FCM either
FCM_ACCESS_TOKEN (a token minted outside, for sends shorter than its hour; it wins when set) or
GOOGLE_APPLICATION_CREDENTIALS (a service-account key file, refreshed as needed), and FCM_PROJECT_ID
unless the key file's `project_id` names the project. A missing one is a ConfigError naming the
variable, never its value nor a key file's content.
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tasks import config, pii, state
from tasks.campaign import compliance
from tasks.campaign import segments as segments_core
from tasks.channels.base import ProviderClient
from tasks.channels.fcm import FcmClient
from tasks.channels.http import HttpTransport
from tasks.channels.ledger import PENDING, SendKey, SendLedger, Shard, ledger_path
from tasks.channels.limiter import ChannelLimiter
from tasks.channels.oauth import CREDENTIALS_ENV, ServiceAccountToken, StaticToken, load_service_account
from tasks.channels.outbox import OutboxClient, outbox_path
from tasks.channels.screen import SYSTEM_CLOCK, Clock
from tasks.channels.sender import (
    WHOLE_SEND,
    Progress,
    Recipient,
    SendPolicy,
    SendResult,
    SourceBatch,
    send_campaign,
)
from tasks.channels.sendgrid import SendGridClient
from tasks.channels.suppressions import SuppressionStore
from tasks.channels.templates import FIELDS, ChannelTemplate, load_template, template_path
from tasks.channels.twilio import TwilioClient
from tasks.channels.unsubscribe import MIN_SECRET_CHARS, SECRET_ENV, make_token
from tasks.errors import CampaignFailedError, ConfigError, RecipientsHeldError

logger = logging.getLogger(__name__)

CHANNELS = ("email", "sms", "push")
QUIET_HOURS_CHANNELS = ("sms", "push")  # the channels that reach a phone at once
PROVIDERS = {"email": ("outbox", "sendgrid"), "sms": ("outbox", "twilio"), "push": ("outbox", "fcm")}
# (rate per second, burst) when the section leaves them at 0: the seed's limits for the APIs,
# and a pace for the outbox that sends the ~1,000-customer demo in well under a minute.
DEFAULT_LIMITS = {"outbox": (50.0, 50), "sendgrid": (10.0, 50), "twilio": (5.0, 20), "fcm": (2.0, 10)}
DEFAULT_BASE_URLS = {
    "sendgrid": "https://api.sendgrid.com",
    "twilio": "https://api.twilio.com",
    "fcm": "https://fcm.googleapis.com",
}
# What each provider needs from the environment; a tuple of several names: any one of them.
PROVIDER_ENV: dict[str, tuple[tuple[str, ...], ...]] = {
    "sendgrid": (("SENDGRID_API_KEY",),),
    "twilio": (("TWILIO_ACCOUNT_SID",), ("TWILIO_AUTH_TOKEN",), ("TWILIO_FROM_NUMBER", "TWILIO_MESSAGING_SERVICE_SID")),
    "fcm": (("FCM_ACCESS_TOKEN", CREDENTIALS_ENV),),  # and a project: fcm_problems()
}
MASKS: dict[str, Callable[[str], str]] = {"email": pii.mask_email, "sms": pii.mask_phone, "push": pii.mask_token}


def channel_config(channel: str) -> config.ChannelCampaignConfig:
    """The config section object of `channel` (built now, never at import time)."""
    sections = {"email": config.EmailCampaignConfig, "sms": config.SmsCampaignConfig, "push": config.PushCampaignConfig}
    try:
        return sections[channel]()
    except KeyError:
        raise ConfigError(f"unknown channel {channel!r}; expected one of {CHANNELS}") from None


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
    """The send's (or one shard's) completion marker with Postgres state; a shard's id extends its send's."""
    whole = f"{channel}/{campaign}/{date}/{segment}"
    return whole if shards <= 1 else f"{whole}/shard-{shard + 1}-of-{shards}"


def limits(cfg: config.ChannelCampaignConfig) -> tuple[float, int]:
    """(rate, burst) of a section, with the provider's defaults for zeros."""
    rate, burst = DEFAULT_LIMITS.get(cfg.provider, (1.0, 1))
    return (cfg.rate or rate, cfg.burst or burst)


class ParquetRecipients:
    """The recipients of one send (or shard) read from customers.parquet in batches (a RecipientSource).

    `source` names the file's size and CRC-32 with the filters, so a re-run of a send already seeded from
    the same content skips seeding, on any host (each host's LoadSegments writes the same bytes).
    """

    def __init__(self, customers_path: str | os.PathLike[str], channel: str, segment: str, campaign: str,
                 date: datetime.date, shard: Shard = WHOLE_SEND, batch_rows: int = 10_000):
        self.path = Path(customers_path)
        self.channel, self.segment, self.campaign, self.day = channel, segment, campaign, date.isoformat()
        self.shard = shard
        self.batch_rows = batch_rows
        self.source = f"{self.path.name}:{_content_id(self.path)}:{channel}:{segment}:{shard.index}/{shard.count}"
        # push recipients also carry `phone`, which places them in a time zone for quiet hours
        self.also = ("phone",) if channel == "push" else ()

    def fields(self) -> set[str]:
        """The template fields these recipients have: the four every send sets and every extra column of the
        segment CSV (None when empty; and `phone` for push)."""
        columns, _ = segments_core.channel_scan(self.path, self.channel, self.segment, self.also)
        return set(FIELDS) | set(columns[3:])

    def batches(self) -> Iterator[SourceBatch]:
        column = segments_core.CHANNEL_COLUMNS[self.channel]
        for batch in segments_core.iter_customers_for_channel(self.path, self.channel, self.segment,
                                                              self.batch_rows, self.also):
            ids = [str(cid) for cid in batch.column("customer_id").to_pylist()]
            if self.shard.count > 1:
                keep = [i for i, cid in enumerate(ids) if self.shard.owns(cid)]
                batch, ids = batch.take(keep), [ids[i] for i in keep]
            yield SourceBatch(ids, functools.partial(self._build, batch, ids, column))

    def _build(self, batch: Any, ids: list[str], column: str, keep: set[str]) -> list[Recipient]:
        """The recipients of `batch` whose id is in `keep` (addresses read only when something is pending)."""
        rows = [i for i, cid in enumerate(ids) if cid in keep]
        if not rows:
            return []
        part = batch.take(rows)
        segments, addresses = part.column("segment").to_pylist(), part.column(column).to_pylist()
        extras = {name: part.column(name).to_pylist() for name in part.schema.names
                  if name not in ("customer_id", "segment", column)}
        return [
            Recipient(ids[i], str(addresses[n]), {"customer_id": ids[i], "segment": str(segments[n]),
                                                  "campaign": self.campaign, "date": self.day,
                                                  **{name: values[n] for name, values in extras.items()}})
            for n, i in enumerate(rows)
        ]


def _content_id(path: Path) -> str:
    """Size and CRC-32 of a file's bytes (about 1 GB/s: 50 ms for a million customers)."""
    crc, size = 0, 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    return f"{size}:{crc:08x}"


def channel_template(channel: str, name: str) -> ChannelTemplate:
    """Template `name` of `channel`, from [campaign] templates_dir/<channel>/<name>.toml."""
    templates_dir = config.resolve_path(config.campaign().templates_dir)
    return load_template(config.resolve_path(template_path(templates_dir, channel, name)), channel)


def available_fields(channel: str, cfg: config.ChannelCampaignConfig, recipients: ParquetRecipients) -> set[str]:
    """The template fields the recipients can have (ParquetRecipients.fields) and, for e-mail with an
    unsubscribe URL, unsubscribe_url."""
    fields = recipients.fields()
    if channel == "email" and cfg.unsubscribe_url:
        fields.add("unsubscribe_url")
    return fields


def make_render(template: ChannelTemplate, key: SendKey, cfg: config.ChannelCampaignConfig) -> Callable[
        [Recipient], dict[str, str]]:
    """The sender's render function: the template with the recipient's fields, plus (e-mail with
    [email_campaign] unsubscribe_url) the recipient's one-click unsubscribe URL, signed with
    UNSUBSCRIBE_SECRET, as a field and as content the provider turns into RFC 8058 headers."""
    url_template = cfg.unsubscribe_url if key.channel == "email" else ""
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
    shared = config.campaign()
    region = config.SegmentsConfig().default_region
    listed = (compliance.read_suppression_list(config.resolve_path(shared.suppression_list), region)
              if shared.suppression_list else set())
    quiet = (compliance.parse_quiet_hours(cfg.quiet_hours, provider, cfg.default_timezone)
             if channel in QUIET_HOURS_CHANNELS else None)
    return compliance.CampaignScreen(
        key, provider, listed=listed, store=store, ledger=ledger, clock=clock, quiet=quiet,
        duplicates=functools.partial(compliance.send_duplicates, customers_path, channel, segment),
        cap=compliance.parse_frequency_cap(shared.frequency_cap),
    )


def campaign_problems() -> list[tuple[str, str, str]]:
    """(section, key, problem) of the [campaign] section every send shares; [] when fine."""
    shared = config.campaign()
    problems = []
    try:
        compliance.parse_frequency_cap(shared.frequency_cap)
    except ConfigError as exc:
        problems.append(("campaign", "frequency_cap", str(exc)))
    if shared.suppression_list:
        try:
            compliance.read_suppression_list(config.resolve_path(shared.suppression_list),
                                             config.SegmentsConfig().default_region)
        except ConfigError as exc:
            problems.append(("campaign", "suppression_list", str(exc)))
    return problems


def config_problems(channel: str, cfg: config.ChannelCampaignConfig) -> list[tuple[str, str, str]]:
    """(section, key, problem) for each reason `cfg` cannot send; [] when it can. The send refuses
    to start on any of them, and `python -m tasks check-config` reports them all."""
    section, provider = f"{channel}_campaign", cfg.provider
    problems = []
    if provider not in PROVIDERS[channel]:
        problems.append((section, "provider", f"provider = {provider!r}; expected one of {PROVIDERS[channel]}"))
    for key in ("concurrency", "max_attempts", "shards"):
        if getattr(cfg, key) < 1:
            problems.append((section, key, f"{key} = {getattr(cfg, key)}; must be at least 1"))
    if channel in QUIET_HOURS_CHANNELS:
        try:
            compliance.parse_quiet_hours(cfg.quiet_hours, provider, cfg.default_timezone)
        except ConfigError as exc:
            key = "default_timezone" if "default_timezone" in str(exc) else "quiet_hours"
            problems.append((section, key, str(exc)))
    if channel == "email" and cfg.unsubscribe_url:
        if not cfg.unsubscribe_url.startswith("https://") or "{token}" not in cfg.unsubscribe_url:
            problems.append((section, "unsubscribe_url", f"unsubscribe_url = {cfg.unsubscribe_url!r}: RFC 8058 needs "
                             "an https:// URL, and it must hold {token}"))
        if len(os.environ.get(SECRET_ENV, "")) < MIN_SECRET_CHARS:
            problems.append(("environment", None, f"{SECRET_ENV} is not set (or shorter than {MIN_SECRET_CHARS} "
                             f"characters); [{section}] unsubscribe_url needs it to sign the links"))
    if provider in PROVIDERS[channel] and provider != "outbox":
        problems += [("environment", None, f"{names} is not set; [{section}] provider = {provider} needs it")
                     for names in missing_env(provider)]
        if provider == "fcm":
            problems += [("environment", None, f"{what}; [{section}] provider = fcm needs it")
                         for what in fcm_problems()]
        sample = config.resolve_path(config.SAMPLE_SEGMENTS).resolve()
        if config.resolve_path(config.SegmentsConfig().input_path).resolve() == sample:
            problems.append(("segments", "input_path",
                             f"the bundled demo sample ({config.SAMPLE_SEGMENTS}, fictional customers) with "
                             f"[{section}] provider = {provider}: set [segments] input_path to your segment file"))
    return problems


def make_client(channel: str, cfg: config.ChannelCampaignConfig, var_dir: Path, key: SendKey) -> ProviderClient:
    """The provider client of a section (after config_problems found none); credentials from the environment."""
    provider = cfg.provider
    if provider == "outbox":
        return OutboxClient(outbox_path(var_dir, channel, key.campaign, key.date), channel)
    env = os.environ
    base_url = cfg.base_url or DEFAULT_BASE_URLS[provider]
    timeouts = {"connect_timeout": cfg.connect_timeout, "read_timeout": cfg.timeout}
    if provider == "sendgrid":
        headers = {"Authorization": f"Bearer {env['SENDGRID_API_KEY']}"}
        transport = HttpTransport("sendgrid", base_url, headers=headers, **timeouts)
        return SendGridClient(transport, cfg.from_email, cfg.from_name, cfg.batch_size, cfg.asm_group_id, cfg.sandbox)
    if provider == "twilio":
        sid = env["TWILIO_ACCOUNT_SID"]
        auth = (sid, env["TWILIO_AUTH_TOKEN"])
        service = env.get("TWILIO_MESSAGING_SERVICE_SID", "")
        number = "" if service else env["TWILIO_FROM_NUMBER"]
        return TwilioClient(HttpTransport("twilio", base_url, auth=auth, **timeouts), sid, number, service,
                            config.WebConfig().public_url)
    tokens: StaticToken | ServiceAccountToken
    if env.get("FCM_ACCESS_TOKEN"):
        tokens, project = StaticToken(env["FCM_ACCESS_TOKEN"]), env["FCM_PROJECT_ID"]
        logger.info("fcm: using FCM_ACCESS_TOKEN (never refreshed: for sends shorter than its hour)")
    else:
        margin = getattr(cfg, "token_refresh_margin", 300.0)
        tokens = ServiceAccountToken(load_service_account(env[CREDENTIALS_ENV]), refresh_margin=margin,
                                     timeout=cfg.timeout)
        project = env.get("FCM_PROJECT_ID") or tokens.project_id or ""
        logger.info("fcm: using the service account %s (refreshed %g s before expiry)", tokens.email, margin)
    return FcmClient(HttpTransport("fcm", base_url, **timeouts), project, tokens)


def fcm_problems() -> list[str]:
    """What FCM's credentials lack beyond a missing variable: a service-account file that cannot be used, or
    no project (FCM_PROJECT_ID, else the key file's project_id). Never quotes a value or the file."""
    env = os.environ
    if env.get("FCM_ACCESS_TOKEN"):
        return [] if env.get("FCM_PROJECT_ID") else ["FCM_PROJECT_ID is not set"]
    if not env.get(CREDENTIALS_ENV):
        return []  # missing_env names it
    try:
        credentials = load_service_account(env[CREDENTIALS_ENV])
    except ConfigError as exc:
        return [str(exc)]
    if not env.get("FCM_PROJECT_ID") and not credentials.project_id:
        return [f"FCM_PROJECT_ID is not set and the {CREDENTIALS_ENV} file has no project_id"]
    return []


def missing_env(provider: str) -> list[str]:
    """The variables `provider` needs that are not set ("A or B" where either would do), in order."""
    return [" or ".join(names) for names in PROVIDER_ENV.get(provider, ()) if not any(os.environ.get(n) for n in names)]


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
    past max_hold_hours); returns the result. `template` is a template name (empty: the section's)."""
    cfg = channel_config(channel)
    problems = config_problems(channel, cfg) + campaign_problems()
    if problems:
        raise ConfigError("; ".join(f"[{section}] {key}: {what}" if key else what for section, key, what in problems))
    chosen = channel_template(channel, template or cfg.template)
    var_dir = config.var_dir()
    key = SendKey(campaign, date.isoformat(), channel)
    recipients = ParquetRecipients(customers_path, channel, segment, campaign, date, shard)
    chosen.check_fields(available_fields(channel, cfg, recipients))
    policy = config.settings(SendPolicy, cfg)
    client = make_client(channel, cfg, var_dir, key)
    try:
        with (
            make_limiter(channel, cfg, var_dir, shard) as limiter,
            SendLedger(state.database(ledger_path(var_dir, channel))) as ledger,
            compliance.open_suppressions(var_dir) as store,
        ):
            screen = build_screen(channel, cfg, key, client.provider, customers_path, segment, ledger, store, clock)
            result = send_campaign(
                key, recipients, make_render(chosen, key, cfg), client, limiter, ledger, policy,
                progress=progress, mask=MASKS[channel], shard=shard, screen=screen, clock=clock,
            )
    finally:
        client.close()
    result.extra["segment"] = segment
    result.extra["template"] = str(chosen.path)
    return result


def check_held(result: dict, cfg: config.ChannelCampaignConfig) -> None:
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


def make_limiter(channel: str, cfg: config.ChannelCampaignConfig, var_dir: Path, shard: Shard) -> ChannelLimiter:
    """The channel's token bucket: in the state database with [state] backend = postgres (every host shares
    it); in <var_dir>/limiter/<channel>.sqlite3 when the send is split into shards on this host (one process
    per shard); else in this process."""
    rate, burst = limits(cfg)
    if state.settings().shared:
        return ChannelLimiter(rate, burst, name=channel, dsn=state.dsn())
    if shard.count > 1:
        return ChannelLimiter(rate, burst, name=channel, state_path=var_dir / "limiter" / f"{channel}.sqlite3")
    return ChannelLimiter(rate, burst, name=channel)


def combine_results(parts: list[dict]) -> dict:
    """One channel result from its shards' results: counts added up, the longest duration, complete when
    every shard is."""
    first = parts[0]
    counts: dict[str, int] = {}
    for part in parts:
        for name, n in part["counts"].items():
            counts[name] = counts.get(name, 0) + n
    summed = {name: sum(p[name] for p in parts) for name in (
        "target", "messages_sent_this_run", "requests", "retries", "recovered_unknown", "reopened_unknown")}
    duration = max(p["duration_s"] for p in parts)
    target = summed["target"]
    return {
        **{name: first[name] for name in ("campaign", "date", "channel", "provider", "configured_rate", "burst")},
        **summed,
        "counts": counts,
        "duration_s": duration,
        "achieved_rate": round(summed["messages_sent_this_run"] / duration, 3) if duration > 0 else 0.0,
        "achieved_request_rate": round(summed["requests"] / duration, 3) if duration > 0 else 0.0,
        "complete": all(p["complete"] for p in parts),
        "unknown": counts.get("unknown", 0),
        "failed_share": round(counts.get("failed", 0) / target, 6) if target else 0.0,
        "extra": {"segment": first["extra"].get("segment"), "template": first["extra"].get("template"),
                  "shards": len(parts), **_combined_holds([p["extra"] for p in parts])},
    }


def _combined_holds(extras: list[dict]) -> dict:
    """The shards' held counts added up, and the earliest and latest time any of them may go."""
    held = [e for e in extras if e.get("held")]
    if not held:
        return {}
    times = [t for e in held if e.get("held_until") for t in e["held_until"]]
    return {"held": sum(e["held"] for e in held),
            "held_without_time": sum(e.get("held_without_time", 0) for e in held),
            "held_until": [min(times), max(times)] if times else None}


def check_failure_ratio(result: dict, max_failure_ratio: float) -> None:
    """CampaignFailedError when more than `max_failure_ratio` of the recipients failed permanently
    (`result`: a send's result document)."""
    if result["failed_share"] > max_failure_ratio:
        raise CampaignFailedError(
            f"{result['channel']} campaign {result['campaign']!r} {result['date']}: "
            f"{result['counts'].get('failed', 0)} of {result['target']} recipients failed "
            f"({result['failed_share']:.1%} > max_failure_ratio {max_failure_ratio:.1%}); see the ledger for reasons"
        )
