"""HTTP plumbing shared by the provider clients (and Slack): pooled sessions, timeouts, transport
errors, Retry-After parsing, and the request loop every HTTP provider runs.

The one place that turns a failed HTTP exchange (no usable response) into a typed error:

- connect timeout, connection refused, DNS failure: the request never left, so
  `RetriableApiError(maybe_delivered=False)`: always safe to retry;
- read timeout, connection dropped after the body was written, a broken response: the
  provider may have accepted the message, so `RetriableApiError(maybe_delivered=True)`; the
  sender records `unknown` instead of risking a second delivery.

Responses are classified by status.py's shared rules on top of each provider's own codes.
Error messages name the provider and the kind of failure, never the URL (Twilio's holds the
account SID, Slack's is the webhook secret), headers or body. Reads no luigi.cfg section: the
caller passes base_url and timeouts.
"""

from __future__ import annotations

import email.utils
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Protocol

import requests
import requests.adapters
import urllib3.exceptions

from tasks.channels.base import Message
from tasks.errors import RetriableApiError

_NOT_SENT_CAUSES = (urllib3.exceptions.NewConnectionError, urllib3.exceptions.NameResolutionError)


class HttpTransport:
    """POSTs to one provider's base URL; one `requests.Session` per thread, no automatic retries."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self._headers = dict(headers or {})
        self._auth = auth
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update(self._headers)
            session.auth = self._auth
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def post(self, path: str, *, timeout: float | None = None, **kwargs: Any) -> requests.Response:
        """POST `path` (relative to base_url); transport failures become RetriableApiError.

        `timeout` caps both the connect and the read timeout of this one call (a caller's budget)."""
        connect, read = self.timeout
        limits = self.timeout if timeout is None else (min(connect, timeout), min(read, timeout))
        try:
            return self._session().post(self.base_url + path, timeout=limits, **kwargs)
        except requests.ConnectTimeout:
            raise RetriableApiError(f"{self.provider}: connect timeout") from None
        except requests.ReadTimeout:
            raise RetriableApiError(f"{self.provider}: read timeout", maybe_delivered=True) from None
        except requests.ConnectionError as exc:
            cause = exc.args[0] if exc.args else None
            reason = getattr(cause, "reason", cause)
            if isinstance(reason, _NOT_SENT_CAUSES):
                raise RetriableApiError(f"{self.provider}: cannot connect") from None
            raise RetriableApiError(
                f"{self.provider}: connection lost after sending", maybe_delivered=True
            ) from None
        except requests.RequestException as exc:
            raise RetriableApiError(
                f"{self.provider}: broken response ({type(exc).__name__})", maybe_delivered=True
            ) from None

    def get(self, path: str, params: dict[str, str] | None = None) -> requests.Response:
        """GET `path` (relative to base_url, query included or in `params`); transport failures become
        RetriableApiError. A GET changes nothing at the provider, so a retry is always safe."""
        try:
            return self._session().get(self.base_url + path, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RetriableApiError(f"{self.provider}: GET failed ({type(exc).__name__})") from None

    def close(self) -> None:
        with self._sessions_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def reset_epoch_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds until an epoch-seconds reset time (SendGrid's X-RateLimit-Reset); None when absent/bad."""
    if not value:
        return None
    try:
        reset = float(value.strip())
    except ValueError:
        return None
    return max(0.0, reset - (time.time() if now is None else now))


def json_body(response: requests.Response) -> dict[str, Any]:
    """The response's JSON object, or {} when the body is not a JSON object."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class BearerTokens(Protocol):
    """Where a client gets its OAuth2 bearer token per request (tasks/channels/oauth.py)."""

    def token(self) -> str:
        """The token to send now (refreshed first when it is about to expire)."""

    def renew(self, rejected: str) -> bool:
        """After a 401 for `rejected`: True when another token is now current (worth one more try)."""

    def close(self) -> None:
        """Release connections."""


class HttpProviderClient(ABC):
    """Base of the HTTP provider clients: one POST to `path` per `batch_size` messages.

    A provider adds only its wire format: `request` (the POST's body), `raise_for_status` (its
    codes on the shared status rules of status.py) and where its id of an accepted request is
    (`id_field` of the JSON answer, or its own `message_id`).

    With `tokens`, each request carries `Authorization: Bearer <token>` read at that moment (never
    set once on the session, so a refreshed token is used), and a 401 renews the token and sends the
    request once more: a 401 was not processed, so the retry cannot deliver twice. A second 401 is
    classified as usual (AuthApiError: the send stops)."""

    provider: str
    batch_size: int = 1
    idempotent = False  # none of the HTTP providers has an idempotency key
    id_field = "id"

    def __init__(self, transport: HttpTransport, path: str, tokens: BearerTokens | None = None) -> None:
        self.transport = transport
        self.path = path
        self.tokens = tokens

    def reject_reason(self, message: Message) -> str | None:
        return None

    @abstractmethod
    def request(self, messages: Sequence[Message]) -> dict[str, Any]:
        """The keyword arguments of one POST for `messages` (`json=...` or `data=...`)."""

    @abstractmethod
    def raise_for_status(self, response: requests.Response) -> None:
        """Raise the typed error `response` means; return quietly when it was accepted."""

    def message_id(self, response: requests.Response) -> str | None:
        """The provider's id of an accepted request: its JSON answer's `id_field`."""
        return json_body(response).get(self.id_field)

    def send(self, messages: Sequence[Message]) -> list[str | None]:
        """One POST for up to `batch_size` messages (the sender never passes more)."""
        request = self.request(messages)
        if self.tokens is None:
            response = self.transport.post(self.path, **request)
        else:
            token = self.tokens.token()
            response = self._post_with(token, request)
            if response.status_code == 401 and self.tokens.renew(token):
                response = self._post_with(self.tokens.token(), request)
        self.raise_for_status(response)
        return [self.message_id(response)] * len(messages)

    def _post_with(self, token: str, request: dict[str, Any]) -> requests.Response:
        return self.transport.post(self.path, headers={"Authorization": f"Bearer {token}"}, **request)

    def close(self) -> None:
        self.transport.close()
        if self.tokens is not None:
            self.tokens.close()
