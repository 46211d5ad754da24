"""Twilio Programmable Messaging: the wire format and its error codes ([sms_campaign] provider = twilio).

`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded `To`, `Body` and
`From` (TWILIO_FROM_NUMBER) or `MessagingServiceSid` (TWILIO_MESSAGING_SERVICE_SID), Basic
auth TWILIO_ACCOUNT_SID:TWILIO_AUTH_TOKEN. Success is 201 with JSON `sid`. Errors carry a
numeric `code`: 21211 (invalid To), 21614 (not a mobile number), 21610 (recipient
unsubscribed: an opt-out, mirrored into the suppression store) and other 4xx are
permanent; 429 / 20429 is never processed and safe to retry.
Twilio has no idempotency key. The statuses follow status.py. Reads no luigi.cfg section
(tasks/campaign/sends.py passes the transport and the account).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import requests

from tasks.channels.base import Message
from tasks.channels.http import HttpProviderClient, HttpTransport, json_body, retry_after_seconds
from tasks.channels.status import ProviderCodes, classify

MAX_BODY_CHARS = 1600
# Known permanent codes and what they mean, for the ledger's reason (Twilio's own messages
# quote the phone number, so they are never copied).
CODES = ProviderCodes(
    permanent={
        "21211": "invalid 'To' phone number",
        "21614": "'To' number cannot receive SMS",
        "21610": "recipient unsubscribed (STOP)",
        "21408": "region not enabled for this account",
        "21606": "'From' number cannot send SMS",
        "63014": "recipient blocked the sender or withdrew consent",
    },
    opt_out=frozenset({"21610", "63014"}),
    rate_limit=frozenset({"20429", "14107"}),
)


def classify_response(response: requests.Response) -> None:
    """Raise the typed error a Twilio response means; return quietly on 2xx."""
    code = json_body(response).get("code")
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    classify("twilio", response.status_code, code=None if code is None else str(code), codes=CODES,
             retry_after=retry_after)


class TwilioClient(HttpProviderClient):
    """One Twilio account; sends one SMS per request."""

    provider = "twilio"
    raise_for_status = staticmethod(classify_response)
    id_field = "sid"

    def __init__(
        self, transport: HttpTransport, account_sid: str, from_number: str = "", messaging_service_sid: str = ""
    ):
        super().__init__(transport, f"/2010-04-01/Accounts/{account_sid}/Messages.json")
        self.sender = {"MessagingServiceSid": messaging_service_sid} if messaging_service_sid else {"From": from_number}

    def reject_reason(self, message: Message) -> str | None:
        if len(message.content["body"]) > MAX_BODY_CHARS:
            return f"sms body of {len(message.content['body'])} characters exceeds {MAX_BODY_CHARS}"
        return None

    def request_form(self, message: Message) -> dict[str, str]:
        """The form fields of one Messages.json request."""
        return {"To": message.address, **self.sender, "Body": message.content["body"]}

    def request(self, messages: Sequence[Message]) -> dict[str, Any]:
        (message,) = messages  # batch_size is 1
        return {"data": self.request_form(message)}
