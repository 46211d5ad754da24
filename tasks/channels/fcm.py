"""Firebase Cloud Messaging HTTP v1: the wire format and the error map ([push_campaign] provider = fcm).

`POST /v1/projects/{FCM_PROJECT_ID}/messages:send`, Bearer FCM_ACCESS_TOKEN (an OAuth2
access token; minting one from a service-account file needs google-auth, which this
package does not depend on: mint it outside, e.g. `gcloud auth print-access-token`).
One token per request (batch send was shut down in 2024). Success is 200 `{"name": ...}`.
Errors come in Google's envelope with `details[].errorCode`: UNREGISTERED (the token is
dead), INVALID_ARGUMENT, SENDER_ID_MISMATCH are permanent; QUOTA_EXCEEDED (429, honour
Retry-After), UNAVAILABLE (503) and INTERNAL (500) are retriable (Google's docs say to
retry them with backoff). FCM has no idempotency key.
"""

from __future__ import annotations

from collections.abc import Sequence

import requests

from tasks.channels.base import Message
from tasks.channels.http import HttpTransport, json_body, retry_after_seconds, server_error
from tasks.errors import AuthApiError, FatalApiError, RetriableApiError

PERMANENT_CODES = {"UNREGISTERED", "INVALID_ARGUMENT", "SENDER_ID_MISMATCH"}
AUTH_CODES = {"THIRD_PARTY_AUTH_ERROR"}
RETRIABLE_CODES = {"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"}


class FcmClient:
    """One Firebase project; sends one notification per request."""

    provider = "fcm"
    batch_size = 1
    idempotent = False

    def __init__(self, transport: HttpTransport, project_id: str):
        self.transport = transport
        self.path = f"/v1/projects/{project_id}/messages:send"

    def reject_reason(self, message: Message) -> str | None:
        return None

    def request_body(self, message: Message) -> dict[str, object]:
        """The JSON body of one messages:send request."""
        return {
            "message": {
                "token": message.address,
                "notification": {"title": message.content["title"], "body": message.content["body"]},
                "data": {"send_id": message.send_id, "customer_id": message.customer_id},
            }
        }

    def send(self, messages: Sequence[Message]) -> list[str | None]:
        ids: list[str | None] = []
        for message in messages:  # batch_size is 1: one message per call
            response = self.transport.post(self.path, json=self.request_body(message))
            classify_response(response)
            ids.append(json_body(response).get("name"))
        return ids

    def close(self) -> None:
        self.transport.close()


def classify_response(response: requests.Response) -> None:
    """Raise the typed error an FCM response means; return quietly on 2xx."""
    status = response.status_code
    if 200 <= status < 300:
        return
    error = json_body(response).get("error")
    error = error if isinstance(error, dict) else {}
    codes = [d.get("errorCode") for d in error.get("details") or [] if isinstance(d, dict) and d.get("errorCode")]
    code = codes[0] if codes else error.get("status")
    code = str(code) if code else None
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    if code in AUTH_CODES or status in (401, 403):
        raise AuthApiError(f"fcm: HTTP {status} {code or ''}: credentials rejected".strip(), status=status, code=code)
    if code in PERMANENT_CODES:
        raise FatalApiError(f"fcm: HTTP {status} {code}", status=status, code=code)
    if status == 429 or code == "QUOTA_EXCEEDED":
        raise RetriableApiError(f"fcm: HTTP {status} {code}", status=status, code=code, retry_after=retry_after)
    if status >= 500 or code in RETRIABLE_CODES:
        raise server_error("fcm", status, code, retry_after)
    raise FatalApiError(f"fcm: HTTP {status} {code or 'request rejected'}", status=status, code=code)

