"""The embedded warehouse: a fakesnow server (Snowflake's HTTP protocol on 127.0.0.1) over DuckDB files.

Reads [warehouse] (embedded_dir, embedded_port, embedded_start_timeout). The server runs
as its own detached process so that every Luigi worker process and every operator command
reaches the same database through the real Snowflake connector. Its pid and port are kept
in `<dir>/server.json`; a file lock serialises concurrent starts.

fakesnow 0.12.1 ignores its own persistence flags (`fakesnow -s -d DIR` ignores `-d`, and the
FAKESNOW_DB_PATH session parameter works for the first login only, then HTTP 500): we replace its module-level
instance with one bound to our folder before serving, and close DuckDB on shutdown.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.errors import WarehouseError

if TYPE_CHECKING:
    import uvicorn  # imported where the server runs: a client of the embedded warehouse never loads it

log = logging.getLogger(__name__)

STATE_FILE = "server.json"
LOCK_FILE = "server.lock"
LOG_FILE = "server.log"


@dataclass(frozen=True)
class ServerState:
    """Where a running embedded server listens."""

    pid: int
    port: int
    directory: str


def read_state(directory: Path) -> ServerState | None:
    """The recorded server of `directory` if it is alive and accepts connections, else None."""
    try:
        raw = json.loads((directory / STATE_FILE).read_text())
        state = ServerState(pid=int(raw["pid"]), port=int(raw["port"]), directory=str(raw["directory"]))
    except (OSError, ValueError, KeyError):
        return None
    if not _pid_alive(state.pid) or not _port_open(state.port):
        return None
    return state


def ensure_running(directory: Path, port: int = 0, timeout: float = 30.0, reap_after: float = 30.0) -> ServerState:
    """Start the server for `directory` unless one is already running; return where it listens."""
    directory.mkdir(parents=True, exist_ok=True)
    state = read_state(directory)
    if state:
        return state
    with _locked(directory):
        state = read_state(directory)  # another process may have started it while we waited
        if state:
            return state
        return _spawn(directory, port, timeout, reap_after)


def stop(directory: Path, timeout: float = 20.0) -> bool:
    """Stop the server of `directory` (SIGTERM, then SIGKILL); True if one was running."""
    with _locked(directory):
        state = read_state(directory)
        if state is None:
            (directory / STATE_FILE).unlink(missing_ok=True)
            return False
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(state.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(state.pid):
            os.kill(state.pid, signal.SIGKILL)
        (directory / STATE_FILE).unlink(missing_ok=True)
        return True


def _spawn(directory: Path, port: int, timeout: float, reap_after: float) -> ServerState:
    (directory / STATE_FILE).unlink(missing_ok=True)
    cmd = [
        sys.executable, "-m", "tasks.warehouse.embedded", "serve",
        "--dir", str(directory), "--port", str(port), "--reap-after", str(reap_after),
    ]
    with open(directory / LOG_FILE, "ab") as logfile:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # detached: survives the Luigi worker that started it
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(directory)
        if state and state.pid == proc.pid:
            log.info("embedded warehouse started: pid %s, 127.0.0.1:%s, files in %s", state.pid, state.port, directory)
            return state
        if proc.poll() is not None:
            raise WarehouseError(
                f"embedded warehouse exited with code {proc.returncode} at start; see {directory / LOG_FILE}"
            )
        time.sleep(0.05)
    proc.kill()
    raise WarehouseError(f"embedded warehouse did not start within {timeout:.0f}s; see {directory / LOG_FILE}")


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as dead
    with contextlib.suppress(OSError, IndexError), open(f"/proc/{pid}/stat") as fh:
        if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1.0):
        return True
    return False


def serve(directory: Path, port: int, reap_after: float = 30.0) -> None:
    """Run the server in the foreground until SIGTERM/SIGINT (the `serve` entry point).

    A client killed inside a transaction never sends COMMIT or ROLLBACK, and its open DuckDB
    transaction would block every later write to the same tables. The pipeline's own steps are
    single statements, but any client (an operator's BEGIN through `python -m tasks sql`, a
    future step) can die in one. Real Snowflake ends such sessions itself; here a reaper rolls
    back and drops any session that has been idle inside a transaction for `reap_after` seconds.
    """
    import fakesnow.instance
    import fakesnow.server as fs_server
    import uvicorn

    directory.mkdir(parents=True, exist_ok=True)
    fs_server.shared_fs = fakesnow.instance.FakeSnow(db_path=str(directory))
    sock = _listening_socket(port)
    last_seen: dict[str, float] = {}
    app = _session_tracking(fs_server.app, last_seen)
    threading.Thread(target=_reap, args=(fs_server.sessions, last_seen, reap_after), name="reaper",
                     daemon=True).start()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=30))
    threading.Thread(target=_announce, args=(server, directory, sock.getsockname()[1]), name="announce",
                     daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        with contextlib.suppress(Exception):  # closing DuckDB flushes its WAL; nothing else to do on failure
            fs_server.shared_fs.duck_conn.close()
        state_path = directory / STATE_FILE
        with contextlib.suppress(OSError, ValueError):
            if json.loads(state_path.read_text()).get("pid") == os.getpid():
                state_path.unlink()


def _listening_socket(port: int) -> socket.socket:
    """A TCP socket bound to 127.0.0.1:`port` (0: any free port) for uvicorn to listen on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this: without it every response waits ~40 ms for a delayed ACK
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    return sock


# ASGI's shapes (the spec's own names): a connection's scope, the callables that receive and send its events
_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_App = Callable[[_Scope, _Receive, _Send], Awaitable[None]]


def _session_tracking(inner: _App, last_seen: dict[str, float]) -> _App:
    """`inner` (fakesnow's ASGI app), noting in `last_seen` when each session token last sent a request."""

    async def app(scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] == "http":
            for key, value in scope.get("headers", []):
                if key == b"authorization":
                    last_seen[value.decode("latin-1")[17:-1]] = time.monotonic()  # 'Snowflake Token="..."'
        await inner(scope, receive, send)

    return app


def _reap(sessions: dict[str, Any], last_seen: dict[str, float], reap_after: float) -> None:
    """Forever: roll back and drop every session idle inside a transaction for over `reap_after` seconds."""
    import duckdb

    while True:
        time.sleep(min(1.0, reap_after / 2))
        now = time.monotonic()
        for token, conn in list(sessions.items()):
            if now - last_seen.get(token, now) <= reap_after:
                continue
            try:
                # DuckDB raises unless a transaction is open: an idle session outside one is left alone
                conn._duck_conn.rollback()
            except duckdb.Error:  # no transaction to undo (or the connection is gone): nothing to reap
                last_seen[token] = now
                continue
            sessions.pop(token, None)
            last_seen.pop(token, None)
            log.warning("rolled back a session idle in a transaction for %.0fs (its client is gone)", reap_after)


def _announce(server: uvicorn.Server, directory: Path, port: int) -> None:
    """Once `server` listens, write server.json (pid, port, folder) atomically: clients wait for it."""
    while not server.started and not server.should_exit:
        time.sleep(0.02)
    if server.started:
        state = {"pid": os.getpid(), "port": port, "directory": str(directory)}
        tmp = directory / f".{STATE_FILE}.{os.getpid()}"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, directory / STATE_FILE)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tasks.warehouse.embedded")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_p = sub.add_parser("serve", help="run the embedded server in the foreground")
    serve_p.add_argument("--dir", required=True, type=Path)
    serve_p.add_argument("--port", type=int, default=0)
    serve_p.add_argument("--reap-after", type=float, default=30.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(args.dir, args.port, args.reap_after)


if __name__ == "__main__":
    main()
