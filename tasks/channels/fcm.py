"""Firebase Cloud Messaging HTTP v1: the wire format and its error codes ([push_campaign] provider = fcm).

`POST /v1/projects/{project}/messages:send` with `Authorization: Bearer <OAuth2 access token>`,
read per request from a token source (oauth.py):
- a service account (GOOGLE_APPLICATION_CREDENTIALS: the path of its JSON key file, through
  google-auth, scope firebase.messaging): minted at first use, refreshed before it expires and
  once more when FCM answers 401, so a send may last any time. The project is FCM_PROJECT_ID, or
  the key file's `project_id` when that is unset;
- FCM_ACCESS_TOKEN, minted outside (`gcloud auth print-access-token`): it lives about one hour
  and is never refreshed, so only for sends shorter than that.
One token per request (batch send was shut down in 2024). Success is 200 `{"name": ...}`.
Errors come in Google's envelope with `details[].errorCode`: UNREGISTERED (the token is
dead; so is a 404 NOT_FOUND without a detail: both go into the suppression store),
INVALID_ARGUMENT, SENDER_ID_MISMATCH are permanent; QUOTA_EXCEEDED (429, honour
Retry-After), UNAVAILABLE (503) and INTERNAL (500) are retriable (Google's docs say to
retry them with backoff). A 401 after the one renewal stops the send. FCM has no idempotency
key. The statuses follow status.py. Reads no luigi.cfg section (tasks/campaign/providers.py passes
the transport, the token source and the project).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import requests

from tasks.channels.base import Message
from tasks.channels.http import BearerTokens, HttpProviderClient, HttpTransport, json_body, retry_after_seconds
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

    def __init__(self, transport: HttpTransport, project_id: str, tokens: BearerTokens) -> None:
        super().__init__(transport, f"/v1/projects/{project_id}/messages:send", tokens)

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
