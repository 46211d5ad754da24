"""Delivery events from the providers: checking their signatures, and parsing them into the store's rows.

**SendGrid's signed Event Webhook.** A POST of a JSON array of events. SendGrid signs
SHA-256(`X-Twilio-Email-Event-Webhook-Timestamp` header + the raw body bytes) with ECDSA P-256;
the signature (base64 of its DER form) is in `X-Twilio-Email-Event-Webhook-Signature`; the public
key is the base64 DER SubjectPublicKeyInfo SendGrid shows in its settings, in the environment
variable SENDGRID_WEBHOOK_PUBLIC_KEY. The body checked is the raw bytes, never re-serialised JSON.
SendGrid documents no replay window: a timestamp more than `max_skew` seconds (10 minutes by
default) old or ahead is refused, so a captured request cannot be replayed later.

**Twilio's status callbacks.** A form POST signed in `X-Twilio-Signature`: base64 HMAC-SHA1,
keyed with TWILIO_AUTH_TOKEN, of the full URL Twilio called (query included) followed by every
POST parameter's name and value, sorted by name, with no separators. Behind a proxy the
request's own host is not what Twilio called, so the URL is `[web] public_url` + path + query.
Like Twilio's own validator, the URL is also tried with the default port added or removed.
Comparisons are constant-time (`hmac.compare_digest`).

**Rows.** `parse_sendgrid` and `parse_twilio` turn a verified payload into `DeliveryEvent`s
(tasks/state/events.py); a payload that is not what the provider sends raises
`WebhookRefusedError(400)`. SendGrid event names map to the store's (`bounce` -> bounced with
`bounce_type` bounce/blocked, `spamreport` -> complained, ...); Twilio statuses are kept, and
ErrorCodes are explained by tasks/channels/twilio.py's `DELIVERY_CODES`, the one table of them.
Reads no luigi.cfg section: the caller passes keys, tokens and the public URL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tasks.channels.twilio import DELIVERY_CODES
from tasks.errors import ConfigError, WebhookRefusedError
from tasks.state.events import DeliveryEvent

SENDGRID_KEY_ENV = "SENDGRID_WEBHOOK_PUBLIC_KEY"
TWILIO_TOKEN_ENV = "TWILIO_AUTH_TOKEN"
SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_SIGNATURE = "X-Twilio-Signature"
MAX_SKEW = 600.0

# SendGrid's event names -> the store's; others are stored under their own name
SENDGRID_EVENTS = {
    "processed": "processed", "dropped": "dropped", "delivered": "delivered", "deferred": "deferred",
    "bounce": "bounced", "open": "open", "click": "click", "spamreport": "complained",
    "unsubscribe": "unsubscribed", "group_unsubscribe": "group_unsubscribed",
    "group_resubscribe": "group_resubscribed",
}
_MAX_TEXT = 1000  # a reason longer than this is cut (SMTP replies can be long)


# -- SendGrid ------------------------------------------------------------------------------------

def load_sendgrid_key(text: str) -> ec.EllipticCurvePublicKey:
    """The public key of SENDGRID_WEBHOOK_PUBLIC_KEY (base64 DER, or PEM); ConfigError when it is not a P-256 key."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, TypeError):
        raise ConfigError(f"{SENDGRID_KEY_ENV} is not a base64 DER public key (copy it from SendGrid's "
                          "signed Event Webhook settings)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ConfigError(f"{SENDGRID_KEY_ENV} is not an ECDSA P-256 key")
    return key


def check_sendgrid_timestamp(timestamp: str | None, now: float, max_skew: float = MAX_SKEW) -> None:
    """403 unless the timestamp header is an epoch time within `max_skew` seconds of `now`: checked before
    the body is read."""
    if not timestamp:
        raise WebhookRefusedError(403, f"missing {SENDGRID_TIMESTAMP}")
    try:
        stamp = float(timestamp)
    except ValueError:
        raise WebhookRefusedError(403, "timestamp is not a number") from None
    if not math.isfinite(stamp) or abs(now - stamp) > max_skew:
        raise WebhookRefusedError(403, f"timestamp outside the {max_skew:g} s window")


def verify_sendgrid(key: ec.EllipticCurvePublicKey, signature: str | None, timestamp: str, body: bytes) -> None:
    """403 unless `signature` is the key's ECDSA P-256 signature of timestamp + raw body."""
    if not signature:
        raise WebhookRefusedError(403, f"missing {SENDGRID_SIGNATURE}")
    try:
        der = base64.b64decode(signature, validate=True)
        key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        raise WebhookRefusedError(403, "signature does not verify") from None


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)[:_MAX_TEXT]


