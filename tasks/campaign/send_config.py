"""A channel send's configuration: its section, its template, and every reason it cannot send.

`config_problems` and `campaign_problems` list what a send refuses to start on (`refuse`
raises them); `python -m tasks check-config` reports them all. Sections read:
[email_campaign], [sms_campaign], [push_campaign], [campaign] (tasks/config.py), [segments]
input_path and default_region. UNSUBSCRIBE_SECRET signs the one-click links when
[email_campaign] unsubscribe_url is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from tasks import config, pii
from tasks.campaign.providers import PROVIDERS, fcm_problems, missing_env
from tasks.channels.templates import ChannelTemplate, load_template, template_path
from tasks.channels.unsubscribe import MIN_SECRET_CHARS, SECRET_ENV
from tasks.errors import ConfigError

if TYPE_CHECKING:  # compliance and the recipients' reader bring pyarrow and numpy: not for `import tasks`
    from tasks.campaign import compliance
    from tasks.campaign.recipients import ParquetRecipients

CHANNELS = ("email", "sms", "push")
Problem = tuple[str, str | None, str]  # (section, key or None, what is wrong)
MASKS: dict[str, Callable[[str], str]] = {"email": pii.mask_email, "sms": pii.mask_phone, "push": pii.mask_token}


def channel_config(channel: str) -> config.ChannelCampaignConfig:
    """The config section object of `channel` (built now, never at import time)."""
    sections = {"email": config.EmailCampaignConfig, "sms": config.SmsCampaignConfig, "push": config.PushCampaignConfig}
    try:
        return sections[channel]()
    except KeyError:
        raise ConfigError(f"unknown channel {channel!r}; expected one of {CHANNELS}") from None


def channel_template(channel: str, name: str) -> ChannelTemplate:
    """Template `name` of `channel`, from [campaign] templates_dir/<channel>/<name>.toml."""
    templates_dir = config.resolve_path(config.campaign().templates_dir)
    return load_template(config.resolve_path(template_path(templates_dir, channel, name)), channel)


def available_fields(channel: str, cfg: config.ChannelCampaignConfig, recipients: ParquetRecipients) -> set[str]:
    """The template fields the recipients can have (ParquetRecipients.fields) and, for e-mail with an
    unsubscribe URL, unsubscribe_url."""
    fields = recipients.fields()
    if unsubscribe_url(cfg):
        fields.add("unsubscribe_url")
    return fields


def campaign_problems() -> list[Problem]:
    """(section, key, problem) of the [campaign] section every send shares; [] when fine."""
    from tasks.campaign import compliance

    shared = config.campaign()
    problems: list[Problem] = []
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


def config_problems(channel: str, cfg: config.ChannelCampaignConfig) -> list[Problem]:
    """(section, key, problem) for each reason `cfg` cannot send; [] when it can. The send refuses
    to start on any of them, and `python -m tasks check-config` reports them all."""
    section, provider = f"{channel}_campaign", cfg.provider
    problems: list[Problem] = []
    if provider not in PROVIDERS[channel]:
        problems.append((section, "provider", f"provider = {provider!r}; expected one of {PROVIDERS[channel]}"))
    problems += [(section, key, f"{key} = {getattr(cfg, key)}; must be at least 1")
                 for key in ("concurrency", "max_attempts", "shards") if getattr(cfg, key) < 1]
    try:
        quiet_hours(cfg)
    except ConfigError as exc:
        key = "default_timezone" if "default_timezone" in str(exc) else "quiet_hours"
        problems.append((section, key, str(exc)))
    if unsubscribe_url(cfg):
        problems += _unsubscribe_problems(section, unsubscribe_url(cfg))
    if provider in PROVIDERS[channel] and provider != "outbox":
        problems += _provider_problems(section, provider)
    return problems


def _unsubscribe_problems(section: str, url: str) -> list[Problem]:
    """What keeps one-click unsubscribe links from working: the URL, or the secret that signs them."""
    problems: list[Problem] = []
    if not url.startswith("https://") or "{token}" not in url:
        problems.append((section, "unsubscribe_url", f"unsubscribe_url = {url!r}: RFC 8058 needs "
                         "an https:// URL, and it must hold {token}"))
    if len(os.environ.get(SECRET_ENV, "")) < MIN_SECRET_CHARS:
        problems.append(("environment", None, f"{SECRET_ENV} is not set (or shorter than {MIN_SECRET_CHARS} "
                         f"characters); [{section}] unsubscribe_url needs it to sign the links"))
    return problems


def _provider_problems(section: str, provider: str) -> list[Problem]:
    """What a real provider lacks: its environment, and a real segment file (not the bundled sample)."""
    problems: list[Problem] = [("environment", None, f"{names} is not set; [{section}] provider = {provider} needs it")
                               for names in missing_env(provider)]
    if provider == "fcm":
        problems += [("environment", None, f"{what}; [{section}] provider = fcm needs it") for what in fcm_problems()]
    sample = config.resolve_path(config.SAMPLE_SEGMENTS).resolve()
    if config.resolve_path(config.SegmentsConfig().input_path).resolve() == sample:
        problems.append(("segments", "input_path",
                         f"the bundled demo sample ({config.SAMPLE_SEGMENTS}, fictional customers) with "
                         f"[{section}] provider = {provider}: set [segments] input_path to your segment file"))
    return problems


def unsubscribe_url(cfg: config.ChannelCampaignConfig) -> str:
    """[email_campaign] unsubscribe_url (empty: no one-click links; the other channels have none)."""
    return cfg.unsubscribe_url if isinstance(cfg, config.EmailCampaignConfig) else ""


def quiet_hours(cfg: config.ChannelCampaignConfig) -> compliance.QuietHours | None:
    """The section's quiet hours (the channels that reach a phone at once: SMS and push), else None."""
    from tasks.campaign import compliance

    if not isinstance(cfg, config.QuietHoursCampaignConfig):
        return None
    return compliance.parse_quiet_hours(cfg.quiet_hours, cfg.provider, cfg.default_timezone)


def refuse(problems: list[Problem]) -> None:
    """ConfigError naming every problem, when there is one (a send refuses to start)."""
    if problems:
        raise ConfigError("; ".join(f"[{section}] {key}: {what}" if key else what for section, key, what in problems))
