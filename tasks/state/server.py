"""A local Postgres for development and tests: `python -m tasks state start|stop|status`.

Uses the machine's PostgreSQL server binaries (Debian's `postgresql` package: `pg_config
--bindir`, else /usr/lib/postgresql/*/bin). The server listens on no TCP port at all, only on a
Unix socket inside its owner-only data folder, with trust authentication for the `tasks` role:
only its owner (and root) can connect, so other local users cannot read the ledger or the
suppressions through it. A development database, never a production one.

PostgreSQL refuses to run as root. Run as root (containers, CI), the data folder is
`<tmp>/tasks-postgres-<port>`, owned by the `postgres` system user, and the server runs as that
user (var/ is owner-only and the server could not enter it); otherwise it is
`<var_dir>/postgres-<port>`. Reads no luigi.cfg section: the caller passes port and folder.
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from tasks.errors import ConfigError

ROLE = "tasks"
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes on Linux, with its terminating NUL
SERVER_USER = "postgres"


@dataclass(frozen=True)
class LocalServer:
    """One local Postgres: its data folder and port."""

    data_dir: Path
    port: int

    @property
    def dsn(self) -> str:
        """libpq's URI with the socket's folder as its (percent-encoded) host."""
        return f"postgresql://{ROLE}@{quote(str(self.data_dir), safe='')}:{self.port}/postgres"

    def running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").is_file():
            return False
        return _run(self, [str(bindir() / "pg_ctl"), "-D", str(self.data_dir), "status"], check=False) == 0

    def start(self, timeout: float = 60.0) -> str:
        """Create the cluster if needed and start it (nothing to do when it runs); returns the DSN."""
        if self.running():
            return self.dsn
        self._make_folder()
        if not (self.data_dir / "PG_VERSION").is_file():
            _run(self, [str(bindir() / "initdb"), "-D", str(self.data_dir), "-A", "trust", "-U", ROLE,
                        "-E", "UTF8", "--no-instructions"])
        socket = self.data_dir / f".s.PGSQL.{self.port}"
        if len(str(socket).encode()) > SOCKET_PATH_MAX:
            raise ConfigError(f"the local Postgres socket {socket} would be longer than a Unix socket path may be "
                              f"({SOCKET_PATH_MAX} bytes): set TASKS_VAR_DIR to a shorter folder")
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses='' -c fsync=off -c max_connections=200"
        _run(self, [str(bindir() / "pg_ctl"), "-D", str(self.data_dir), "-o", options,
                    "-l", str(self.data_dir / "server.log"), "-w", "-t", str(int(timeout)), "start"])
        return self.dsn

    def stop(self) -> bool:
        """Stop the server (fast shutdown); False when it was not running."""
        if not self.running():
            return False
        _run(self, [str(bindir() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])
        return True

    def remove(self) -> None:
        """Stop the server and delete its data folder (tests)."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _make_folder(self) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            uid = os.stat(self.data_dir).st_uid
            if uid == 0:
                os.chown(self.data_dir, user.pw_uid, user.pw_gid)
            elif uid != user.pw_uid:  # a folder in the shared temporary directory that someone else made first
                raise ConfigError(f"{self.data_dir} exists and is not owned by {SERVER_USER}: remove it, or start "
                                  "the server on another port")
        os.chmod(self.data_dir, 0o700)


def default_server(var_dir: Path, port: int) -> LocalServer:
    """The development server of `python -m tasks state start` for this var/ and port."""
    if os.geteuid() == 0:
        return LocalServer(Path(tempfile.gettempdir()) / f"tasks-postgres-{port}", port)
    return LocalServer(var_dir / f"postgres-{port}", port)


def scratch_server(port: int) -> LocalServer:
    """A server in a fresh temporary folder (tests): remove() it when done."""
    return LocalServer(Path(tempfile.mkdtemp(prefix="tasks-pg-")), port)


def bindir() -> Path:
    """The folder of initdb and pg_ctl; a ConfigError saying how to install them when there is none."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        candidates.append(out)
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if folder and (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    raise ConfigError("no PostgreSQL server binaries (initdb, pg_ctl) on this machine: install Debian's package "
                      "(`apt-get install -y postgresql`), or point TASKS_STATE_DSN at an existing server")


def _run(server: LocalServer, argv: list[str], check: bool = True) -> int:
    if os.geteuid() == 0:  # the server refuses root: run its tools as the postgres system user
        argv = ["su", SERVER_USER, "-s", "/bin/sh", "-c", shlex.join(argv)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd="/")
    if check and done.returncode != 0:
        log = server.data_dir / "server.log"
        tail = log.read_text(errors="replace")[-1500:] if _readable(log) else ""
        raise ConfigError(f"{Path(argv[-1].split()[0] if os.geteuid() == 0 else argv[0]).name} failed "
                          f"(exit {done.returncode}) for {server.data_dir}: {done.stderr.strip()[-800:]}\n{tail}")
    return done.returncode


def _readable(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def wait_ready(dsn: str, timeout: float = 30.0) -> None:
    """Wait until the server at `dsn` accepts a connection."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(dsn, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
