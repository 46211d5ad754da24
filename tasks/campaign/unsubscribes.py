"""Recording one-click unsubscribes, and the server behind `python -m tasks unsubscribe-server`.

A valid POST (tasks/channels/unsubscribe.py) suppresses the customer on the message's channel
(kind `customer`, so a new address of the same customer stays suppressed) and, when the day's
customers.parquet still has it, the address itself (kind `address`, so another customer id with
that address is skipped too). Both go into the suppression store every send consults just before
each request, in the state backend ([state]: a file under var/, or the shared database). Sections
read: [paths] (the var dir), [state]; the secret comes
from the environment variable UNSUBSCRIBE_SECRET.
"""

from __future__ import annotations

import logging
import os
import socketserver
from collections.abc import Callable
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pyarrow.compute as pc
import pyarrow.parquet as pq

from tasks.campaign import compliance
from tasks.campaign import segments as segments_core
from tasks.channels.ledger import SendKey
from tasks.channels.suppressions import Suppression, SuppressionStore
from tasks.channels.unsubscribe import MIN_SECRET_CHARS, SECRET_ENV, UnsubscribeApp
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


def secret_from_env() -> bytes:
    """UNSUBSCRIBE_SECRET as bytes; ConfigError (naming the variable, never a value) when unset or short."""
    secret = os.environ.get(SECRET_ENV, "")
    if len(secret) < MIN_SECRET_CHARS:
        raise ConfigError(f"{SECRET_ENV} is not set or shorter than {MIN_SECRET_CHARS} characters")
    return secret.encode()


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass  # the request line holds the token (a customer id): the app logs what it must


def make_unsubscribe_server(host: str, port: int, store: SuppressionStore, var_dir: str | os.PathLike[str],
                            secret: bytes) -> WSGIServer:
    """The threading WSGI server with the app wired to `store` (port 0: any free port)."""
    app = UnsubscribeApp(secret, recorder(store, var_dir))
    return make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)


def serve(host: str, port: int, var_dir: str | os.PathLike[str]) -> None:
    """Serve until interrupted (put it behind the HTTPS proxy that owns [email_campaign] unsubscribe_url)."""
    secret = secret_from_env()
    with compliance.open_suppressions(var_dir) as store:
        server = make_unsubscribe_server(host, port, store, var_dir, secret)
        logger.info("unsubscribe server on http://%s:%d/<...>/{token}", host, server.server_address[1])
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
