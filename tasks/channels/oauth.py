"""OAuth2 access tokens for FCM HTTP v1: a fixed token, or a service account that keeps its own fresh.

- `StaticToken`: a token minted outside (FCM_ACCESS_TOKEN, e.g. `gcloud auth print-access-token`).
  Google's access tokens live about one hour and this one is never refreshed, so it suits sends
  shorter than that.
- `ServiceAccountToken`: a service-account key file (GOOGLE_APPLICATION_CREDENTIALS) through
  google-auth, scope `firebase.messaging`. The token is minted at first use and minted again
  `refresh_margin` seconds before it expires (at most half its lifetime before), and once more
  when FCM answers 401 for it (revoked server-side): `renew(rejected)`. The sender's threads share
  it; one refresh runs at a time, and a 401 on a token already replaced does not refresh again.

Secrets (the private key, the signed assertion, access tokens) are never logged nor put in an
error message: a problem with the key file names the variable and what is wrong, never the file's
content nor the variable's value (it may hold the JSON itself by mistake); a refused refresh names
the OAuth2 error code only. Reads no luigi.cfg section: tasks/campaign/providers.py passes the file,
the timeout and the margin.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.errors import AuthApiError, ConfigError, RetriableApiError

if TYPE_CHECKING:
    from google.oauth2.service_account import Credentials

logger = logging.getLogger(__name__)

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
CREDENTIALS_ENV = "GOOGLE_APPLICATION_CREDENTIALS"
_REQUIRED_FIELDS = ("client_email", "private_key", "token_uri")
_OAUTH_CODE = re.compile(r"^[a-z_]{1,40}$")


class StaticToken:
    """One access token minted outside; never refreshed (a 401 stops the send)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self) -> str:
        return self._token

    def renew(self, rejected: str) -> bool:
        return False

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"


def load_service_account(path: str | Path, variable: str = CREDENTIALS_ENV) -> Credentials:
    """The google-auth credentials of a service-account key file, scoped for FCM.

    ConfigError naming `variable` when the file cannot be read or is not a service-account key."""
    from google.oauth2 import service_account

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, ValueError):  # ValueError: a NUL in the name (the variable holds something else)
        raise ConfigError(f"{variable} does not name a readable file") from None
    try:
        info = json.loads(text)
    except ValueError:
        raise ConfigError(f"{variable}: the file is not JSON") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ConfigError(f'{variable}: the file is not a service-account key ("type": "service_account")')
    missing = [name for name in _REQUIRED_FIELDS if not isinstance(info.get(name), str) or not info[name]]
    if missing:
        raise ConfigError(f"{variable}: the service-account file lacks {', '.join(missing)}")
    try:
        return service_account.Credentials.from_service_account_info(info, scopes=[FCM_SCOPE])
    except (ValueError, TypeError, IndexError):
        raise ConfigError(f"{variable}: the service-account file's private_key is not a PEM private key") from None


class ServiceAccountToken:
    """Access tokens of one service account, refreshed before expiry and on a 401; thread-safe."""

    def __init__(self, credentials: Credentials, *, refresh_margin: float = 300.0, timeout: float = 30.0) -> None:
        self._credentials = credentials
        self._margin = refresh_margin
        self._timeout = timeout
        self._request: Any = None
        self._lock = threading.Lock()
        # (token, refresh at): replaced as a whole, so a thread reading it without the lock sees one refresh's pair
        self._current: tuple[str, float] | None = None
        self.refreshes = 0

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> ServiceAccountToken:
        return cls(load_service_account(path), **kwargs)

    @property
    def project_id(self) -> str | None:
        """The key file's `project_id` (FCM_PROJECT_ID wins when set)."""
        return self._credentials.project_id

    @property
    def email(self) -> str:
        """The service account's e-mail (its identity, not a secret)."""
        return self._credentials.service_account_email

    def token(self) -> str:
        """A token with more than the margin left (refreshing first when needed)."""
        current = self._current
        if current is None or time.time() >= current[1]:
            with self._lock:
                current = self._current
                if current is None or time.time() >= current[1]:
                    current = self._refresh()
        return current[0]

    def renew(self, rejected: str) -> bool:
        """After FCM answered 401 for `rejected`: refresh unless another thread already replaced it.
        True when a token other than `rejected` is now current (worth one more try)."""
        with self._lock:
            current = self._current
            if current is None or current[0] == rejected:
                current = self._refresh()
            return current[0] != rejected

    def close(self) -> None:
        with self._lock:
            if self._request is not None:
                self._request.session.close()
                self._request = None

    def __repr__(self) -> str:
        return f"ServiceAccountToken({self._credentials.service_account_email!r})"

    def _refresh(self) -> tuple[str, float]:
        """Mint a new token (the caller holds the lock); the typed error of tasks/errors.py when refused."""
        from google.auth import exceptions

        if self._request is None:
            self._request = _timed_request(self._timeout)
        started = time.time()
        try:
            self._credentials.refresh(self._request)
        except exceptions.TransportError:
            raise RetriableApiError("fcm: cannot reach the OAuth2 token endpoint") from None
        except exceptions.RefreshError as exc:
            code = _oauth_error_code(exc)
            named = f" ({code})" if code else ""
            if getattr(exc, "retryable", False):
                raise RetriableApiError(f"fcm: the OAuth2 token endpoint failed{named}", code=code) from None
            raise AuthApiError(f"fcm: the service account was refused an access token{named}", code=code) from None
        except exceptions.GoogleAuthError as exc:
            raise AuthApiError(f"fcm: access token refresh failed ({type(exc).__name__})") from None
        token = self._credentials.token
        if not token:
            raise AuthApiError("fcm: the OAuth2 token endpoint returned no access token")
        expiry = self._credentials.expiry
        if expiry is None:  # no expires_in: keep it until FCM rejects it
            refresh_at = float("inf")
        else:
            expires_at = expiry.replace(tzinfo=datetime.UTC).timestamp()
            refresh_at = expires_at - min(self._margin, max(0.0, expires_at - started) / 2)
        self._current = (token, refresh_at)
        self.refreshes += 1
        logger.info("fcm: service-account access token %s (refresh %d, next in %.0f s)",
                    "minted" if self.refreshes == 1 else "refreshed", self.refreshes, refresh_at - time.time())
        return self._current


def _timed_request(timeout: float) -> Any:
    """google-auth's requests transport with our timeout instead of its 120 s default."""
    from google.auth.transport.requests import Request

    limit = timeout

    class TimedRequest(Request):
        def __call__(self, url: str, method: str = "GET", body: Any = None, headers: Any = None,
                     timeout: float | None = None, **kwargs: Any) -> Any:
            return super().__call__(url, method, body, headers, timeout=timeout or limit, **kwargs)

    return TimedRequest()


def _oauth_error_code(exc: Exception) -> str | None:
    """The OAuth2 `error` code of a refused refresh (invalid_grant, ...): a fixed vocabulary, safe to name."""
    data = exc.args[1] if len(exc.args) > 1 else None
    code = data.get("error") if isinstance(data, dict) else None
    return code if isinstance(code, str) and _OAUTH_CODE.match(code) else None
