"""The shared status rules: (status, provider code) -> the error the sender acts on, in rule order."""

from __future__ import annotations

import pytest

from tasks.channels.status import ProviderCodes, classify
from tasks.errors import AuthApiError, FatalApiError, RetriableApiError

CODES = ProviderCodes(
    permanent={"DEAD": "the address is gone"},
    auth=frozenset({"BAD_KEY"}),
    rate_limit=frozenset({"SLOW_DOWN"}),
    retriable=frozenset({"TRY_AGAIN"}),
    auth_meaning="key rejected",
)


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_accepted_whatever_the_code(status):
    assert classify("p", status, code="DEAD", codes=CODES) is None


@pytest.mark.parametrize(
    ("status", "code", "error", "maybe_delivered"),
    [
        (429, None, RetriableApiError, False),
        (429, "DEAD", RetriableApiError, False),  # 429 comes first: never processed
        (400, "SLOW_DOWN", RetriableApiError, False),
        (403, "DEAD", FatalApiError, None),  # a known permanent code is this message's fault, not the key's
        (401, None, AuthApiError, None),
        (403, None, AuthApiError, None),
        (400, "BAD_KEY", AuthApiError, None),
        (500, None, RetriableApiError, False),
        (503, "TRY_AGAIN", RetriableApiError, False),
        (502, None, RetriableApiError, True),  # a gateway may have forwarded it
        (504, None, RetriableApiError, True),
        (400, "TRY_AGAIN", RetriableApiError, False),
        (400, None, FatalApiError, None),
        (404, "UNKNOWN_CODE", FatalApiError, None),
        (410, None, FatalApiError, None),
        (302, None, FatalApiError, None),
    ],
)
def test_rules_in_order(status, code, error, maybe_delivered):
    with pytest.raises(error) as info:
        classify("acme", status, code=code, codes=CODES, retry_after=3.0)
    exc = info.value
    assert type(exc) is error and exc.status == status and exc.code == code
    assert str(exc).startswith(f"acme: HTTP {status}" + (f" {code}" if code else ""))
    if maybe_delivered is not None:
        assert exc.maybe_delivered is maybe_delivered and exc.retry_after == 3.0


def test_messages_say_what_the_code_means():
    with pytest.raises(FatalApiError, match=r"^acme: HTTP 404 DEAD: the address is gone$"):
        classify("acme", 404, code="DEAD", codes=CODES)
    with pytest.raises(AuthApiError, match=r"^acme: HTTP 401: key rejected$"):
        classify("acme", 401, codes=CODES)
    with pytest.raises(AuthApiError, match=r"^acme: HTTP 403: credentials rejected$"):
        classify("acme", 403)
    with pytest.raises(FatalApiError, match=r"^acme: HTTP 400: request rejected \(fields to\)$"):
        classify("acme", 400, detail="fields to")
    with pytest.raises(RetriableApiError, match=r"^acme: HTTP 503 TRY_AGAIN$"):
        classify("acme", 503, code="TRY_AGAIN", codes=CODES)
