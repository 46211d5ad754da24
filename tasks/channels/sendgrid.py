"""SendGrid v3 mail send: the wire format and its error details ([email_campaign] provider = sendgrid).

`POST /v3/mail/send`, Bearer `SENDGRID_API_KEY`. One request carries up to 1000
personalizations (SendGrid's limit is 10 requests per second, not 10 recipients). Each
personalization has the recipient, its own rendered subject, its rendered body as the value
of the substitution tag `-body-` (the shared content is just that tag; at most 10,000 bytes
of substitutions per personalization), its HTML part as `-html-` when the template has one
(content `text/plain` + `text/html`), the RFC 8058 headers `List-Unsubscribe` and
`List-Unsubscribe-Post` when the message has an unsubscribe URL, and `custom_args` with our
send id. Per request: `asm.group_id` (an unsubscribe group) and `mail_settings.sandbox_mode`
(validated by SendGrid, delivered to nobody) when configured. Success is 202
with `X-Message-Id`; 429 says when to come back in `X-RateLimit-Reset` (epoch seconds).
SendGrid has no error codes of its own (the statuses follow status.py) and no idempotency
key. Reads no luigi.cfg section (tasks/campaign/providers.py passes the transport and sender).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import requests

from tasks.channels.base import Message
from tasks.channels.http import HttpProviderClient, HttpTransport, reset_epoch_seconds, retry_after_seconds
from tasks.channels.status import ProviderCodes, classify
from tasks.channels.unsubscribe import unsubscribe_headers

PATH = "/v3/mail/send"
MAX_PERSONALIZATIONS = 1000
BODY_TAG = "-body-"
HTML_TAG = "-html-"
MAX_SUBSTITUTION_BYTES = 10_000
CODES = ProviderCodes(auth_meaning="API key rejected or lacks mail.send")


def classify_response(response: requests.Response) -> None:
    """Raise the typed error a SendGrid response means; return quietly on 202 (or any 2xx)."""
    wait = reset_epoch_seconds(response.headers.get("X-RateLimit-Reset"))
    if wait is None:
        wait = retry_after_seconds(response.headers.get("Retry-After"))
    classify("sendgrid", response.status_code, codes=CODES, retry_after=wait, detail=_error_fields(response))


def _error_fields(response: requests.Response) -> str:
    """The fields SendGrid complained about (never its messages: they may quote an address)."""
    try:
        errors = response.json().get("errors") or []
        fields = sorted({str(e.get("field")) for e in errors if isinstance(e, dict) and e.get("field")})
    except (ValueError, AttributeError):
        fields = []
    return ("fields " + ", ".join(fields[:5])) if fields else ""


class SendGridClient(HttpProviderClient):
    """One SendGrid account: sends batches of e-mails; secrets stay in the transport headers."""

    provider = "sendgrid"
    raise_for_status = staticmethod(classify_response)

    def __init__(self, transport: HttpTransport, from_email: str, from_name: str = "", batch_size: int = 1000,
                 asm_group_id: int = 0, sandbox: bool = False) -> None:
        super().__init__(transport, PATH)
        self.sender = {"email": from_email, **({"name": from_name} if from_name else {})}
        self.batch_size = max(1, min(int(batch_size), MAX_PERSONALIZATIONS))
        self.asm_group_id = int(asm_group_id)
        self.sandbox = bool(sandbox)

    def reject_reason(self, message: Message) -> str | None:
        size = len(message.content["body"].encode()) + len(BODY_TAG)
        if "html" in message.content:
            size += len(message.content["html"].encode()) + len(HTML_TAG)
        if size > MAX_SUBSTITUTION_BYTES:
            return f"e-mail body of {size} bytes exceeds SendGrid's {MAX_SUBSTITUTION_BYTES}-byte substitutions"
        return None

    def request_body(self, messages: Sequence[Message]) -> dict[str, object]:
        """The JSON body of one mail-send request for `messages`."""
        with_html = any("html" in m.content for m in messages)  # one template per send: all or none
        body: dict[str, object] = {
            "personalizations": [self._personalization(m, with_html) for m in messages],
            "from": self.sender,
            "content": [{"type": "text/plain", "value": BODY_TAG},
                        *([{"type": "text/html", "value": HTML_TAG}] if with_html else [])],
        }
        if self.asm_group_id:
            body["asm"] = {"group_id": self.asm_group_id}
        if self.sandbox:
            body["mail_settings"] = {"sandbox_mode": {"enable": True}}
        return body

    @staticmethod
    def _personalization(m: Message, with_html: bool) -> dict[str, object]:
        substitutions = {BODY_TAG: m.content["body"]}
        if with_html:
            substitutions[HTML_TAG] = m.content.get("html") or m.content["body"]
        out: dict[str, object] = {
            "to": [{"email": m.address}],
            "subject": m.content["subject"],
            "substitutions": substitutions,
            "custom_args": {"send_id": m.send_id, "customer_id": m.customer_id},
        }
        if m.content.get("unsubscribe_url"):
            out["headers"] = unsubscribe_headers(m.content["unsubscribe_url"])
        return out

    def request(self, messages: Sequence[Message]) -> dict[str, Any]:
        return {"json": self.request_body(messages)}

    def message_id(self, response: requests.Response) -> str | None:
        return response.headers.get("X-Message-Id")  # one id for the whole request

