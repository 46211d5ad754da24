"""Recording one-click unsubscribes: what the unsubscribe app of `python -m tasks web` calls on a valid POST.

A valid POST (tasks/channels/unsubscribe.py) suppresses the customer on the message's channel
(kind `customer`, so a new address of the same customer stays suppressed) and, when the day's
customers.parquet still has it, the address itself (kind `address`, so another customer id with
that address is skipped too). Both go into the suppression store every send consults just before
each request, in the state backend ([state]: a file under var/, or the shared database). Sections
read: [paths] (the var dir), [state]; the secret comes
from the environment variable UNSUBSCRIBE_SECRET. The server is tasks/campaign/web.py (waitress).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from tasks.campaign import segments as segments_core
from tasks.channels.ledger import SendKey
from tasks.channels.suppressions import Suppression, SuppressionStore
from tasks.channels.unsubscribe import MIN_SECRET_CHARS, SECRET_ENV
from tasks.errors import ConfigError

logger = logging.getLogger(__name__)


def address_of(var_dir: str | os.PathLike[str], key: SendKey, customer_id: str) -> str | None:
    """The customer's address on the key's channel in that day's customers.parquet, if it is still there."""
    path = Path(var_dir) / "segments" / key.date / segments_core.CUSTOMERS_FILE
    column = segments_core.CHANNEL_COLUMNS.get(key.channel)
    if column is None or not path.is_file():
        return None
    table = pq.read_table(path, columns=[column], filters=pc.field("customer_id") == customer_id)
    values = [v for v in table.column(column).to_pylist() if v]
    return values[0] if values else None


def recorder(store: SuppressionStore, var_dir: str | os.PathLike[str]) -> Callable[[SendKey, str], None]:
    """`record(key, customer_id)` for UnsubscribeApp: suppress the customer (and its address) on the channel."""

    def record(key: SendKey, customer_id: str) -> None:
        reason = f"one-click unsubscribe from campaign {key.campaign!r} of {key.date}"
        entries = [Suppression(key.channel, "customer", customer_id, "unsubscribe", reason)]
        address = address_of(var_dir, key, customer_id)
        if address:
            entries.append(Suppression(key.channel, "address", address, "unsubscribe", reason))
        store.add(entries)

    return record


def secret_from_env(env: Mapping[str, str] | None = None) -> bytes:
    """UNSUBSCRIBE_SECRET (of `env`, default os.environ) as bytes; ConfigError (naming the variable, never a
    value) when unset or short."""
    secret = (os.environ if env is None else env).get(SECRET_ENV, "")
    if len(secret) < MIN_SECRET_CHARS:
        raise ConfigError(f"{SECRET_ENV} is not set or shorter than {MIN_SECRET_CHARS} characters")
    return secret.encode()
