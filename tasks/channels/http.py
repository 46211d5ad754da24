"""HTTP plumbing shared by the provider clients: pooled sessions, timeouts, transport errors.

The one place that turns a failed HTTP exchange (no usable response) into a typed error:

- connect timeout, connection refused, DNS failure: the request never left, so
  `RetriableApiError(maybe_delivered=False)`: always safe to retry;
- read timeout, connection dropped after the body was written, a broken response: the
  provider may have accepted the message, so `RetriableApiError(maybe_delivered=True)`; the
  sender records `unknown` instead of risking a second delivery.

Responses are classified by each provider module (its error map). Error messages name the
provider and the kind of failure, never the URL (Twilio's holds the account SID), headers
or body. Reads no luigi.cfg section: the caller passes base_url and timeouts.
"""

from __future__ import annotations

import email.utils
import threading
import time
from typing import Any

import requests
import requests.adapters
import urllib3.exceptions

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
    ):
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

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        """POST `path` (relative to base_url); transport failures become RetriableApiError."""
        try:
            return self._session().post(self.base_url + path, timeout=self.timeout, **kwargs)
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


def server_error(provider: str, status: int, code: str | None = None, retry_after: float | None = None) -> Exception:
    """The shared rule for 5xx: 502 and 504 come from a gateway that may have forwarded the request
    (maybe delivered); other 5xx are the provider refusing it (its docs say retry)."""
    return RetriableApiError(
        f"{provider}: HTTP {status}" + (f" {code}" if code else ""),
        status=status,
        code=code,
        retry_after=retry_after,
        maybe_delivered=status in (502, 504),
    )


def json_body(response: requests.Response) -> dict[str, Any]:
    """The response's JSON object, or {} when the body is not a JSON object."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
