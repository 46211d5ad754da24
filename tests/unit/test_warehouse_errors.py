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


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (snowflake_error(ProgrammingError, 2003, "42S02",
                         "SQL compilation error:\nObject 'ANALYTICS.TABLE_UPDATES' does not exist or not authorized."),
         ObjectMissingError),
        (snowflake_error(ProgrammingError, 2043, "02000",
                         "SQL compilation error:\nObject does not exist, or operation cannot be performed."),
         ObjectMissingError),
        (snowflake_error(ProgrammingError, 3001, "42501",
                         "SQL access control error:\nInsufficient privileges to operate on schema 'ANALYTICS'"),
         NotAuthorizedError),
        (snowflake_error(ProgrammingError, 3003, "42501",
                         "SQL access control error:\nInsufficient privileges to operate on table 'MAU_SUMMARY'"),
         NotAuthorizedError),
        (snowflake_error(DatabaseError, 390112, None, "Your session no longer exists. New login required."),
         ConnectionLostError),
        (snowflake_error(InterfaceError, 290500, None, "290500: None: HTTP 500: Internal Server Error"),
         ConnectionLostError),
        (snowflake_error(ProgrammingError, 1003, "42000", "SQL compilation error: syntax error"), WarehouseError),
    ],
)
def test_translate_types_the_error_by_what_the_caller_should_do(error, expected) -> None:  # noqa: ANN001
    result = translate(error, sql_name="marker_lookup", query_id="cursor-qid")
    assert type(result) is expected
    assert result.query_id == "01b2-query"  # Snowflake's own id wins over the cursor's
    assert result.sql_name == "marker_lookup"
    assert str(error.errno) in str(result) and "[marker_lookup]" in str(result)


def test_not_authorized_is_never_read_as_missing() -> None:
    error = translate(snowflake_error(ProgrammingError, 3003, "42501", "Insufficient privileges to operate on table"))
    assert not isinstance(error, ObjectMissingError)
    assert "Insufficient privileges" in str(error)

