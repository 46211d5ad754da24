"""The warehouse's one error translator: connector errors -> typed WarehouseErrors, and telling a table
this role cannot see from a missing one (Snowflake answers 2003 for both).

The errors are the connector's own classes, filled the way Snowflake fills them (errno,
SQLSTATE, message, query id); Snowflake's answers come through the recording connection.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from snowflake.connector.errors import DatabaseError, InterfaceError, ProgrammingError

from tasks.errors import ConnectionLostError, NotAuthorizedError, ObjectMissingError, WarehouseError
from tasks.warehouse.client import WarehouseClient
from tasks.warehouse.dialect import SnowflakeDialect
from tasks.warehouse.errors import translate
from tasks.warehouse.target import MarkerTableTarget
from tests.fakes.recording import RecordingConnection, recorded


def snowflake_error(cls, errno: int, sqlstate: str | None, msg: str):
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
def test_translate_types_the_error_by_what_the_caller_should_do(cls, errno, sqlstate, msg, expected) -> None:
    error = snowflake_error(cls, errno, sqlstate, msg)
    result = translate(error, sql_name="marker_lookup", query_id="cursor-qid")
    assert type(result) is expected
    assert result.query_id == "01b2-query"  # Snowflake's own id wins over the cursor's
    assert result.sql_name == "marker_lookup"
    assert str(error.errno) in str(result) and "[marker_lookup]" in str(result)


def test_not_authorized_names_the_privilege_the_statement_needs() -> None:
    error = translate(
        snowflake_error(ProgrammingError, 3003, "42501", "Insufficient privileges to operate on table 'MAU_SUMMARY'"),
        sql_name="publish_clone",
    )
    assert isinstance(error, NotAuthorizedError)
    assert "needs CREATE TABLE on the schema and OWNERSHIP of the published table" in str(error)
    builds = translate(snowflake_error(ProgrammingError, 3001, "42501", "Insufficient privileges"),
                       sql_name="builds_open")
    assert "needs SELECT, INSERT and UPDATE on the builds table" in str(builds)


HIDDEN = "Object 'ANALYTICS.TABLE_UPDATES' does not exist or not authorized."
LOOKUP = "SELECT build_id FROM analytics.table_updates WHERE update_id = 'publish:analytics.t:2026-06-30'"
CREATE = ("CREATE TABLE IF NOT EXISTS analytics.table_updates ( update_id VARCHAR NOT NULL, target_table VARCHAR NOT "
          "NULL, build_id VARCHAR, inserted TIMESTAMP_NTZ DEFAULT CURRENT_TIMESTAMP() )")


def marker_lookup(tmp_path: Path, answers: list) -> tuple[str | None, list[str]]:
    record = tmp_path / "statements.sql"
    client = WarehouseClient(RecordingConnection(None, record, answers), SnowflakeDialect())
    try:
        return MarkerTableTarget("publish:analytics.t:2026-06-30", "analytics.t").build_id(client), recorded(record)
    finally:
        client.close()


def test_a_marker_table_this_role_cannot_see_is_not_authorized_never_not_done(tmp_path: Path) -> None:
    """Snowflake says 2003 for both; CREATE TABLE IF NOT EXISTS tells them apart ("already exists")."""
    hidden = snowflake_error(ProgrammingError, 2003, "42S02", HIDDEN)
    answers = [("^SELECT build_id", hidden), ("^SELECT build_id", hidden),
               ("^CREATE TABLE", [("TABLE_UPDATES already exists, statement succeeded.",)]),
               ("CURRENT_ROLE", [("TRANSFORMER",)])]
    with pytest.raises(NotAuthorizedError) as err:
        marker_lookup(tmp_path, answers)
    assert "analytics.table_updates exists but role TRANSFORMER cannot read it" in str(err.value)
    assert "needs SELECT, INSERT and UPDATE on analytics.table_updates and USAGE on schema analytics" in str(err.value)
    assert recorded(tmp_path / "statements.sql") == [
        LOOKUP, "CREATE SCHEMA IF NOT EXISTS analytics", CREATE, LOOKUP, "SELECT CURRENT_ROLE()"]


def test_a_missing_marker_table_is_created_and_reads_as_not_done(tmp_path: Path) -> None:
    missing = snowflake_error(ProgrammingError, 2003, "42S02", HIDDEN)
    answers = [("^SELECT build_id", missing), ("^CREATE TABLE", [("Table TABLE_UPDATES successfully created.",)])]
    build_id, statements = marker_lookup(tmp_path, answers)
    assert build_id is None
    assert statements == [LOOKUP, "CREATE SCHEMA IF NOT EXISTS analytics", CREATE]
