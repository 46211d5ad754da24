"""Masks for personal data in logs and alerts: e-mail addresses, phone numbers, device tokens.

Pure helpers with no configuration. Every log line or alert that names a recipient goes
through one of these; the operator's own data files (rejects.csv, the ledger) keep raw values.
"""

from __future__ import annotations


def mask_email(value: str | None) -> str:
    """`alice@example.com` -> `a***@example.com`: the first character and the domain survive."""
    if not value:
        return "<none>"
    local, sep, domain = str(value).rpartition("@")
    if not sep:
        return _stars(str(value))
    return f"{local[:1]}***@{domain}"


def mask_phone(value: str | None) -> str:
    """`+12025550123` -> `+1******23`: the country prefix and the last two digits survive."""
    if not value:
        return "<none>"
    text = str(value)
    if text.startswith("+") and len(text) > 5:
        return f"{text[:2]}{'*' * (len(text) - 4)}{text[-2:]}"
    return _stars(text)


def mask_token(value: str | None) -> str:
    """A device token -> its first four characters and its length, e.g. `dK3f...(152)`."""
    if not value:
        return "<none>"
    text = str(value)
    return f"{text[:4]}...({len(text)})"


def _stars(text: str) -> str:
    """Anything unrecognised: nothing of it but its length."""
    return f"***({len(text)})"
