"""The shared status rules: a provider's answer (HTTP status, its own error code) -> the typed error.

The one place that classifies responses. A provider module extracts its
code and its retry hint from the response and keeps its own code table (`ProviderCodes`);
the rules, in this order, are the same for every provider:

- 2xx: accepted, nothing is raised;
- 429 or a rate-limit code: `RetriableApiError` after `retry_after`; the request was not
  processed (maybe_delivered=False);
- a known permanent code: `FatalApiError` with what the code means (this message or this
  recipient can never succeed, even when the status is 401/403); `OptedOutError` when the code
  says the address may never be messaged again (the sender suppresses it);
- 401/403 or an auth code: `AuthApiError`: our credentials, so the whole send stops;
- 5xx or a retriable code: `RetriableApiError` (`server_error`: 502/504 may have been delivered);
- anything else (other 4xx): `FatalApiError`.

Messages name the provider, the HTTP status, the code and its meaning; never a URL, a header or
a provider's own message text (those quote addresses and account ids). Failures without a
response are typed by the transport (http.py). Reads no luigi.cfg section.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tasks.errors import AuthApiError, FatalApiError, OptedOutError, RetriableApiError


@dataclass(frozen=True)
class ProviderCodes:
    """A provider's own error codes (as text), on top of the HTTP status."""

    # code -> what it means, for the ledger's reason (the provider's own message is never copied)
    permanent: Mapping[str, str] = field(default_factory=dict)
    auth: frozenset[str] = frozenset()
    rate_limit: frozenset[str] = frozenset()
    retriable: frozenset[str] = frozenset()
    # permanent codes that mean "never message this address again" (opted out, dead token): OptedOutError
    opt_out: frozenset[str] = frozenset()
    # what a 401/403 means for this provider (SendGrid: the key may lack a scope)
    auth_meaning: str = "credentials rejected"


NO_CODES = ProviderCodes()


def classify(
    provider: str,
    status: int,
    *,
    code: str | None = None,
    codes: ProviderCodes = NO_CODES,
    retry_after: float | None = None,
    detail: str = "",
) -> None:
    """Raise the typed error that `status` (with the provider's `code`) means; return quietly on 2xx.

    `retry_after` is the provider's own wait hint in seconds; `detail` says what a rejected
    request got wrong, without PII (SendGrid's field names)."""
    if 200 <= status < 300:
        return
    named = f"{provider}: HTTP {status}" + (f" {code}" if code else "")
    if status == 429 or code in codes.rate_limit:
        raise RetriableApiError(f"{named}: rate limited", status=status, code=code, retry_after=retry_after)
    if code is not None and code in codes.permanent:
        error = OptedOutError if code in codes.opt_out else FatalApiError
        raise error(f"{named}: {codes.permanent[code]}", status=status, code=code)
    if status in (401, 403) or code in codes.auth:
        raise AuthApiError(f"{named}: {codes.auth_meaning}", status=status, code=code)
    if status >= 500 or code in codes.retriable:
        raise server_error(provider, status, code, retry_after)
    raise FatalApiError(f"{named}: request rejected" + (f" ({detail})" if detail else ""), status=status, code=code)


def server_error(
    provider: str, status: int, code: str | None = None, retry_after: float | None = None
) -> RetriableApiError:
    """The rule for 5xx: 502 and 504 come from a gateway that may have forwarded the request
    (maybe delivered); other 5xx are the provider refusing it (its docs say retry)."""
    return RetriableApiError(
        f"{provider}: HTTP {status}" + (f" {code}" if code else ""),
        status=status,
        code=code,
        retry_after=retry_after,
        maybe_delivered=status in (502, 504),
    )
