"""The web endpoint (tasks/campaign/web.py) on real waitress in a thread of the test, on 127.0.0.1."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from tasks.campaign import web


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
