"""The one internet-facing endpoint, `python -m tasks web`: one-click unsubscribe, the providers' delivery
events, health and metrics, on waitress.

Routes:

- `POST /events/sendgrid`: SendGrid's signed Event Webhook (key in SENDGRID_WEBHOOK_PUBLIC_KEY);
- `POST /events/twilio?send_id=...`: Twilio's status callbacks (TWILIO_AUTH_TOKEN, `[web] public_url`);
- `GET /healthz`: 200 `ok` when the event store answers, else 503;
- `GET /metrics`: the endpoint's counters in Prometheus' text format (requests, refusals by route and
  status, events stored, duplicates, events without a send id);
- anything else: the one-click unsubscribe app (tasks/channels/unsubscribe.py, UNSUBSCRIBE_SECRET).

A route whose secret is not in the environment answers 404 (and the start says so); with none at
all the endpoint refuses to start.

The edge verifies before it reads: a missing signature header, or a SendGrid timestamp more than
`[web] max_clock_skew` seconds old or ahead, is refused 403 and a Content-Length over `[web]
max_body_bytes` 413, all before the app reads the body (waitress itself refuses bodies over twice
that before the app runs). Then the bounded body is read and its signature checked (403), then
parsed (400). Nothing is stored on any refusal; 200 only after the whole batch is committed
(tasks/state/events.py); a store that fails answers 503, and the provider retries later. Every
refusal is logged with its reason (never an address from the payload) and counted. A batch with
new events wakes the delivery applier (tasks/campaign/delivery.py, a background thread of `serve`),
which records their outcomes in the ledgers and suppresses what they say to; the 2xx never waits for it.

waitress, not gunicorn: it runs the same on any OS with no fork, its async I/O thread buffers each
request and a worker thread only ever sees a whole one (a slow client never holds a worker), its
thread pool is fixed, and it bounds bodies and idle connections itself; gunicorn's sync workers
need a buffering proxy in front against slow clients and it has no body size limit.

Sections read: [web], [paths], [state] (where the event and suppression stores live), [segments]
default_region (the applier's phone numbers).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl

from prometheus_client import CollectorRegistry, Counter, generate_latest

from tasks import config, state
from tasks.campaign import compliance, unsubscribes
from tasks.channels import events as wire
from tasks.channels import outbox
from tasks.channels.unsubscribe import SECRET_ENV, UnsubscribeApp
from tasks.errors import ConfigError, WebhookRefusedError
from tasks.state.events import DeliveryEvent, EventStore, events_path

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            413: "Payload Too Large", 503: "Service Unavailable"}


@dataclass(frozen=True)
class WebSettings:
    """The [web] section as plain values."""

    host: str = "127.0.0.1"
    port: int = 8090
    public_url: str = ""
    threads: int = 8
    channel_timeout: float = 30.0
    connection_limit: int = 100
    max_body_bytes: int = 2 * 1024 * 1024
    max_clock_skew: float = 600.0


def settings() -> WebSettings:
    return config.settings(WebSettings, config.WebConfig())


class WebMetrics:
    """The endpoint's counters, in a registry of its own (served on /metrics)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("tasks_web_requests", "Requests answered, by route and status",
                                ["route", "status"], registry=self.registry)
        self.refused = Counter("tasks_web_refused", "Requests refused (nothing stored), by route and status",
                               ["route", "status"], registry=self.registry)
        self.stored = Counter("tasks_web_events_stored", "Delivery events newly stored", ["provider"],
                              registry=self.registry)
        self.duplicates = Counter("tasks_web_events_duplicate", "Delivery events received again (already stored)",
                                  ["provider"], registry=self.registry)
        self.unmatched = Counter("tasks_web_events_unmatched", "Delivery events received without a send id",
                                 ["provider"], registry=self.registry)

    def text(self) -> bytes:
        return generate_latest(self.registry)


