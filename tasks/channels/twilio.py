"""Twilio Programmable Messaging: the wire format and the error map ([sms_campaign] provider = twilio).

`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded `To`, `Body` and
`From` (TWILIO_FROM_NUMBER) or `MessagingServiceSid` (TWILIO_MESSAGING_SERVICE_SID), Basic
auth TWILIO_ACCOUNT_SID:TWILIO_AUTH_TOKEN. Success is 201 with JSON `sid`. Errors carry a
numeric `code`: 21211 (invalid To), 21614 (not a mobile number), 21610 (recipient
unsubscribed) and other 4xx are permanent; 429 / 20429 is never processed and safe to retry.
Twilio has no idempotency key.
"""

from __future__ import annotations

from collections.abc import Sequence

import requests

from tasks.channels.base import Message
from tasks.channels.http import HttpTransport, json_body, retry_after_seconds, server_error
from tasks.errors import AuthApiError, FatalApiError, RetriableApiError

MAX_BODY_CHARS = 1600
# Known permanent codes -> what they mean, for the ledger's reason (Twilio's own messages
# quote the phone number, so they are never copied).
PERMANENT_CODES = {
    21211: "invalid 'To' phone number",
    21614: "'To' number cannot receive SMS",
    21610: "recipient unsubscribed (STOP)",
    21408: "region not enabled for this account",
    21606: "'From' number cannot send SMS",
}
RATE_LIMIT_CODES = {20429, 14107}


class TwilioClient:
    """One Twilio account; sends one SMS per request."""

    provider = "twilio"
    batch_size = 1
    idempotent = False

    def __init__(
        self, transport: HttpTransport, account_sid: str, from_number: str = "", messaging_service_sid: str = ""
    ):
        self.transport = transport
        self.path = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.sender = {"MessagingServiceSid": messaging_service_sid} if messaging_service_sid else {"From": from_number}

    def reject_reason(self, message: Message) -> str | None:
        if len(message.content["body"]) > MAX_BODY_CHARS:
            return f"sms body of {len(message.content['body'])} characters exceeds {MAX_BODY_CHARS}"
        return None

    def request_form(self, message: Message) -> dict[str, str]:
        """The form fields of one Messages.json request."""
        return {"To": message.address, **self.sender, "Body": message.content["body"]}

    def send(self, messages: Sequence[Message]) -> list[str | None]:
        ids: list[str | None] = []
        for message in messages:  # batch_size is 1: one message per call
            response = self.transport.post(self.path, data=self.request_form(message))
            classify_response(response)
            ids.append(json_body(response).get("sid"))
        return ids

    def close(self) -> None:
        self.transport.close()


def classify_response(response: requests.Response) -> None:
    """Raise the typed error a Twilio response means; return quietly on 2xx."""
    status = response.status_code
    if 200 <= status < 300:
        return
    body = json_body(response)
    code = body.get("code")
    code_text = str(code) if code is not None else None
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    if status == 429 or code in RATE_LIMIT_CODES:
        raise RetriableApiError(
            f"twilio: HTTP {status} rate limited", status=status, code=code_text, retry_after=retry_after
        )
    if status >= 500:
        raise server_error("twilio", status, code_text, retry_after)
    if status in (401, 403) and code not in PERMANENT_CODES:
        raise AuthApiError(f"twilio: HTTP {status}: credentials rejected", status=status, code=code_text)
    meaning = PERMANENT_CODES.get(code, "request rejected") if isinstance(code, int) else "request rejected"
    raise FatalApiError(f"twilio: HTTP {status} code {code_text}: {meaning}", status=status, code=code_text)

