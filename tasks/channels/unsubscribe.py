"""One-click unsubscribe (RFC 8058): the token in each e-mail's unsubscribe URL, and a small WSGI app.

Gmail and Yahoo require bulk senders (since February 2024) to carry `List-Unsubscribe:
<https://...>` and `List-Unsubscribe-Post: List-Unsubscribe=One-Click` and to honour the POST
within 48 hours. The POST comes from the mailbox provider with no cookie and no login, so the
URL itself must say who unsubscribes and prove we made it:

    token = base64url(["campaign", "date", "channel", "customer_id"]) "." base64url(HMAC-SHA256(secret, send id)[:16])

The send id is `campaign/date/channel/customer_id` (SendKey.send_id); the secret comes from the
environment variable UNSUBSCRIBE_SECRET (never logged, never in a file of ours). A token cannot
be forged or altered without the secret, and carries no address.

The app (`UnsubscribeApp`): `POST <any path>/<token>` with a valid token calls `record(key,
customer_id)` and answers 200; `GET` shows a confirmation page whose button POSTs, and never
unsubscribes, because link scanners and previews fetch every URL in a mail; a bad token gets
400 and nothing is recorded; other methods 405. Standard library only (waitress serves it, in `python -m tasks web`).
Reads no luigi.cfg section: tasks/campaign/unsubscribes.py wires it to the suppression store.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from tasks.channels.ledger import SendKey

logger = logging.getLogger(__name__)

SECRET_ENV = "UNSUBSCRIBE_SECRET"
MIN_SECRET_CHARS = 16
_MAC_BYTES = 16
_MAX_BODY = 4096
ONE_CLICK = "List-Unsubscribe=One-Click"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, send_id: str) -> bytes:
    return hmac.new(secret, send_id.encode(), hashlib.sha256).digest()[:_MAC_BYTES]


def make_token(secret: bytes, key: SendKey, customer_id: str) -> str:
    """The token of one message (its send id, signed)."""
    payload = json.dumps([key.campaign, key.date, key.channel, customer_id], separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_mac(secret, key.send_id(customer_id)))}"


def read_token(secret: bytes, token: str) -> tuple[SendKey, str] | None:
    """(send key, customer_id) of a valid token; None for anything forged, altered or malformed."""
    try:
        payload, mac = token.split(".")
        campaign, date, channel, customer_id = json.loads(_unb64(payload))
        given = _unb64(mac)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return None
    if not all(isinstance(v, str) for v in (campaign, date, channel, customer_id)):
        return None
    key = SendKey(campaign, date, channel)
    if not hmac.compare_digest(given, _mac(secret, key.send_id(customer_id))):
        return None
    return key, customer_id


def unsubscribe_headers(url: str) -> dict[str, str]:
    """The two RFC 8058 headers for one message's unsubscribe URL."""
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": ONE_CLICK}


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<title>{title}</title></head>
<body><h1>{title}</h1><p>{text}</p>{form}</body></html>
"""
_FORM = """<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button></form>"""


class UnsubscribeApp:
    """The WSGI app; `record(key, customer_id)` stores the unsubscribe (raise to answer 500)."""

    def __init__(self, secret: bytes, record: Callable[[SendKey, str], None]) -> None:
        if len(secret) < MIN_SECRET_CHARS:
            raise ValueError(f"the unsubscribe secret must have at least {MIN_SECRET_CHARS} characters")
        self.secret = secret
        self.record = record

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        token = environ.get("PATH_INFO", "").rstrip("/").rpartition("/")[2]
        found = read_token(self.secret, token)
        if method not in ("GET", "HEAD", "POST"):
            return self._answer(start_response, 405, "Method not allowed", "Use the link in the e-mail.",
                                [("Allow", "GET, HEAD, POST")])
        if found is None:
            return self._answer(start_response, 400, "Invalid link", "This unsubscribe link is not valid.")
        key, customer_id = found
        if method in ("GET", "HEAD"):  # never unsubscribes: scanners and previews fetch links
            body = self._answer(start_response, 200, "Unsubscribe",
                                f"Stop {html.escape(key.channel)} messages like this one?", form=True)
            return [] if method == "HEAD" else body
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            environ["wsgi.input"].read(min(length, _MAX_BODY))  # RFC 8058's body; the token is what counts
        try:
            self.record(key, customer_id)
        except Exception:  # any failure of the store: the sender retries a POST that failed; say so, log the cause
            logger.exception("unsubscribe of customer %s (%s) could not be recorded", customer_id, key.channel)
            return self._answer(start_response, 500, "Try again", "We could not record this; please try again.")
        logger.info("unsubscribed: customer %s from %s (campaign %r, %s)", customer_id, key.channel, key.campaign,
                    key.date)
        return self._answer(start_response, 200, "Unsubscribed", "You will not get these messages any more.")

    @staticmethod
    def _answer(start_response: Callable[..., Any], status: int, title: str, text: str,
                extra: list[tuple[str, str]] | None = None, form: bool = False) -> list[bytes]:
        body = _PAGE.format(title=title, text=text, form=_FORM if form else "").encode()
        reasons = {200: "OK", 400: "Bad Request", 405: "Method Not Allowed", 500: "Internal Server Error"}
        start_response(f"{status} {reasons[status]}", [
            ("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"), ("X-Robots-Tag", "noindex"), *(extra or []),
        ])
        return [body]