class WebApp:
    """The WSGI app. `sendgrid_key`, `twilio_token` and `unsubscribe` are None when not configured."""

    def __init__(self, store: EventStore, web: WebSettings, *, sendgrid_key: EllipticCurvePublicKey | None = None,
                 twilio_token: str | None = None, unsubscribe: UnsubscribeApp | None = None,
                 clock: Callable[[], float] = time.time, on_stored: Callable[[], None] | None = None) -> None:
        self.store = store
        self.on_stored = on_stored  # told after a batch with new events is committed (the delivery applier)
        self.web = web
        self.sendgrid_key = sendgrid_key
        self.twilio_token = twilio_token if web.public_url else None
        self.unsubscribe = unsubscribe
        self.clock = clock
        self.metrics = WebMetrics()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if path in ("/healthz", "/metrics"):
            return self._plain_route(path, method, start_response)
        if path in ("/events/sendgrid", "/events/twilio"):
            return self._events_route(path, method, environ, start_response)
        if self.unsubscribe is None:
            return self._answer(start_response, "unsubscribe", 404, b"not found\n")

        def counted(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            self.metrics.requests.labels("unsubscribe", status.split(" ", 1)[0]).inc()
            return start_response(status, headers, *exc_info)

        return self.unsubscribe(environ, counted)

    def _plain_route(self, path: str, method: str, start_response: StartResponse) -> list[bytes]:
        route = path.lstrip("/")
        if method not in ("GET", "HEAD"):
            return self._answer(start_response, route, 405, b"use GET\n", [("Allow", "GET, HEAD")])
        if path == "/metrics":
            return self._answer(start_response, route, 200, self.metrics.text(),
                                content_type="text/plain; version=0.0.4; charset=utf-8")
        try:
            self.store.last_seq()
        except Exception as exc:  # noqa: BLE001 - any failure of the store means "not healthy"; say which
            logger.warning("healthz: the event store fails: %s", type(exc).__name__)
            return self._answer(start_response, route, 503, b"event store unavailable\n")
        return self._answer(start_response, route, 200, b"ok\n")

    def _events_route(self, path: str, method: str, environ: Environ, start_response: StartResponse) -> list[bytes]:
        provider = path.rsplit("/", 1)[1]
        route = f"events/{provider}"
        configured = self.sendgrid_key is not None if provider == "sendgrid" else self.twilio_token is not None
        if not configured:
            return self._answer(start_response, route, 404, b"not configured\n")
        if method != "POST":
            return self._answer(start_response, route, 405, b"use POST\n", [("Allow", "POST")])
        received = self.clock()
        try:
            batch = self._sendgrid(environ, received) if provider == "sendgrid" else self._twilio(environ, received)
        except WebhookRefusedError as refused:
            self.metrics.refused.labels(route, str(refused.status)).inc()
            logger.warning("refused %s from %s: %d %s", route, environ.get("REMOTE_ADDR", "?"), refused.status,
                           refused.reason)
            return self._answer(start_response, route, refused.status, f"{refused.reason}\n".encode())
        return self._store(start_response, route, provider, batch)

    def _store(self, start_response: StartResponse, route: str, provider: str,
               batch: list[DeliveryEvent]) -> list[bytes]:
        try:
            new = self.store.add(batch)
        except Exception as exc:  # noqa: BLE001 - nothing was acknowledged: the provider retries; log what failed
            logger.error("could not store %d %s event(s): %s: %s", len(batch), provider, type(exc).__name__,
                         str(exc).splitlines()[0][:200] if str(exc) else "")
            return self._answer(start_response, route, 503, b"try again later\n", [("Retry-After", "30")])
        self.metrics.stored.labels(provider).inc(new)
        self.metrics.duplicates.labels(provider).inc(len(batch) - new)
        self.metrics.unmatched.labels(provider).inc(sum(1 for e in batch if e.send_id is None))
        if new and self.on_stored is not None:
            self.on_stored()
        return self._answer(start_response, route, 200, f"stored {new} of {len(batch)}\n".encode())

    # -- the two providers ---------------------------------------------------------------------------------------
    def _sendgrid(self, environ: Environ, received: float) -> list[DeliveryEvent]:
        signature = environ.get("HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE")
        timestamp = environ.get("HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP")
        if not signature:
            raise WebhookRefusedError(403, f"missing {wire.SENDGRID_SIGNATURE}")
        wire.check_sendgrid_timestamp(timestamp, received, self.web.max_clock_skew)
        body = self._body(environ)
        if self.sendgrid_key is None:  # never: the route answers 404 without a key (_events_route)
            raise WebhookRefusedError(403, f"{wire.SENDGRID_KEY_ENV} is not set")
        wire.verify_sendgrid(self.sendgrid_key, signature, timestamp or "", body)
        return wire.parse_sendgrid(body, received)

    def _twilio(self, environ: Environ, received: float) -> list[DeliveryEvent]:
        signature = environ.get("HTTP_X_TWILIO_SIGNATURE")
        if not signature:
            raise WebhookRefusedError(403, f"missing {wire.TWILIO_SIGNATURE}")
        body = self._body(environ)
        try:
            params = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
        except (UnicodeDecodeError, ValueError):
            raise WebhookRefusedError(400, "body is not a form") from None
        query = environ.get("QUERY_STRING", "")
        url = self.web.public_url.rstrip("/") + environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
        wire.verify_twilio(self.twilio_token or "", url, params, signature)
        send_id = (parse_qs(query).get("send_id") or [""])[0]
        return [wire.parse_twilio(dict(params), send_id or None, received)]

    def _body(self, environ: Environ) -> bytes:
        """The request body, at most [web] max_body_bytes: 413 from the header alone when it says more."""
        limit = self.web.max_body_bytes
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise WebhookRefusedError(400, "Content-Length is not a number") from None
        if length > limit:
            raise WebhookRefusedError(413, f"body of {length} bytes is over {limit}")
        body = environ["wsgi.input"].read(min(length, limit + 1)) if length else b""
        if len(body) > limit:
            raise WebhookRefusedError(413, f"body is over {limit} bytes")
        return body

    def _answer(self, start_response: StartResponse, route: str, status: int, body: bytes,
                extra: list[tuple[str, str]] | None = None, content_type: str = "text/plain; charset=utf-8",
                ) -> list[bytes]:
        self.metrics.requests.labels(route, str(status)).inc()
        start_response(f"{status} {_REASONS[status]}", [
            ("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store"),
            *(extra or []),
        ])
        return [body]


def open_event_store(var_dir: str | os.PathLike[str]) -> EventStore:
    """The event store of this var dir in the configured state backend ([state])."""
    return EventStore(state.database(events_path(var_dir)))


def outbox_events(path: str | os.PathLike[str], received_at: float) -> list[DeliveryEvent]:
    """The events of one outbox events file, parsed as the provider's own (a line cut by a kill is skipped)."""
    channel = Path(path).parent.name
    lines = []
    for text in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            lines.append(json.loads(text))
        except ValueError:
            continue
    if channel == "email":
        parsed = wire.parse_sendgrid(json.dumps(lines).encode(), received_at)
    else:
        parsed = [wire.parse_twilio({k: str(v) for k, v in line.items() if k != "send_id"}, line.get("send_id"),
                                    received_at) for line in lines]
    return [dataclasses.replace(e, provider="outbox") for e in parsed]


def ingest_outbox(var_dir: str | os.PathLike[str]) -> tuple[int, int]:
    """Store the events the demo outbox wrote (tasks/channels/outbox.py); (new, seen). Idempotent."""
    stored = seen = 0
    with open_event_store(var_dir) as store:
        for path in outbox.events_files(var_dir):
            batch = outbox_events(path, time.time())
            for start in range(0, len(batch), 1000):
                stored += store.add(batch[start:start + 1000])
            seen += len(batch)
    return stored, seen


def build_app(store: EventStore, suppressions: Any, var_dir: str | os.PathLike[str], web: WebSettings,
              env: dict[str, str] | None = None, on_stored: Callable[[], None] | None = None) -> WebApp:
    """The app with the routes whose secrets are in `env` (default os.environ); ConfigError when none is."""
    env = dict(os.environ if env is None else env)
    key = wire.load_sendgrid_key(env[wire.SENDGRID_KEY_ENV]) if env.get(wire.SENDGRID_KEY_ENV) else None
    token = env.get(wire.TWILIO_TOKEN_ENV) or None
    unsubscribe = None
    if env.get(SECRET_ENV):
        secret = unsubscribes.secret_from_env(env)
        unsubscribe = UnsubscribeApp(secret, unsubscribes.recorder(suppressions, var_dir))
    routes = {"/events/sendgrid": key is not None, "/events/twilio": token is not None and bool(web.public_url),
              "one-click unsubscribe": unsubscribe is not None}
    if not any(routes.values()):
        raise ConfigError(f"nothing to serve: set {wire.SENDGRID_KEY_ENV}, {wire.TWILIO_TOKEN_ENV} (with [web] "
                          f"public_url) or {SECRET_ENV}")
    for route, on in routes.items():
        if not on:
            logger.warning("%s is off (404): its secret or [web] public_url is not set", route)
    return WebApp(store, web, sendgrid_key=key, twilio_token=token, unsubscribe=unsubscribe, on_stored=on_stored)


def create_server(app: WebApp, web: WebSettings, host: str, port: int) -> Any:
    """The waitress server (not started): fixed threads, idle connections closed, bodies bounded."""
    import waitress

    return waitress.create_server(
        app, host=host, port=port, threads=web.threads, channel_timeout=web.channel_timeout,
        connection_limit=web.connection_limit, max_request_body_size=2 * web.max_body_bytes,
        # idle connections are checked every cleanup_interval seconds (default 30): often enough for the timeout
        cleanup_interval=max(1, min(30, int(web.channel_timeout / 2))),
        clear_untrusted_proxy_headers=True, ident="tasks-web",
    )


def serve(host: str | None, port: int | None, var_dir: str | os.PathLike[str]) -> None:
    """Serve until interrupted (behind the HTTPS proxy that publishes [web] public_url)."""
    web = settings()
    from tasks.campaign.delivery import BackgroundApplier

    with open_event_store(var_dir) as store, compliance.open_suppressions(var_dir) as suppressions:
        applier = BackgroundApplier(var_dir)
        app = build_app(store, suppressions, var_dir, web, on_stored=applier.kick)
        applier.start().kick()  # what an earlier endpoint stored but did not apply
        server = create_server(app, web, host or web.host, web.port if port is None else port)
        logger.info("web endpoint listening on http://%s:%s (%d threads, channel_timeout %g s)",
                    host or web.host, server.effective_port, web.threads, web.channel_timeout)
        try:
            server.run()
        except KeyboardInterrupt:
            pass
        finally:
            server.close()
            applier.stop()
