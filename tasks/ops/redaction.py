"""Strip secrets and mask personal data in free text before it leaves the process (alerts).

`redact(text)` is the one entry point. Secrets are removed outright: values of environment
variables whose names look secret, the Slack webhook URL, bearer/basic credentials, known key
formats (SendGrid `SG.`, Stripe-style `sk_`, Slack `xox?-`, AWS access keys, Google `ya29.` access
tokens, private-key blocks), passwords in URLs and in `key=value` strings. Personal data is masked
with tasks/pii.py: e-mail addresses, phone numbers (libphonenumber's matcher, plus any `+`
E.164-looking run) and long device-token-like strings. Reads [alerts] phone_region through the
caller (a plain argument).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from tasks.pii import mask_email, mask_phone, mask_token

REDACTED = "[REDACTED]"

# Environment variable names whose values are treated as secrets wherever they appear.
# (Not PWD: that is the working directory.)
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|AUTH|CREDENTIAL|PRIVATE|WEBHOOK|SIGNATURE|DSN", re.I)
# Shorter values (flags, "1", "true") would wipe ordinary words out of messages.
_MIN_SECRET_LEN = 6

_SECRET_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S), REDACTED),
    (re.compile(r"https://hooks\.slack\.com/\S+", re.I), REDACTED),
    # a webhook's path without its host, as HTTP libraries print a request line
    (re.compile(r"/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{16,}"), REDACTED),
    (re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{6,}", re.I), rf"\1 {REDACTED}"),
    (re.compile(r"\bSG\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), REDACTED),
    (re.compile(r"\b(sk|rk|pk)_(live|test)_[A-Za-z0-9]{8,}"), REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), REDACTED),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{8,}"), REDACTED),
    # Google OAuth2 access tokens (FCM's bearer tokens, minted from a service account)
    (re.compile(r"\bya29\.[A-Za-z0-9._-]{8,}"), REDACTED),
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
    # scheme://user:password@host -> scheme://user:[REDACTED]@host
    (re.compile(r"([a-z][a-z0-9+.-]*://[^\s:/@]+):[^\s@/]+@", re.I), rf"\1:{REDACTED}@"),
    # user:password@host without a well-formed scheme (a mistyped DSN such as `postgresql//u:pw@db/x`)
    (re.compile(r"(?<![\w:])([A-Za-z_][\w.-]*):(?!\[REDACTED\])[^\s@/:]+@(?=[\w.-])"), rf"\1:{REDACTED}@"),
    # password=..., "api_key": "...", token: ..., also inside connection strings and query strings
    (
        re.compile(
            r"""(?ix)
            (["']?\b[\w.-]*(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|access[_-]?key|auth|credential)
            [\w.-]*["']?\s*[=:]\s*)
            ("[^"]*"|'[^']*'|[^\s,;&'"}]+)
            """
        ),
        rf"\1{REDACTED}",
    ),
]

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# URL-encoded, as query strings carry them: `To=%2B447946095812`, `email=ann%40example.com`
_ENCODED_PHONE = re.compile(r"%2B\d{7,15}", re.I)
_ENCODED_EMAIL = re.compile(r"[A-Za-z0-9._+-]+%40[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", re.I)
_E164ISH = re.compile(r"\+\d[\d\s().-]{6,}\d")
# FCM registration tokens (~150 chars of [A-Za-z0-9_:-]) and APNs hex tokens (64 hex digits).
_DEVICE_TOKEN = re.compile(r"(?<![\w:-])[A-Za-z0-9_:-]{64,}(?![\w:-])")


def secret_values(environ: Mapping[str, str] | None = None, extra: Iterable[str] = ()) -> list[str]:
    """Values of secret-looking environment variables plus `extra`, longest first."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= _MIN_SECRET_LEN}
    values.update(v for v in extra if v and len(v) >= _MIN_SECRET_LEN)
    return sorted(values, key=len, reverse=True)


def redact(
    text: str,
    *,
    extra_secrets: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
    phone_region: str | None = "US",
) -> str:
    """`text` with secrets replaced by [REDACTED] and e-mails, phones, device tokens masked."""
    out = str(text)
    for value in secret_values(environ, extra_secrets):
        out = out.replace(value, REDACTED)
    for pattern, replacement in _SECRET_PATTERNS:
        out = pattern.sub(replacement, out)
    out = _ENCODED_EMAIL.sub(lambda m: mask_email(re.sub("%40", "@", m.group(0), flags=re.I)), out)
    out = _ENCODED_PHONE.sub(lambda m: mask_phone("+" + m.group(0)[3:]), out)
    out = _EMAIL.sub(lambda m: mask_email(m.group(0)), out)
    out = _mask_phones(out, phone_region)
    return _DEVICE_TOKEN.sub(lambda m: mask_token(m.group(0)), out)


def _mask_phones(text: str, region: str | None) -> str:
    """Mask what libphonenumber recognises as a phone number, then any leftover E.164-looking run."""
    import phonenumbers  # here, not at import: `import tasks` loads this module for the alert handlers

    spans: list[tuple[int, int]] = []
    for matcher_region in {None, region or None}:
        matcher = phonenumbers.PhoneNumberMatcher(text, matcher_region, leniency=phonenumbers.Leniency.POSSIBLE)
        spans.extend((m.start, m.end) for m in matcher)
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in reversed(merged):
        text = text[:start] + mask_phone(_digits(text[start:end])) + text[end:]
    return _E164ISH.sub(lambda m: mask_phone(_digits(m.group(0))), text)


def _digits(raw: str) -> str:
    """`+1 (202) 555-0123` -> `+12025550123`, so the mask shows a country prefix, not punctuation."""
    return ("+" if "+" in raw else "") + re.sub(r"\D", "", raw)
