"""The one place that turns a Snowflake connector error into a typed WarehouseError.

- SQLSTATE 42S02 / errno 2003, 2043: `ObjectMissingError`. Snowflake answers the same
  "does not exist or not authorized" for a missing object and for one the role cannot see;
  where "missing" would read as "not done yet" (marker and build lookups) the client tells
  the two apart itself (`WarehouseClient.lookup_own`).
- SQLSTATE 42501 / errno 3001, 3003 ("Insufficient privileges to operate on ..."):
  `NotAuthorizedError`, never mistaken for "not done yet"; the message names the privilege the
  statement needs (`NEEDS`).
- An expired or vanished session (errno 390103, 390104, 390112, 390114; an HTTP 5xx from
  the embedded server): `ConnectionLostError`, so the client drops its cached connection.
- Anything else: `WarehouseError`.

The message carries the connector's errno, SQLSTATE and text (never credentials), the
statement's name and Snowflake's query id. Reads no luigi.cfg section.
"""

from __future__ import annotations

from typing import Any

from tasks.errors import ConnectionLostError, NotAuthorizedError, ObjectMissingError, WarehouseError

MISSING_ERRNOS = {2003, 2043}
NOT_AUTHORIZED_ERRNOS = {3001, 3003}
SESSION_GONE_ERRNOS = {390103, 390104, 390112, 390114}

# What each packaged statement needs, named in a NotAuthorizedError (Snowflake's own message
# names the object, not the privilege).
NEEDS = {
    "create_schema": "CREATE SCHEMA on the database (or USAGE on an existing schema)",
    "ctas_staging": "CREATE TABLE on the schema and SELECT on the tables the SQL reads",
    "publish_clone": "CREATE TABLE on the schema and OWNERSHIP of the published table (CREATE OR REPLACE)",
    "table_comment": "OWNERSHIP of the table",
    "grant_table": "OWNERSHIP of the table, or MANAGE GRANTS (in a managed-access schema: the schema "
    "owner's role or MANAGE GRANTS)",
    "drop_table": "OWNERSHIP of the table",
    "query_tag": "nothing beyond a session (ALTER SESSION)",
    "marker_create": "CREATE TABLE on the schema",
    "marker_lookup": "SELECT on the marker table",
    "marker_upsert": "INSERT and UPDATE on the marker table",
    "builds_create": "CREATE TABLE on the schema",
    "builds_lookup": "SELECT on the builds table",
    "builds_insert": "INSERT on the builds table",
    "builds_checked": "SELECT, INSERT and UPDATE on the builds table",
    "builds_published": "SELECT, INSERT and UPDATE on the builds table",
    "builds_dropped": "SELECT, INSERT and UPDATE on the builds table",
    "builds_open": "SELECT, INSERT and UPDATE on the builds table",
    "builds_history": "SELECT, INSERT and UPDATE on the builds table",
    "check_freshness": "SELECT on the freshness source table",
    "check_relationship": "SELECT on the related table",
    "put_table_stage": "OWNERSHIP of the table (its table stage)",
    "copy_into_table": "INSERT on the table and read access to its table stage",
}


def describe(exc: Any) -> str:
    """errno, SQLSTATE and message of a connector error (the connector never puts credentials there)."""
    state = f" ({exc.sqlstate})" if getattr(exc, "sqlstate", None) else ""
    return f"{type(exc).__name__} {exc.errno}{state}: {exc.raw_msg or exc.msg}"


def translate(
    exc: Any, *, sql_name: str | None = None, query_id: str | None = None, prefix: str = ""
) -> WarehouseError:
    """The typed WarehouseError for connector error `exc` (raise it `from exc`)."""
    errno = getattr(exc, "errno", None)
    sqlstate = getattr(exc, "sqlstate", None)
    message = prefix + describe(exc)
    query_id = getattr(exc, "sfqid", None) or query_id
    if errno in MISSING_ERRNOS or sqlstate == "42S02":
        cls: type[WarehouseError] = ObjectMissingError
    elif errno in NOT_AUTHORIZED_ERRNOS or sqlstate == "42501":
        cls = NotAuthorizedError
        name = sql_name or ""
        needed = NEEDS.get(name, "")
        if needed:
            message += f"; this statement needs {needed}"
    elif errno in SESSION_GONE_ERRNOS or "HTTP 5" in message:
        cls = ConnectionLostError
    else:
        cls = WarehouseError
    return cls(message, query_id=query_id, sql_name=sql_name)
