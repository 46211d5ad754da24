"""Twilio Programmable Messaging: the wire format and its error codes ([sms_campaign] provider = twilio).

`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded `To`, `Body` and
`From` (TWILIO_FROM_NUMBER) or `MessagingServiceSid` (TWILIO_MESSAGING_SERVICE_SID), Basic
auth TWILIO_ACCOUNT_SID:TWILIO_AUTH_TOKEN. Success is 201 with JSON `sid`. Errors carry a
numeric `code`: 21211 (invalid To), 21614 (not a mobile number), 21610 (recipient
unsubscribed: an opt-out, mirrored into the suppression store) and other 4xx are
permanent; 429 / 20429 is never processed and safe to retry.
Twilio has no idempotency key. The statuses follow status.py. Reads no luigi.cfg section
(tasks/campaign/providers.py passes the transport, the account and `[web] public_url`).

Status callbacks: with a public URL, every message carries `StatusCallback =
<public_url>/events/twilio?send_id=<send id>`, so Twilio posts each status change of it to the
web endpoint (tasks/campaign/web.py), signed with the auth token, and the event names its send.
`DELIVERY_CODES` is the one table of the ErrorCodes those callbacks carry (Twilio warns that codes
change: edit them here only).

Lookup (what settles an `unknown`): `GET .../Messages.json` filtered by `To`, `From` and
`DateSent>` (on or after a GMT day, sent as `YYYY-MM-DDT00:00:00Z` like Twilio's own client
and the spec's `date-time` format), paged by `PageSize` and the answer's `next_page_uri`. A
Message resource exists as soon as a create was accepted; its `date_sent` is set once it left
Twilio's queue, so a message still queued is not found by a DateSent filter yet.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from tasks.channels.base import Message
from tasks.channels.http import HttpProviderClient, HttpTransport, json_body, retry_after_seconds
from tasks.channels.status import ProviderCodes, classify

MAX_BODY_CHARS = 1600
LIST_PAGE_SIZE = 1000  # Twilio's maximum
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




@dataclass(frozen=True)
class DeliveryCode:
    """What a status callback's ErrorCode means for the address."""

    meaning: str
    suppress: bool = False  # never message this number again (until it opts back in)
    filtered: bool = False  # the carrier or Twilio filtered the message (spam or policy)


# ErrorCodes of `undelivered` / `failed` callbacks (Twilio's error dictionary, checked December 2026)
DELIVERY_CODES = {
    "30001": DeliveryCode("queue overflow"),
    "30002": DeliveryCode("account suspended"),
    "30003": DeliveryCode("unreachable destination handset (transient)"),
    "30004": DeliveryCode("message blocked by the recipient or carrier"),
    "30005": DeliveryCode("unknown destination handset", suppress=True),
    "30006": DeliveryCode("landline or unreachable carrier", suppress=True),
    "30007": DeliveryCode("filtered by the carrier or Twilio (spam or policy)", filtered=True),
    "30008": DeliveryCode("unknown error"),
    "30034": DeliveryCode("message from an unregistered 10DLC number", filtered=True),
    "21610": DeliveryCode("recipient unsubscribed (STOP)", suppress=True),
}


def status_callback_url(public_url: str, send_id: str) -> str:
    """`<public_url>/events/twilio?send_id=<send id>`: where Twilio posts this message's status changes."""
    return f"{public_url.rstrip('/')}/events/twilio?send_id={quote(send_id, safe='')}"


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
        self, transport: HttpTransport, account_sid: str, from_number: str = "", messaging_service_sid: str = "",
        public_url: str = "",
    ) -> None:
        super().__init__(transport, f"/2010-04-01/Accounts/{account_sid}/Messages.json")
        self.sender = {"MessagingServiceSid": messaging_service_sid} if messaging_service_sid else {"From": from_number}
        self.public_url = public_url  # [web] public_url: every message gets a StatusCallback when set

    def reject_reason(self, message: Message) -> str | None:
        if len(message.content["body"]) > MAX_BODY_CHARS:
            return f"sms body of {len(message.content['body'])} characters exceeds {MAX_BODY_CHARS}"
        return None

    def request_form(self, message: Message) -> dict[str, str]:
        """The form fields of one Messages.json request."""
        form = {"To": message.address, **self.sender, "Body": message.content["body"]}
        if self.public_url:
            form["StatusCallback"] = status_callback_url(self.public_url, message.send_id)
        return form

    def request(self, messages: Sequence[Message]) -> dict[str, Any]:
        (message,) = messages  # batch_size is 1
        return {"data": self.request_form(message)}

    def list_params(self, to: str, since: dt.date) -> dict[str, str]:
        """Query of the first Messages list page: messages to `to` from our sender, sent on or after `since`."""
        # date-time as the spec's schema and Twilio's own client send it (midnight GMT: the day is what counts)
        params = {"To": to, "DateSent>": f"{since.isoformat()}T00:00:00Z", "PageSize": str(LIST_PAGE_SIZE)}
        if "From" in self.sender:
            params["From"] = self.sender["From"]
        return params

    def list_messages(
        self, to: str, since: dt.date, page_uri: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the Messages list (the first, or `page_uri` from the previous page's
        `next_page_uri`): (messages sent by this account's sender, the next page's URI or None)."""
        if page_uri is None:
            response = self.transport.get(self.path, self.list_params(to, since))
        else:
            response = self.transport.get(page_uri)  # a path with its query, as Twilio gives it
        classify_response(response)
        body = json_body(response)
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict) and self._ours(m)]
        return messages, body.get("next_page_uri") or None

    def _ours(self, message: dict[str, Any]) -> bool:
        if not str(message.get("direction", "outbound")).startswith("outbound"):
            return False
        if "MessagingServiceSid" in self.sender:
            return message.get("messaging_service_sid") == self.sender["MessagingServiceSid"]
        return message.get("from") == self.sender["From"]


def created_at(message: dict[str, Any]) -> float | None:
    """A Message resource's `date_created` (RFC 2822, GMT) as epoch seconds, or None."""
    try:
        return email.utils.parsedate_to_datetime(str(message["date_created"])).timestamp()
    except (KeyError, TypeError, ValueError):
        return None
