"""The provider registry of the campaign sends: which providers each channel may use, their default limits
and base URLs, what each needs from the environment, and the client of a configured section.

Credentials come from the environment only: SENDGRID_API_KEY; TWILIO_ACCOUNT_SID,
TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID; for FCM either
FCM_ACCESS_TOKEN (a token minted outside, for sends shorter than its hour; it wins when set) or
GOOGLE_APPLICATION_CREDENTIALS (a service-account key file, refreshed as needed), and FCM_PROJECT_ID
unless the key file's `project_id` names the project. A missing one is named, never its value nor
a key file's content. Reads the channel section it is given (tasks/config.py).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tasks import config
from tasks.channels.base import ProviderClient
from tasks.channels.fcm import FcmClient
from tasks.channels.http import HttpTransport
from tasks.channels.ledger import SendKey
from tasks.channels.oauth import CREDENTIALS_ENV, ServiceAccountToken, StaticToken, load_service_account
from tasks.channels.outbox import OutboxClient, outbox_path
from tasks.channels.sendgrid import SendGridClient
from tasks.channels.twilio import TwilioClient
from tasks.errors import ConfigError

logger = logging.getLogger(__name__)

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
def limits(cfg: config.ChannelCampaignConfig) -> tuple[float, int]:
    """(rate, burst) of a section, with the provider's defaults for zeros."""
    rate, burst = DEFAULT_LIMITS.get(cfg.provider, (1.0, 1))
    return (cfg.rate or rate, cfg.burst or burst)


def make_client(channel: str, cfg: config.ChannelCampaignConfig, var_dir: Path, key: SendKey) -> ProviderClient:
    """The provider client of a section (after config_problems found none); credentials from the environment."""
    if cfg.provider == "outbox":
        return OutboxClient(outbox_path(var_dir, channel, key.campaign, key.date), channel)
    if cfg.provider == "sendgrid" and isinstance(cfg, config.EmailCampaignConfig):
        return _sendgrid(cfg)
    if cfg.provider == "twilio":
        return _twilio(cfg)
    if cfg.provider == "fcm":
        return _fcm(cfg)
    raise ConfigError(f"[{channel}_campaign] provider = {cfg.provider!r}; expected one of {PROVIDERS[channel]}")


def _transport(cfg: config.ChannelCampaignConfig, headers: dict[str, str] | None = None,
               auth: tuple[str, str] | None = None) -> HttpTransport:
    """The section's HTTP transport to its provider (base_url, else the provider's own), with its timeouts."""
    return HttpTransport(cfg.provider, cfg.base_url or DEFAULT_BASE_URLS[cfg.provider], headers=headers, auth=auth,
                         connect_timeout=cfg.connect_timeout, read_timeout=cfg.timeout)


def _sendgrid(cfg: config.EmailCampaignConfig) -> SendGridClient:
    transport = _transport(cfg, headers={"Authorization": f"Bearer {os.environ['SENDGRID_API_KEY']}"})
    return SendGridClient(transport, cfg.from_email, cfg.from_name, cfg.batch_size, cfg.asm_group_id, cfg.sandbox)


def _twilio(cfg: config.ChannelCampaignConfig) -> TwilioClient:
    env = os.environ
    sid = env["TWILIO_ACCOUNT_SID"]
    service = env.get("TWILIO_MESSAGING_SERVICE_SID", "")
    number = "" if service else env["TWILIO_FROM_NUMBER"]
    return TwilioClient(_transport(cfg, auth=(sid, env["TWILIO_AUTH_TOKEN"])), sid, number, service,
                        config.WebConfig().public_url)


def _fcm(cfg: config.ChannelCampaignConfig) -> FcmClient:
    env = os.environ
    tokens: StaticToken | ServiceAccountToken
    if env.get("FCM_ACCESS_TOKEN"):
        tokens, project = StaticToken(env["FCM_ACCESS_TOKEN"]), env["FCM_PROJECT_ID"]
        logger.info("fcm: using FCM_ACCESS_TOKEN (never refreshed: for sends shorter than its hour)")
    else:
        margin = cfg.token_refresh_margin if isinstance(cfg, config.PushCampaignConfig) else 300.0
        tokens = ServiceAccountToken(load_service_account(env[CREDENTIALS_ENV]), refresh_margin=margin,
                                     timeout=cfg.timeout)
        project = env.get("FCM_PROJECT_ID") or tokens.project_id or ""
        logger.info("fcm: using the service account %s (refreshed %g s before expiry)", tokens.email, margin)
    return FcmClient(_transport(cfg), project, tokens)


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
