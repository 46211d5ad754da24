"""SendGrid v3 mail send: the wire format and the error map ([email_campaign] provider = sendgrid).

`POST /v3/mail/send`, Bearer `SENDGRID_API_KEY`. One request carries up to 1000
personalizations (SendGrid's limit is 10 requests per second, not 10 recipients). Each
personalization has the recipient, its own rendered subject, its rendered body as the value
of the substitution tag `-body-` (the shared content is just that tag; at most 10,000 bytes
of substitutions per personalization) and `custom_args` with our send id. Success is 202
with `X-Message-Id`; 429 says when to come back in `X-RateLimit-Reset` (epoch seconds).
SendGrid has no idempotency key.
"""

from __future__ import annotations

from collections.abc import Sequence

import requests

from tasks.channels.base import Message
from tasks.channels.http import HttpTransport, reset_epoch_seconds, retry_after_seconds, server_error
from tasks.errors import AuthApiError, FatalApiError, RetriableApiError

PATH = "/v3/mail/send"
MAX_PERSONALIZATIONS = 1000
BODY_TAG = "-body-"
MAX_SUBSTITUTION_BYTES = 10_000


class SendGridClient:
    """One SendGrid account: sends batches of e-mails; secrets stay in the transport headers."""

    provider = "sendgrid"
    idempotent = False

    def __init__(self, transport: HttpTransport, from_email: str, from_name: str = "", batch_size: int = 1000):
        self.transport = transport
        self.sender = {"email": from_email, **({"name": from_name} if from_name else {})}
        self.batch_size = max(1, min(int(batch_size), MAX_PERSONALIZATIONS))

    def reject_reason(self, message: Message) -> str | None:
        size = len(message.content["body"].encode()) + len(BODY_TAG)
        if size > MAX_SUBSTITUTION_BYTES:
            return f"e-mail body of {size} bytes exceeds SendGrid's {MAX_SUBSTITUTION_BYTES}-byte substitutions"
        return None

    def request_body(self, messages: Sequence[Message]) -> dict[str, object]:
        """The JSON body of one mail-send request for `messages`."""
        return {
            "personalizations": [
                {
                    "to": [{"email": m.address}],
                    "subject": m.content["subject"],
                    "substitutions": {BODY_TAG: m.content["body"]},
                    "custom_args": {"send_id": m.send_id, "customer_id": m.customer_id},
                }
                for m in messages
            ],
            "from": self.sender,
            "content": [{"type": "text/plain", "value": BODY_TAG}],
        }

    def send(self, messages: Sequence[Message]) -> list[str | None]:
        response = self.transport.post(PATH, json=self.request_body(messages))
        classify_response(response)
        message_id = response.headers.get("X-Message-Id")
        return [message_id] * len(messages)

    def close(self) -> None:
        self.transport.close()


def classify_response(response: requests.Response) -> None:
    """Raise the typed error a SendGrid response means; return quietly on 202 (or any 2xx)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    if status == 429:
        wait = reset_epoch_seconds(response.headers.get("X-RateLimit-Reset"))
        if wait is None:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
        raise RetriableApiError("sendgrid: HTTP 429 rate limited", status=429, retry_after=wait)
    if status >= 500:
        raise server_error("sendgrid", status)
    if status in (401, 403):
        raise AuthApiError(f"sendgrid: HTTP {status}: API key rejected or lacks mail.send", status=status)
    raise FatalApiError(f"sendgrid: HTTP {status} on {_error_fields(response)}", status=status, code=str(status))


def _error_fields(response: requests.Response) -> str:
    """The fields SendGrid complained about (never its messages: they may quote an address)."""
    try:
        errors = response.json().get("errors") or []
        fields = sorted({str(e.get("field")) for e in errors if isinstance(e, dict) and e.get("field")})
    except (ValueError, AttributeError):
        fields = []
    return ", ".join(fields[:5]) or "the request"
