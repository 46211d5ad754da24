"""The web endpoint (tasks/campaign/web.py) on real waitress, on 127.0.0.1: in a thread of the test, or as a
real `python -m tasks web` subprocess."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from tasks.campaign import web
from tests.conftest import REPO


@contextlib.contextmanager
def serving(app: web.WebApp, port: int = 0) -> Iterator[str]:
    """Serve `app` on loopback (`port`, default any free one) with the real waitress server; yields its base URL."""
    server = web.create_server(app, app.web, "127.0.0.1", port)
    thread = threading.Thread(target=server.run, name="tasks-web-test", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        # the I/O loop ends once the clients' kept-alive connections close; it is a daemon thread: not waited for


def start_web(env: dict[str, str], log: Path, port: int, timeout: float = 60.0) -> subprocess.Popen:
    """A real `python -m tasks web --port PORT` subprocess (output in `log`), once /healthz answers 200."""
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tasks", "web", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"python -m tasks web did not start: {log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
