"""SQL files and identifier rendering: identifiers are validated, values always go as bind parameters.

Statements live in `tasks/warehouse/sql/*.sql` (operations) and `config/sql/*.sql` (table
bodies). Identifiers are substituted with `string.Template` (`${name}`) after validation;
values use the connector's `%(name)s` bind parameters, so a literal `%` in a table's SQL
must be written `%%`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from string import Template

from tasks.errors import ConfigError

SQL_DIR = Path(__file__).resolve().parent / "sql"

# Unquoted Snowflake identifiers: letters, digits, underscore, dollar; case-insensitive.
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")


def ident(name: str, where: str = "") -> str:
    """`name` if it is a plain unquoted identifier, else ConfigError (no injection through config); `where`
    names the setting it came from, for the message."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ConfigError(f"{where + ': ' if where else ''}invalid SQL identifier {name!r}: use letters, digits, "
                          "_ and $, not starting with a digit")
    return name


def qualified(name: str, parts: int = 2, where: str = "") -> str:
    """A validated `schema.table` (or `db.schema.table` with parts=3) name; `where` as for ident."""
    pieces = name.split(".") if isinstance(name, str) else []
    if len(pieces) != parts:
        raise ConfigError(f"{where + ': ' if where else ''}expected a {parts}-part name like schema.table, "
                          f"got {name!r}")
    return ".".join(ident(p, where) for p in pieces)


def string_literal(value: str) -> str:
    """`value` as a single-quoted Snowflake string literal (backslash and quote escaped), for the few
    places a statement cannot take a bind parameter (PUT's local file URL)."""
    if "\x00" in value or "\n" in value or "\r" in value:
        raise ConfigError(f"{value!r} cannot be quoted as one SQL string literal")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ident_list(names: Sequence[str]) -> str:
    """A comma-separated list of validated identifiers."""
    if not names:
        raise ConfigError("an identifier list may not be empty")
    return ", ".join(ident(n) for n in names)


@cache
def _load(path: Path) -> Template:
    return Template(path.read_text(encoding="utf-8"))


def render_file(path: Path, **identifiers: str) -> str:
    """The SQL of `path` with `${name}` placeholders replaced by already-validated identifiers."""
    try:
        return _load(path).substitute(identifiers).strip().rstrip(";")
    except KeyError as exc:
        raise ConfigError(f"{path.name}: no value for placeholder {exc}") from exc


def render(name: str, **identifiers: str) -> str:
    """The SQL of the packaged statement `name` (a file in tasks/warehouse/sql/)."""
    return render_file(SQL_DIR / f"{name}.sql", **identifiers)
