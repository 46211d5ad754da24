"""One channel send, wired from config: recipients, template, provider client, limiter, ledger, and
the compliance screen (suppressions, one message per address, frequency cap, quiet hours).

Sections read: [email_campaign], [sms_campaign], [push_campaign], [campaign] (tasks/config.py),
[segments] default_region, [paths]. Credentials come from the environment only:
SENDGRID_API_KEY; TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER or
TWILIO_MESSAGING_SERVICE_SID; FCM_PROJECT_ID and FCM_ACCESS_TOKEN; UNSUBSCRIBE_SECRET when
[email_campaign] unsubscribe_url is set. A missing one is a ConfigError naming the variable,
never its value.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from pathlib import Path

from tasks import config, pii
from tasks.campaign import compliance
from tasks.campaign import segments as segments_core
from tasks.channels.base import ProviderClient
from tasks.channels.fcm import FcmClient
from tasks.channels.http import HttpTransport
from tasks.channels.ledger import PENDING, SendKey, SendLedger, ledger_path
from tasks.channels.limiter import ChannelLimiter
from tasks.channels.outbox import OutboxClient, outbox_path
from tasks.channels.screen import SYSTEM_CLOCK, Clock
from tasks.channels.sender import Progress, Recipient, SendPolicy, SendResult, send_campaign
from tasks.channels.sendgrid import SendGridClient
from tasks.channels.suppressions import SuppressionStore, suppressions_path
from tasks.channels.templates import FIELDS, ChannelTemplate, load_template, template_path
from tasks.channels.twilio import TwilioClient
from tasks.channels.unsubscribe import MIN_SECRET_CHARS, SECRET_ENV, make_token
from tasks.errors import CampaignFailedError, ConfigError, RecipientsHeldError

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
    "fcm": (("FCM_PROJECT_ID",), ("FCM_ACCESS_TOKEN",)),
}
MASKS: dict[str, Callable[[str], str]] = {"email": pii.mask_email, "sms": pii.mask_phone, "push": pii.mask_token}


def channel_config(channel: str) -> config._channel_campaign:
    """The config section object of `channel` (built now, never at import time)."""
    sections = {"email": config.email_campaign, "sms": config.sms_campaign, "push": config.push_campaign}
    try:
        return sections[channel]()
    except KeyError:
        raise ConfigError(f"unknown channel {channel!r}; expected one of {CHANNELS}") from None


def result_path(
    var_dir: str | os.PathLike[str], date: datetime.date, campaign: str, channel: str, segment: str
) -> Path:
    """<var_dir>/campaigns/<date>/<campaign>/<channel>-<segment>.json: one send's result file."""
    return Path(var_dir) / "campaigns" / date.isoformat() / campaign / f"{channel}-{segment}.json"


def limits(cfg: config._channel_campaign) -> tuple[float, int]:
    """(rate, burst) of a section, with the provider's defaults for zeros."""
    rate, burst = DEFAULT_LIMITS.get(cfg.provider, (1.0, 1))
    return (cfg.rate or rate, cfg.burst or burst)


def load_recipients(customers_path: str | os.PathLike[str], channel: str, segment: str, campaign: str,
                    date: datetime.date) -> list[Recipient]:
    """The customers of `segment` with an address for `channel`, as sender recipients. Their fields: the
    four every send sets and every extra column of the segment CSV (None when empty); push recipients
    also carry `phone`, which places them in a time zone for quiet hours."""
    also = ("phone",) if channel == "push" else ()
    table = segments_core.customers_for_channel(customers_path, channel, segment, also=also)
    column = segments_core.CHANNEL_COLUMNS[channel]
    ids = table.column("customer_id").to_pylist()
    segs = table.column("segment").to_pylist()
    addresses = table.column(column).to_pylist()
    extras = {name: table.column(name).to_pylist() for name in table.column_names
              if name not in ("customer_id", "segment", column)}
    day = date.isoformat()
    return [
        Recipient(str(cid), str(address), {"customer_id": str(cid), "segment": str(seg), "campaign": campaign,
                                           "date": day, **{name: values[i] for name, values in extras.items()}})
        for i, (cid, seg, address) in enumerate(zip(ids, segs, addresses, strict=True))
    ]


def channel_template(channel: str, name: str) -> ChannelTemplate:
    """Template `name` of `channel`, from [campaign] templates_dir/<channel>/<name>.toml."""
    templates_dir = config.resolve_path(config.campaign().templates_dir)
    return load_template(config.resolve_path(template_path(templates_dir, channel, name)), channel)


def available_fields(channel: str, cfg: config._channel_campaign, recipients: list[Recipient]) -> set[str]:
    """The template fields these recipients can have: the four of every send, the CSV's extra columns
    and, for e-mail with an unsubscribe URL, unsubscribe_url."""
    fields = set(FIELDS) | (set(recipients[0].fields) if recipients else set())
    if channel == "email" and cfg.unsubscribe_url:
        fields.add("unsubscribe_url")
    return fields