def _sendgrid_event(item: Any, received_at: float) -> DeliveryEvent:
    if not isinstance(item, dict) or not isinstance(item.get("event"), str):
        raise WebhookRefusedError(400, "an element is not a SendGrid event object")
    raw: str = item["event"]
    key = item.get("sg_event_id")
    if not isinstance(key, str) or not key:  # every SendGrid event has one; keep a stable key if not
        key = "sha256:" + hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()
    stamp = item.get("timestamp")
    event_at = float(stamp) if isinstance(stamp, (int, float)) and math.isfinite(stamp) else received_at
    send_id = item.get("send_id")  # our custom_args come back as top-level keys
    return DeliveryEvent(
        dedupe_key=key, provider="sendgrid", channel="email", event=SENDGRID_EVENTS.get(raw) or raw,
        provider_event=raw, event_at=event_at, received_at=received_at,
        send_id=send_id if isinstance(send_id, str) and send_id else None,
        bounce_type=_text(item.get("type")) if raw == "bounce" else None,
        bounce_classification=_text(item.get("bounce_classification")),
        reason=_text(item.get("reason") or item.get("response")), error_code=_text(item.get("status")),
        provider_message_id=_text(item.get("sg_message_id")), address=_text(item.get("email")),
    )


def parse_sendgrid(body: bytes, received_at: float) -> list[DeliveryEvent]:
    """The events of one Event Webhook POST (a JSON array); 400 when it is not one."""
    try:
        items = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRefusedError(400, "body is not JSON") from None
    if not isinstance(items, list):
        raise WebhookRefusedError(400, "body is not a JSON array of events")
    return [_sendgrid_event(item, received_at) for item in items]


# -- Twilio --------------------------------------------------------------------------------------

def twilio_signature(token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """base64(HMAC-SHA1(token, url + name1 + value1 + ...)), the parameters sorted by name (then value)."""
    data = url + "".join(name + value for name, value in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def _port_variants(url: str) -> list[str]:
    """`url` as given, plus with its scheme's default port added (or removed): Twilio may sign either."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    if default is None or not parts.hostname:
        return [url]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    other = host if parts.port else f"{host}:{default}"
    if parts.port not in (None, default):
        return [url]
    return [url, urlunsplit(parts._replace(netloc=other))]


def verify_twilio(token: str, url: str, params: list[tuple[str, str]], signature: str | None) -> None:
    """403 unless `signature` is Twilio's signature of `url` and `params` with `token` (constant-time)."""
    if not signature:
        raise WebhookRefusedError(403, f"missing {TWILIO_SIGNATURE}")
    given = signature.encode()
    if not any(hmac.compare_digest(given, twilio_signature(token, candidate, params).encode())
               for candidate in _port_variants(url)):
        raise WebhookRefusedError(403, "signature does not verify")


def parse_twilio(params: Mapping[str, str], send_id: str | None, received_at: float) -> DeliveryEvent:
    """The event of one status callback (form fields), for the message `send_id` (the callback URL's query)."""
    sid = params.get("MessageSid") or params.get("SmsSid")
    status = params.get("MessageStatus") or params.get("SmsStatus")
    if not sid or not status:
        raise WebhookRefusedError(400, "a status callback needs MessageSid and MessageStatus")
    code = params.get("ErrorCode") or None
    known = DELIVERY_CODES.get(code) if code else None
    return DeliveryEvent(
        dedupe_key=f"{sid}:{status}", provider="twilio", channel="sms", event=status.lower(),
        provider_event=status, event_at=received_at, received_at=received_at, send_id=send_id or None,
        reason=known.meaning if known else (f"Twilio error {code}" if code else None), error_code=code,
        provider_message_id=sid, address=params.get("To") or None,
    )
