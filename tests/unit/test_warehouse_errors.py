"""The warehouse's one error translator: connector errors -> typed WarehouseErrors.

The errors are the connector's own classes, filled the way Snowflake fills them (errno,
SQLSTATE, message, query id).
"""

from __future__ import annotations

import pytest
from snowflake.connector.errors import DatabaseError, InterfaceError, ProgrammingError

from tasks.errors import ConnectionLostError, NotAuthorizedError, ObjectMissingError, WarehouseError
from tasks.warehouse.errors import translate


def snowflake_error(cls, errno: int, sqlstate: str | None, msg: str):  # noqa: ANN001, ANN201
    return cls(msg=msg, errno=errno, sqlstate=sqlstate, sfqid="01b2-query")


# (connector class, errno, SQLSTATE, Snowflake's message) -> the type the caller gets
CASES = [
    (ProgrammingError, 2003, "42S02", "Object 'ANALYTICS.TABLE_UPDATES' does not exist or not authorized.",
     ObjectMissingError),
    (ProgrammingError, 2043, "02000", "Object does not exist, or operation cannot be performed.", ObjectMissingError),
    (ProgrammingError, 3001, "42501", "Insufficient privileges to operate on schema 'ANALYTICS'", NotAuthorizedError),
    (ProgrammingError, 3003, "42501", "Insufficient privileges to operate on table 'MAU_SUMMARY'", NotAuthorizedError),
    (DatabaseError, 390112, None, "Your session no longer exists. New login required.", ConnectionLostError),
    (InterfaceError, 290500, None, "290500: None: HTTP 500: Internal Server Error", ConnectionLostError),
    (ProgrammingError, 1003, "42000", "SQL compilation error: syntax error", WarehouseError),
]


@pytest.mark.parametrize(("cls", "errno", "sqlstate", "msg", "expected"), CASES)
def test_translate_types_the_error_by_what_the_caller_should_do(cls, errno, sqlstate, msg, expected) -> None:  # noqa: ANN001
    error = snowflake_error(cls, errno, sqlstate, msg)
    result = translate(error, sql_name="marker_lookup", query_id="cursor-qid")
    assert type(result) is expected
    assert result.query_id == "01b2-query"  # Snowflake's own id wins over the cursor's
    assert result.sql_name == "marker_lookup"
    assert str(error.errno) in str(result) and "[marker_lookup]" in str(result)


def test_not_authorized_is_never_read_as_missing() -> None:
    error = translate(snowflake_error(ProgrammingError, 3003, "42501", "Insufficient privileges to operate on table"))
    assert not isinstance(error, ObjectMissingError)
    assert "Insufficient privileges" in str(error)