def make_render(template: ChannelTemplate, key: SendKey, cfg: config._channel_campaign) -> Callable[
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


def build_screen(channel: str, cfg: config._channel_campaign, key: SendKey, provider: str,
                 recipients: list[Recipient], ledger: SendLedger | None, store: SuppressionStore | None,
                 clock: Clock = SYSTEM_CLOCK) -> compliance.CampaignScreen:
    """The compliance screen of one send ([campaign] suppression_list, re-read now; frequency_cap;
    the channel's quiet hours), over these recipients."""
    shared = config.campaign()
    region = config.segments().default_region
    listed = (compliance.read_suppression_list(config.resolve_path(shared.suppression_list), region)
              if shared.suppression_list else set())
    quiet = (compliance.parse_quiet_hours(cfg.quiet_hours, provider, cfg.default_timezone)
             if channel in QUIET_HOURS_CHANNELS else None)
    fields = {r.customer_id: r.fields for r in recipients} if quiet else {}
    return compliance.CampaignScreen(
        key, provider, listed=listed, store=store, ledger=ledger, clock=clock, quiet=quiet,
        duplicates=compliance.duplicate_addresses((r.customer_id, r.address) for r in recipients),
        cap=compliance.parse_frequency_cap(shared.frequency_cap),
        zones=lambda cid, address: compliance.zone_hints(channel, address, fields.get(cid, {})),
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
                                             config.segments().default_region)
        except ConfigError as exc:
            problems.append(("campaign", "suppression_list", str(exc)))
    return problems


def config_problems(channel: str, cfg: config._channel_campaign) -> list[tuple[str, str, str]]:
    """(section, key, problem) for each reason `cfg` cannot send; [] when it can. The send refuses
    to start on any of them, and `python -m tasks check-config` reports them all."""
    section, provider = f"{channel}_campaign", cfg.provider
    problems = []
    if provider not in PROVIDERS[channel]:
        problems.append((section, "provider", f"provider = {provider!r}; expected one of {PROVIDERS[channel]}"))
    for key in ("concurrency", "max_attempts"):
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
        sample = config.resolve_path(config.SAMPLE_SEGMENTS).resolve()
        if config.resolve_path(config.segments().input_path).resolve() == sample:
            problems.append(("segments", "input_path",
                             f"the bundled demo sample ({config.SAMPLE_SEGMENTS}, fictional customers) with "
                             f"[{section}] provider = {provider}: set [segments] input_path to your segment file"))
    return problems


def make_client(channel: str, cfg: config._channel_campaign, var_dir: Path, key: SendKey) -> ProviderClient:
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
        return TwilioClient(HttpTransport("twilio", base_url, auth=auth, **timeouts), sid, number, service)
    headers = {"Authorization": f"Bearer {env['FCM_ACCESS_TOKEN']}"}
    return FcmClient(HttpTransport("fcm", base_url, headers=headers, **timeouts), env["FCM_PROJECT_ID"])


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
    template: str = "",
    clock: Clock = SYSTEM_CLOCK,
) -> SendResult:
    """Send `campaign` to `segment` on `channel` until every recipient is final (or held past
    max_hold_hours); returns the result. `template` is a template name (empty: the section's)."""
    cfg = channel_config(channel)
    problems = config_problems(channel, cfg) + campaign_problems()
    if problems:
        raise ConfigError("; ".join(f"[{section}] {key}: {what}" if key else what for section, key, what in problems))
    chosen = channel_template(channel, template or cfg.template)
    var_dir = config.var_dir()
    key = SendKey(campaign, date.isoformat(), channel)
    recipients = load_recipients(customers_path, channel, segment, campaign, date)
    chosen.check_fields(available_fields(channel, cfg, recipients))
    rate, burst = limits(cfg)
    policy = config.settings(SendPolicy, cfg)
    client = make_client(channel, cfg, var_dir, key)
    try:
        with (
            ChannelLimiter(rate, burst, name=channel) as limiter,
            SendLedger(ledger_path(var_dir, channel)) as ledger,
            SuppressionStore(suppressions_path(var_dir)) as store,
        ):
            screen = build_screen(channel, cfg, key, client.provider, recipients, ledger, store, clock)
            result = send_campaign(
                key, recipients, make_render(chosen, key, cfg), client, limiter, ledger, policy,
                progress=progress, mask=MASKS[channel], screen=screen, clock=clock,
            )
    finally:
        client.close()
    result.extra["segment"] = segment
    result.extra["template"] = str(chosen.path)
    return result


def check_held(result: SendResult, max_hold_hours: float) -> None:
    """RecipientsHeldError when recipients are still pending (held for quiet hours past max_hold_hours, or
    without a known zone): no result file, and the next run of the same send resumes them."""
    pending = result.counts.get(PENDING, 0)
    if not pending:
        return
    until = result.extra.get("held_until")
    no_time = result.extra.get("held_without_time", 0)
    raise RecipientsHeldError(
        f"{result.channel} campaign {result.campaign!r} {result.date}: {pending} recipient(s) still pending, held "
        f"for quiet hours beyond max_hold_hours ({max_hold_hours:g} h)"
        + (f" until {until[0]} to {until[1]}" if until else "")
        + (f"; {no_time} without a known time zone (set default_timezone)" if no_time else "")
        + "; run the task again after that to send them"
    )


def check_failure_ratio(result: SendResult, max_failure_ratio: float) -> None:
    """CampaignFailedError when more than `max_failure_ratio` of the recipients failed permanently."""
    if result.failed_share > max_failure_ratio:
        raise CampaignFailedError(
            f"{result.channel} campaign {result.campaign!r} {result.date}: {result.counts.get('failed', 0)} of "
            f"{result.target} recipients failed ({result.failed_share:.1%} > max_failure_ratio "
            f"{max_failure_ratio:.1%}); see the ledger for reasons"
        )
