"""Address normalisation, the segment loader's rules in one place: e-mails lower-cased after
email-validator's normalisation, phones in E.164 (phonenumbers, national numbers read in a default
region), device tokens trimmed. Used wherever an address typed or imported by a person is
compared with the loader's output: the suppression list, `python -m tasks suppress`.
Pure; reads no configuration.
"""

from __future__ import annotations

# email_validator and phonenumbers are imported by the functions that use them: CHANNELS is read
# by the Luigi classes at `import tasks`, which must not load the validators' tables

CHANNELS = ("email", "sms", "push")


def normalise_email(value: str) -> str | None:
    """`  Ann@Example.COM ` -> `ann@example.com`; None when it is not a valid address."""
    import email_validator

    try:
        return email_validator.validate_email(value.strip(), check_deliverability=False).normalized.lower()
    except email_validator.EmailNotValidError:
        return None


def normalise_phone(value: str, region: str = "US") -> str | None:
    """`(212) 555-0123` -> `+12125550123`; None when phonenumbers finds no valid number."""
    import phonenumbers

    try:
        number = phonenumbers.parse(value.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise(channel: str, value: str, region: str = "US") -> str | None:
    """The address of `channel` (email, sms, push) as the segment loader writes it, or None if invalid."""
    if channel == "email":
        return normalise_email(value)
    if channel == "sms":
        return normalise_phone(value, region)
    if channel == "push":
        token = value.strip()
        return token or None
    raise ValueError(f"unknown channel {channel!r}; expected one of {CHANNELS}")


def channel_of(value: str, region: str = "US") -> tuple[str, str] | None:
    """(channel, normalised address) guessed from the value's shape: an e-mail, else a phone; None otherwise.
    Used for suppression entries of channel `all`, which may hold either."""
    if "@" in value:
        email = normalise_email(value)
        return ("email", email) if email else None
    phone = normalise_phone(value, region)
    return ("sms", phone) if phone else None
