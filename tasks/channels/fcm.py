"""Firebase Cloud Messaging HTTP v1: the wire format and its error codes ([push_campaign] provider = fcm).

`POST /v1/projects/{FCM_PROJECT_ID}/messages:send`, Bearer FCM_ACCESS_TOKEN (an OAuth2
access token; minting one from a service-account file needs google-auth, which this
package does not depend on: mint it outside, e.g. `gcloud auth print-access-token`).
One token per request (batch send was shut down in 2024). Success is 200 `{"name": ...}`.
Errors come in Google's envelope with `details[].errorCode`: UNREGISTERED (the token is
dead; so is a 404 NOT_FOUND without a detail: both go into the suppression store),
INVALID_ARGUMENT, SENDER_ID_MISMATCH are permanent; QUOTA_EXCEEDED (429, honour
Retry-After), UNAVAILABLE (503) and INTERNAL (500) are retriable (Google's docs say to
retry them with backoff). FCM has no idempotency key. The statuses follow status.py.
Reads no luigi.cfg section (tasks/campaign/sends.py passes the transport and project).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import requests

from tasks.channels.base import Message
from tasks.channels.http import HttpProviderClient, HttpTransport, json_body, retry_after_seconds
from tasks.channels.status import ProviderCodes, classify

CODES = ProviderCodes(
    permanent={
        "UNREGISTERED": "the token is no longer registered",
        "NOT_FOUND": "the token is no longer valid",
        "INVALID_ARGUMENT": "invalid message or token",
        "SENDER_ID_MISMATCH": "the token belongs to another sender",
    },
    opt_out=frozenset({"UNREGISTERED", "NOT_FOUND"}),
    auth=frozenset({"THIRD_PARTY_AUTH_ERROR"}),
    rate_limit=frozenset({"QUOTA_EXCEEDED"}),
    retriable=frozenset({"UNAVAILABLE", "INTERNAL"}),
)


def classify_response(response: requests.Response) -> None:
    """Raise the typed error an FCM response means; return quietly on 2xx."""
    error = json_body(response).get("error")
    error = error if isinstance(error, dict) else {}
    codes = [d.get("errorCode") for d in error.get("details") or [] if isinstance(d, dict) and d.get("errorCode")]
    code = codes[0] if codes else error.get("status")
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    classify("fcm", response.status_code, code=str(code) if code else None, codes=CODES, retry_after=retry_after)


class FcmClient(HttpProviderClient):
    """One Firebase project; sends one notification per request."""

    provider = "fcm"
    raise_for_status = staticmethod(classify_response)
    id_field = "name"

    def __init__(self, transport: HttpTransport, project_id: str):
        super().__init__(transport, f"/v1/projects/{project_id}/messages:send")

    def request_body(self, message: Message) -> dict[str, object]:
        """The JSON body of one messages:send request."""
        return {
            "message": {
                "token": message.address,
                "notification": {"title": message.content["title"], "body": message.content["body"]},
                "data": {"send_id": message.send_id, "customer_id": message.customer_id},
            }
        }

    def request(self, messages: Sequence[Message]) -> dict[str, Any]:
        (message,) = messages  # batch_size is 1
        return {"json": self.request_body(message)}
