"""A real HTTP server on 127.0.0.1 playing SendGrid, Twilio and FCM, with faults on demand.

Routes: `POST /v3/mail/send` (SendGrid), `POST /2010-04-01/Accounts/{sid}/Messages.json`
(Twilio), `POST /v1/projects/{project}/messages:send` (FCM), Twilio's Messages list, `GET
/2010-04-01/Accounts/{sid}/Messages.json` (below), and `POST /token`, Google's OAuth2
token endpoint for service accounts (RFC 7523 JWT bearer grant, as google-auth sends it): it
checks `grant_type`, the assertion's RS256 signature against the public half of the key that
`write_service_account(path)` generated, its `kid`, `iss`, `aud`, `scope` and lifetime, and
answers `{"access_token", "expires_in": token_lifetime, "token_type": "Bearer"}` (a refused
assertion: 400 `invalid_grant`, counted in `counters["token_errors"]`). FCM accepts the static
FCM_ACCESS_TOKEN of `env()` or an issued token until it expires or `revoke_tokens()` (or
`revoke_at`, FCM request numbers at which every issued token is revoked first) drops it.

Each provider POST is, in order:
counted and time-stamped; checked for the credentials in `FakeProvider.env()` (401);
validated (SendGrid and Twilio against the official OpenAPI specs in tests/fakes/specs/, from
twilio/sendgrid-oai and twilio/twilio-oai under the MIT licence, which lies beside them;
plus Twilio's documented "From or MessagingServiceSid" and "Body" rules; FCM against its
documented message shape), a violation is a 400 counted in `counters["spec_errors"]`;
throttled by the provider's own token bucket (`rate`, `burst`; 429 in the provider's format,
counted in `counters["throttled"]`); delayed by `latency`; then given the fault planned for
its number, if any; then permanent-failed when its address is in `bad_addresses` (SendGrid
400, Twilio 21211, FCM UNREGISTERED) or opted out when it is in `opted_out` (Twilio 21610, as
after the recipient texted STOP; FCM 404 NOT_FOUND without a detail); else accepted: every
message is appended to the accepted log (JSONL, flushed per line, readable by another process
after a SIGKILL), and `on_accept(messages)` is called (tests use it to act mid-send).

SendGrid extras: per-personalization `headers` are checked beyond the spec's bare `object`:
string values, none of the headers SendGrid forbids overriding, and RFC 8058's pair (a
`List-Unsubscribe-Post: List-Unsubscribe=One-Click` needs a `List-Unsubscribe` holding an
`<https://...>` URI); the accepted log keeps `headers`, `html`, `asm`. A request with
`mail_settings.sandbox_mode.enable` is validated and answered 200, and delivers nothing
(counted in `counters["sandbox"]`), as SendGrid's sandbox does.

Faults (`Faults`): `script` maps a provider's 1-based request number to a kind, `ratio`
draws `kind` for that share of requests (seeded). Kinds: "500", "502", "503" (server
errors, not processed), "429" (a provider rate limit, not processed), "timeout" (the
message IS accepted and logged, then the answer comes after `hang` seconds, past the
client's read timeout), "drop" (accepted and logged, then the connection is closed without
an answer), "hangup" (closed without an answer, NOT processed).

Twilio's Messages list: every accepted Twilio message is a Message resource (`sid`, `to`,
`from`, `body`, `date_created`, `date_sent` as RFC 2822 GMT dates, `direction`
"outbound-api"); `date_sent` stays null while `twilio_queued` is true (a queued message). The
GET is checked for credentials, validated against the spec's ListMessage operation and
throttled by the same bucket as the POSTs; it filters by `To`, `From`, `DateSent` (that GMT
day; the spec's schema says date-time, so `YYYY-MM-DDT00:00:00Z` as Twilio's client sends it), `DateSent<`
(on or before), `DateSent>` (on or after; a message without `date_sent`
never matches a DateSent filter), newest first, paged by `PageSize` (default 50) with
`Page`/`PageToken` in `next_page_uri` as Twilio does. `add_twilio_message()` plants a message
(another day's, another campaign's) without a POST. Counted in `counters["twilio_list_requests"]`.

    with FakeProvider(rate=10, burst=5, latency=0.05) as fake:
        env.update(fake.env()); cfg "base_url" = fake.base_url
        ...
        assert fake.counters["throttled"] == 0
        assert fake.max_requests_in_window(1.0, "twilio") <= 10 + 5
        fake.accepted()   # [{"provider", "to", "send_id", "customer_id", "body", "at"}, ...]

Speaking back (delivery events), as the real providers do after accepting a message:
`post_sendgrid_events(url, bounce=..., blocked=..., spam=...)` posts SendGrid Event Webhook batches
(JSON arrays, `batch_size` events per POST) for every message SendGrid accepted: `processed` then
`delivered`, except a hard `bounce` (type `bounce`, Invalid Address) for the addresses in `bounce`,
a soft one (type `blocked`, Reputation) for those in `blocked`, and a `spamreport` after the
delivery for those in `spam`; every event carries the message's custom_args (send_id,
customer_id) as top-level keys, a unique `sg_event_id`, `sg_message_id` and `timestamp`. Each
POST is signed as SendGrid signs it: ECDSA P-256 over SHA-256 of the timestamp header + raw body,
with a key this fake generates at start (`webhook_env()` gives its public half as
SENDGRID_WEBHOOK_PUBLIC_KEY, base64 DER). `post_twilio_callbacks(status={to: (status, code)})`
posts one form-encoded status callback per accepted SMS to its StatusCallback URL (`sent`, then
`delivered` or the status given, with ErrorCode), signed with X-Twilio-Signature
(HMAC-SHA1 of the URL + sorted parameters, keyed with the auth token). `sign_sendgrid` and
`sign_twilio` sign anything (tests tamper with the result).

As a subprocess (crash tests): `python -m tests.fakes.providers --log PATH [--rate R --burst B
--latency S --fault-ratio F --fault-kind K --seed N --bad-address A ...]` prints one JSON line with `base_url`
and `env` once it listens, and serves until killed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import email.utils
import hashlib
import hmac
import json
import os
import random
import re
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from tests.fakes.timing import max_in_window

SPECS_DIR = Path(__file__).resolve().parent / "specs"
SPEC_FILES = {"sendgrid": "sendgrid_mail_v3.json", "twilio": "twilio_api_v2010.json"}
SPEC_HOSTS = {"sendgrid": "https://api.sendgrid.com", "twilio": "https://api.twilio.com"}

SENDGRID_KEY = "SG.fake-provider-test-key"
TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "fake-provider-auth-token"
TWILIO_FROM = "+15005550006"
FCM_PROJECT = "fake-project"
FCM_TOKEN = "fake-provider-oauth-token"
SERVICE_ACCOUNT = "fcm-sender@fake-project.iam.gserviceaccount.com"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# the audience google-auth puts in a service account's assertion, whatever the file's token_uri
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"

FAULT_KINDS = ("500", "502", "503", "429", "timeout", "drop", "hangup")
_ROUTES = (
    ("sendgrid", re.compile(r"^/v3/mail/send$")),
    ("twilio", re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")),
    ("fcm", re.compile(r"^/v1/projects/(?P<project>[^/]+)/messages:send$")),
    ("oauth", re.compile(r"^/token$")),
)
_specs: dict[str, Any] = {}
_specs_lock = threading.Lock()


def load_spec(provider: str) -> Any:
    """The openapi-core OpenAPI object of a provider's official spec (loaded once per process)."""
    with _specs_lock:
        if provider not in _specs:
            from openapi_core import OpenAPI

            path = SPECS_DIR / SPEC_FILES[provider]
            _specs[provider] = OpenAPI.from_dict(json.loads(path.read_text(encoding="utf-8")))
        return _specs[provider]


@dataclass
class Faults:
    """Which requests fail and how; see the module docstring for the kinds."""

    script: dict[int, str] = field(default_factory=dict)
    ratio: float = 0.0
    kind: str = "503"
    seed: int = 0
    hang: float = 3.0
    providers: tuple[str, ...] = ("sendgrid", "twilio", "fcm")

    def __post_init__(self) -> None:
        bad = [k for k in [*self.script.values(), self.kind] if k not in FAULT_KINDS]
        if bad:
            raise ValueError(f"unknown fault kind(s) {bad}; expected {FAULT_KINDS}")
        self._rng = random.Random(self.seed)

    def pick(self, provider: str, number: int) -> str | None:
        if provider not in self.providers:
            return None
        if number in self.script:
            return self.script[number]
        if self.ratio and self._rng.random() < self.ratio:
            return self.kind
        return None


class _Bucket:
    """The provider's own token bucket (written here, independent of the client's limiter)."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False


class _Reply(Exception):  # noqa: N818 - control flow carrying an answer (2xx too), not an error
    """Control flow inside the handler: answer with this status, body and headers."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        self.status, self.body, self.headers = status, body, headers or {}


class FakeProvider:
    """The fake server; `start()`/`stop()` or use it as a context manager."""

    def __init__(
        self,
        *,
        rate: float | None = None,
        burst: int | None = None,
        latency: float = 0.0,
        faults: Faults | None = None,
        bad_addresses: set[str] | None = None,
        opted_out: set[str] | None = None,
        on_accept: Any = None,
        log_path: str | os.PathLike[str] | None = None,
        validate: bool = True,
        port: int = 0,
        token_lifetime: int = 3600,
        twilio_queued: bool = False,
    ):
        self.rate, self.burst = rate, burst
        self.token_lifetime = token_lifetime  # expires_in of the access tokens /token issues
        self.revoke_at: set[int] = set()  # FCM request numbers that revoke every issued token first
        self._issued: dict[str, float] = {}  # access token -> expires at (time.time())
        self.secrets_seen: list[str] = []  # every issued token and received assertion (tests grep logs for them)
        self._sa_key: rsa.RSAPrivateKey | None = None
        self._sa_key_id = uuid.uuid4().hex
        self.latency = latency
        self.faults = faults or Faults()
        self.bad_addresses = set(bad_addresses or ())
        self.opted_out = set(opted_out or ())
        self.on_accept = on_accept
        self.validate = validate
        # without log_path the accepted log lives in a temporary folder removed by stop()
        self._tmpdir = None if log_path else tempfile.TemporaryDirectory(prefix="fake-provider-")
        self.log_path = Path(log_path) if log_path else Path(self._tmpdir.name) / "accepted.jsonl"
        self.counters: Counter[str] = Counter()
        self.request_times: list[tuple[float, str]] = []  # (time.time() at arrival, provider)
        self.spec_problems: list[str] = []  # the first validation failures, for assertion messages
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self._log = None
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self.twilio_queued = twilio_queued
        self.twilio_messages: list[dict[str, Any]] = []  # Message resources, oldest first
        self.event_key = ec.generate_private_key(ec.SECP256R1())  # signs the Event Webhook's batches

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> FakeProvider:
        if self.validate:
            for provider in SPEC_FILES:
                load_spec(provider)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                fake._handle(self)

            def do_GET(self) -> None:
                fake._handle_list(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fake-provider", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._log is not None:
            with self._lock:
                self._log.close()
                self._log = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @staticmethod
    def env() -> dict[str, str]:
        """The credentials the fake accepts, as the environment variables the clients read."""
        return {
            "SENDGRID_API_KEY": SENDGRID_KEY,
            "TWILIO_ACCOUNT_SID": TWILIO_SID,
            "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "TWILIO_FROM_NUMBER": TWILIO_FROM,
            "FCM_PROJECT_ID": FCM_PROJECT,
            "FCM_ACCESS_TOKEN": FCM_TOKEN,
        }

    def webhook_env(self) -> dict[str, str]:
        """SENDGRID_WEBHOOK_PUBLIC_KEY: the public half of this fake's Event Webhook key, as SendGrid shows it."""
        der = self.event_key.public_key().public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
        return {"SENDGRID_WEBHOOK_PUBLIC_KEY": base64.b64encode(der).decode()}

    # -- speaking back ---------------------------------------------------------------
    def sendgrid_events(self, *, bounce: set[str] = frozenset(), blocked: set[str] = frozenset(),
                        spam: set[str] = frozenset()) -> list[dict[str, Any]]:
        """The events SendGrid would post for every e-mail it accepted so far (see the module docstring)."""
        events = []
        for m in (m for m in self.accepted() if m["provider"] == "sendgrid"):
            message_id = m.get("message_id") or uuid.uuid4().hex[:22]
            base = {"email": m["to"], "timestamp": int(time.time()), "sg_message_id": f"{message_id}.filter0001",
                    "smtp-id": f"<{message_id}@example.com>", "category": [],
                    **{k: m[k] for k in ("send_id", "customer_id") if m.get(k)}}
            outcome: list[dict[str, Any]] = [{"event": "delivered", "response": "250 OK"}]
            if m["to"] in bounce:
                outcome = [{"event": "bounce", "type": "bounce", "bounce_classification": "Invalid Address",
                            "reason": "550 5.1.1 The email account that you tried to reach does not exist",
                            "status": "5.1.1"}]
            elif m["to"] in blocked:
                outcome = [{"event": "bounce", "type": "blocked", "bounce_classification": "Reputation",
                            "reason": "421 4.7.0 Try again later", "status": "4.7.0"}]
            elif m["to"] in spam:
                outcome.append({"event": "spamreport"})
            events.extend({**base, **event, "sg_event_id": base64.urlsafe_b64encode(uuid.uuid4().bytes)
                           .decode().rstrip("=")} for event in [{"event": "processed"}, *outcome])
        return events

    def post_sendgrid_events(self, url: str, events: list[dict[str, Any]] | None = None, *, batch_size: int = 1000,
                             timeout: float = 30.0, **outcomes: set[str]) -> list[tuple[int, list[str]]]:
        """POST `events` (default: `sendgrid_events(**outcomes)`) to `url` in signed batches;
        [(status, the batch's sg_event_ids)] per POST."""
        import requests

        events = self.sendgrid_events(**outcomes) if events is None else events
        answers = []
        for start in range(0, len(events), batch_size):
            batch = events[start:start + batch_size]
            body = json.dumps(batch).encode()
            response = requests.post(url, data=body, headers=sign_sendgrid(self.event_key, body), timeout=timeout)
            answers.append((response.status_code, [e["sg_event_id"] for e in batch]))
        return answers

    def post_twilio_callbacks(self, status: dict[str, tuple[str, str]] | None = None,
                              timeout: float = 30.0) -> list[tuple[int, dict[str, str]]]:
        """Status callbacks for every accepted SMS with a StatusCallback: `sent`, then `delivered` or
        status[to] = (MessageStatus, ErrorCode); [(status code, form)] per POST."""
        import requests

        answers = []
        for m in (m for m in self.accepted() if m["provider"] == "twilio" and m.get("status_callback")):
            final, code = (status or {}).get(m["to"], ("delivered", ""))
            for step, error in (("sent", ""), (final, code)):
                form = {"AccountSid": TWILIO_SID, "ApiVersion": "2010-04-01", "From": m.get("from") or TWILIO_FROM,
                        "MessageSid": m["sid"], "SmsSid": m["sid"], "MessageStatus": step, "SmsStatus": step,
                        "To": m["to"], **({"ErrorCode": error} if error else {})}
                headers = {"X-Twilio-Signature": sign_twilio(TWILIO_TOKEN, m["status_callback"], form)}
                response = requests.post(m["status_callback"], data=form, headers=headers, timeout=timeout)
                answers.append((response.status_code, form))
        return answers

    def write_service_account(self, path: str | os.PathLike[str], project_id: str | None = FCM_PROJECT) -> Path:
        """A service-account key file whose token_uri is this fake's /token (one RSA key per fake)."""
        with self._lock:
            if self._sa_key is None:
                self._sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            key = self._sa_key
        info = service_account_info(key, self.base_url + "/token", self._sa_key_id, project_id)
        path = Path(path)
        path.write_text(json.dumps(info), encoding="utf-8")
        return path

    def revoke_tokens(self) -> None:
        """Revoke every issued access token (FCM answers 401 for them from now on)."""
        with self._lock:
            self._issued.clear()
            self.counters["revocations"] += 1

    # -- what the tests read ---------------------------------------------------------
    def accepted(self) -> list[dict[str, Any]]:
        """Every accepted message so far, from the log file (also works on another process's log)."""
        return read_accepted(self.log_path)

    def max_requests_in_window(self, window: float = 1.0, provider: str | None = None) -> int:
        """The most requests that arrived within any `window` seconds (sliding)."""
        with self._lock:
            times = [t for t, p in self.request_times if provider in (None, p)]
        return max_in_window(times, window)

    def add_twilio_message(self, to: str, body: str, *, from_: str = TWILIO_FROM, created: float | None = None,
                           sent: float | None = None) -> dict[str, Any]:
        """Plant a Message resource (sent at `sent`, default `created`, default now) without a POST."""
        created = time.time() if created is None else created
        return self._twilio_resource(to, from_, None, body, created, created if sent is None else sent)

    def _twilio_resource(self, to: str, from_: str | None, service: str | None, body: str, created: float,
                         sent: float | None) -> dict[str, Any]:
        sid = "SM" + uuid.uuid4().hex
        resource = {
            "account_sid": TWILIO_SID, "api_version": "2010-04-01", "body": body, "direction": "outbound-api",
            "date_created": _rfc2822(created), "date_updated": _rfc2822(sent or created),
            "date_sent": None if sent is None else _rfc2822(sent), "error_code": None, "error_message": None,
            "from": from_, "messaging_service_sid": service, "num_media": "0", "num_segments": "1", "price": None,
            "price_unit": "USD", "sid": sid, "status": "queued" if sent is None else "sent", "to": to,
            "uri": f"/2010-04-01/Accounts/{TWILIO_SID}/Messages/{sid}.json", "_sent": sent,
        }
        with self._lock:
            self.twilio_messages.append(resource)
        return resource

    # -- the server ------------------------------------------------------------------
    def _handle_list(self, request: BaseHTTPRequestHandler) -> None:
        """GET Messages.json (Twilio's list; the only GET route)."""
        parts = urlsplit(request.path)
        match = _ROUTES[1][1].match(parts.path)
        if match is None:
            return self._send(request, _Reply(404, {"error": "no such route"}))
        with self._lock:
            self.counters["twilio_list_requests"] += 1
            self.counters["requests"] += 1
            self.request_times.append((time.time(), "twilio"))
        query = parse_qsl(parts.query, keep_blank_values=True)
        try:
            self._check_auth("twilio", request, match)
            if self.validate:
                problems = _spec_problems("twilio", request, b"", parts.path, "", method="get", query=query)
                if problems:
                    with self._lock:
                        self.counters["spec_errors"] += 1
                        self.spec_problems.append(f"twilio list: {'; '.join(problems)}"[:500])
                    raise _invalid("twilio", problems)
            self._throttle("twilio")
            reply = self._list_page(parts.path, dict(query))
        except _Reply as reply_exc:
            reply = reply_exc
        self._send(request, reply)
        return None

    def _list_page(self, path: str, query: dict[str, str]) -> _Reply:
        def day(value: float) -> str:
            return time.strftime("%Y-%m-%d", time.gmtime(value))

        with self._lock:
            found = list(reversed(self.twilio_messages))  # newest first, as Twilio lists them
        filters = {k: v for k, v in query.items() if k in ("To", "From", "DateSent", "DateSent<", "DateSent>")}
        for name, value in filters.items():
            value = value if name in ("To", "From") else value[:10]  # a GMT day; a date-time counts by its day
            if name in ("To", "From"):
                found = [m for m in found if m[name.lower()] == value]
                continue
            found = [m for m in found if m["_sent"] is not None]
            if name == "DateSent":
                found = [m for m in found if day(m["_sent"]) == value]
            elif name == "DateSent<":
                found = [m for m in found if day(m["_sent"]) <= value]
            else:
                found = [m for m in found if day(m["_sent"]) >= value]
        size = int(query.get("PageSize", 50))
        page = int(query.get("Page", 0))
        offset = int(query.get("PageToken", "PA0")[2:]) if page else 0
        chunk = found[offset:offset + size]
        base = {**filters, "PageSize": str(size)}

        def uri(number: int, token: int | None) -> str:
            extra = {"Page": str(number), **({"PageToken": f"PA{token}"} if token is not None else {})}
            return f"{path}?{urlencode({**base, **extra})}"

        more = offset + size < len(found)
        return _Reply(200, {
            "messages": [{k: v for k, v in m.items() if not k.startswith("_")} for m in chunk],
            "page": page, "page_size": size, "start": offset, "end": offset + len(chunk) - 1,
            "first_page_uri": uri(0, None), "uri": uri(page, offset if page else None),
            "next_page_uri": uri(page + 1, offset + size) if more else None,
            "previous_page_uri": uri(page - 1, max(0, offset - size)) if page else None,
        })

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        path = urlsplit(request.path).path
        provider, match = next(((p, m) for p, rx in _ROUTES if (m := rx.match(path))), (None, None))
        if provider is None:
            return self._send(request, _Reply(404, {"error": "no such route"}))
        if provider == "oauth":
            return self._send(request, self._token_grant(request, raw))
        with self._lock:
            self.counters[f"{provider}_requests"] += 1
            self.counters["requests"] += 1
            number = self.counters[f"{provider}_requests"]
            self.request_times.append((time.time(), provider))
        try:
            self._check_auth(provider, request, match)
            messages = self._parse(provider, request, raw, path)
            self._throttle(provider)
            if self.latency:
                time.sleep(self.latency)
            fault = self.faults.pick(provider, number)
            if fault is not None:
                with self._lock:
                    self.counters[f"fault_{fault}"] += 1
                if self._inject(provider, fault, request, messages):
                    return None
            bad = [m for m in messages if m["to"] in self.bad_addresses]
            if bad:
                with self._lock:
                    self.counters["permanent"] += 1
                raise _permanent(provider)
            if provider != "sendgrid" and any(m["to"] in self.opted_out for m in messages):
                with self._lock:
                    self.counters["opted_out"] += 1
                raise _opted_out(provider)
            if provider == "sendgrid" and json.loads(raw).get("mail_settings", {}).get("sandbox_mode", {}).get(
                    "enable"):
                with self._lock:
                    self.counters["sandbox"] += 1
                raise _Reply(200, None)  # validated, delivered to nobody
            reply = self._accept(provider, messages)
        except _Reply as reply_exc:
            reply = reply_exc
        self._send(request, reply)
        return None

    def _check_auth(self, provider: str, request: BaseHTTPRequestHandler, match: re.Match) -> None:
        auth = request.headers.get("Authorization", "")
        if provider == "sendgrid":
            ok = auth == f"Bearer {SENDGRID_KEY}"
        elif provider == "twilio":
            expected = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
            ok = auth == f"Basic {expected}" and match.group("sid") == TWILIO_SID
        else:
            with self._lock:
                if self.counters["fcm_requests"] in self.revoke_at:
                    self._issued.clear()
                    self.counters["revocations"] += 1
                token = auth.removeprefix("Bearer ")
                issued = auth.startswith("Bearer ") and self._issued.get(token, 0.0) > time.time()
            ok = (auth == f"Bearer {FCM_TOKEN}" or issued) and match.group("project") == FCM_PROJECT
        if not ok:
            with self._lock:
                self.counters["auth_errors"] += 1
            body = {
                "sendgrid": {"errors": [{"field": None, "message": "authorization required"}]},
                "twilio": {"code": 20003, "message": "Authenticate", "more_info": "", "status": 401},
                "fcm": {"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                                  "status": "UNAUTHENTICATED"}},
            }[provider]
            raise _Reply(401, body)

    def _token_grant(self, request: BaseHTTPRequestHandler, raw: bytes) -> _Reply:
        """Google's OAuth2 token endpoint for a service account's signed JWT (RFC 7523)."""
        with self._lock:
            self.counters["token_requests"] += 1
        ctype = (request.headers.get("Content-Type") or "").lower()
        form = dict(parse_qsl(raw.decode("utf-8", "replace"))) if ctype.startswith(
            "application/x-www-form-urlencoded") else {}
        assertion = form.get("assertion", "")
        with self._lock:
            if assertion:
                self.secrets_seen.append(assertion)
            key = self._sa_key
        if form.get("grant_type") != JWT_BEARER:
            problem = ("unsupported_grant_type", "grant_type must be " + JWT_BEARER)
        else:
            problem = _assertion_problem(assertion, key, self._sa_key_id)
        if problem is not None:
            with self._lock:
                self.counters["token_errors"] += 1
            return _Reply(400, {"error": problem[0], "error_description": problem[1]})
        token = "ya29.fake-" + secrets.token_urlsafe(48)
        with self._lock:
            self._issued[token] = time.time() + self.token_lifetime
            self.secrets_seen.append(token)
        return _Reply(200, {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"})

    def _parse(self, provider: str, request: BaseHTTPRequestHandler, raw: bytes, path: str) -> list[dict[str, Any]]:
        """Validate the request; returns the messages it carries ({"to", "send_id", ...})."""
        ctype = (request.headers.get("Content-Type") or "").lower()
        problems: list[str] = []
        if self.validate and provider in SPEC_FILES:
            problems += _spec_problems(provider, request, raw, path, ctype)
        messages: list[dict[str, Any]] = []
        try:
            if provider == "sendgrid":
                body = json.loads(raw)
                for p in body["personalizations"]:
                    problems += _header_problems(p.get("headers"))
                    messages.append({"to": p["to"][0]["email"], "send_id": (p.get("custom_args") or {}).get("send_id"),
                                     "customer_id": (p.get("custom_args") or {}).get("customer_id"),
                                     "subject": p.get("subject"),
                                     "body": (p.get("substitutions") or {}).get("-body-"),
                                     "html": (p.get("substitutions") or {}).get("-html-"),
                                     "headers": p.get("headers"), "asm": body.get("asm"),
                                     "content_types": [c.get("type") for c in body.get("content", [])]})
            elif provider == "twilio":
                form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
                if not (form.get("From") or form.get("MessagingServiceSid")):
                    problems.append("21603: 'From' or 'MessagingServiceSid' is required")
                if not (form.get("Body") or form.get("MediaUrl") or form.get("ContentSid")):
                    problems.append("21602: 'Body' is required")
                if len(form.get("Body", "")) > 1600:
                    problems.append("21617: body exceeds 1600 characters")
                messages.append({"to": form.get("To"), "send_id": None, "customer_id": None, "body": form.get("Body"),
                                 "from": form.get("From"), "messaging_service_sid": form.get("MessagingServiceSid"),
                                 "status_callback": form.get("StatusCallback")})
            else:
                problems += _fcm_problems(ctype, raw)
                if not problems:
                    msg = json.loads(raw)["message"]
                    messages.append({"to": msg["token"], "send_id": msg.get("data", {}).get("send_id"),
                                     "customer_id": msg.get("data", {}).get("customer_id"),
                                     "title": msg["notification"]["title"], "body": msg["notification"]["body"]})
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            problems.append(f"unparseable body: {type(exc).__name__}")
        if problems:
            with self._lock:
                self.counters["spec_errors"] += 1
                if len(self.spec_problems) < 20:
                    self.spec_problems.append(f"{provider}: {'; '.join(problems)}")
            raise _invalid(provider, problems)
        return messages

    def _throttle(self, provider: str) -> None:
        if self.rate is None:
            return
        with self._lock:
            bucket = self._buckets.setdefault(provider, _Bucket(self.rate, self.burst or 1))
        if not bucket.take():
            with self._lock:
                self.counters["throttled"] += 1
            raise _rate_limited(provider)

    def _inject(self, provider: str, fault: str, request: BaseHTTPRequestHandler, messages: list[dict]) -> bool:
        """Apply a fault; True when the connection was handled (no normal answer follows)."""
        if fault in ("500", "502", "503"):
            raise _server_error(provider, int(fault))
        if fault == "429":
            raise _rate_limited(provider)
        if fault == "hangup":
            _hang_up(request)
            return True
        reply = self._accept(provider, messages)  # "timeout" and "drop": the provider has the message
        if fault == "drop":
            _hang_up(request)
            return True
        time.sleep(self.faults.hang)
        with contextlib.suppress(OSError):  # the client gave up long ago
            self._send(request, reply)
        return True

    def _accept(self, provider: str, messages: list[dict[str, Any]]) -> _Reply:
        now = time.time()
        if provider == "twilio":
            m = messages[0]
            resource = self._twilio_resource(m["to"], m.get("from"), m.get("messaging_service_sid"), m["body"], now,
                                             None if self.twilio_queued else now)
            m["sid"] = resource["sid"]
        message_id = uuid.uuid4().hex[:22]  # SendGrid's X-Message-Id: one per request, in each event's sg_message_id
        if provider == "sendgrid":
            for m in messages:
                m["message_id"] = message_id
        with self._lock:
            self.counters["accepted_requests"] += 1
            self.counters["accepted_messages"] += len(messages)
            if self._log is not None:
                for m in messages:
                    self._log.write(json.dumps({"provider": provider, "at": now, **m}) + "\n")
                self._log.flush()
        if self.on_accept is not None:
            self.on_accept(messages)
        if provider == "sendgrid":
            return _Reply(202, None, {"X-Message-Id": message_id})
        if provider == "twilio":
            return _Reply(201, {"sid": messages[0]["sid"], "status": "queued", "to": messages[0]["to"]})
        return _Reply(200, {"name": f"projects/{FCM_PROJECT}/messages/{uuid.uuid4().hex}"})

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, reply: _Reply) -> None:
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        request.send_response(reply.status)
        for name, value in reply.headers.items():
            request.send_header(name, value)
        if payload:
            request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)
        request.wfile.flush()


def sign_sendgrid(key: ec.EllipticCurvePrivateKey, body: bytes, timestamp: str | None = None) -> dict[str, str]:
    """The two headers SendGrid's signed Event Webhook sends with `body`."""
    stamp = str(int(time.time())) if timestamp is None else timestamp
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {"Content-Type": "application/json", "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode()}


def sign_twilio(token: str, url: str, form: dict[str, str]) -> str:
    """X-Twilio-Signature of a POST of `form` to `url`, as Twilio computes it."""
    payload = url + "".join(f"{name}{form[name]}" for name in sorted(form))
    return base64.b64encode(hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def read_accepted(log_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The accepted messages of a fake provider's log (complete lines only)."""
    path = Path(log_path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a kill
    return out


def _rfc2822(epoch: float) -> str:
    """Twilio's date format: `Fri, 24 May 2019 17:44:50 +0000`."""
    return email.utils.format_datetime(datetime.datetime.fromtimestamp(epoch, datetime.UTC))


def _hang_up(request: BaseHTTPRequestHandler) -> None:
    request.close_connection = True
    with contextlib.suppress(OSError):
        request.connection.shutdown(socket.SHUT_RDWR)


def _spec_problems(provider: str, request: BaseHTTPRequestHandler, raw: bytes, path: str, ctype: str,
                   method: str = "post", query: list[tuple[str, str]] | None = None) -> list[str]:
    from openapi_core.datatypes import RequestParameters
    from werkzeug.datastructures import Headers, ImmutableMultiDict

    class _Req:
        host_url = SPEC_HOSTS[provider]

        def __init__(self) -> None:
            self.method = method
            self.path = path
            self.body = raw
            self.content_type = ctype
            self.parameters = RequestParameters(
                query=ImmutableMultiDict(query or []), header=Headers(list(request.headers.items())),
                cookie=ImmutableMultiDict(),
            )

    errors = list(load_spec(provider).iter_request_errors(_Req()))
    return [f"{type(e).__name__}: {e}"[:300] for e in errors]


def service_account_info(key: rsa.RSAPrivateKey, token_uri: str, key_id: str,
                         project_id: str | None = FCM_PROJECT) -> dict[str, str]:
    """The JSON of a service-account key file, as the Google Cloud console downloads it."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    info = {"type": "service_account", "private_key_id": key_id, "private_key": pem,
            "client_email": SERVICE_ACCOUNT, "client_id": "100000000000000000001", "token_uri": token_uri}
    if project_id is not None:
        info["project_id"] = project_id
    return info


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _assertion_problem(assertion: str, key: rsa.RSAPrivateKey | None, key_id: str) -> tuple[str, str] | None:
    """(error, description) when a service account's JWT must be refused, else None."""
    try:
        header_part, claims_part, signature_part = assertion.split(".")
        header = json.loads(_b64url_decode(header_part))
        claims = json.loads(_b64url_decode(claims_part))
        signature = _b64url_decode(signature_part)
    except ValueError:
        return ("invalid_request", "the assertion is not a JWT")
    if key is None or header.get("alg") != "RS256" or header.get("kid") != key_id:
        return ("invalid_grant", "Invalid JWT Signature.")
    try:
        key.public_key().verify(signature, f"{header_part}.{claims_part}".encode(), padding.PKCS1v15(),
                                hashes.SHA256())
    except InvalidSignature:
        return ("invalid_grant", "Invalid JWT Signature.")
    now = time.time()
    if claims.get("iss") != SERVICE_ACCOUNT or claims.get("aud") != GOOGLE_TOKEN_AUDIENCE:
        return ("invalid_grant", "Invalid JWT: iss or aud")
    if FCM_SCOPE not in str(claims.get("scope", "")).split():
        return ("invalid_scope", "the firebase.messaging scope is required")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not (isinstance(iat, int) and isinstance(exp, int) and iat <= now + 60 < exp + 60 and exp - iat <= 3600):
        return ("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
                                 "timeframe.")
    return None


def _fcm_problems(ctype: str, raw: bytes) -> list[str]:
    """FCM v1 has no OpenAPI spec here: check the documented shape of messages:send."""
    if not ctype.startswith("application/json"):
        return [f"content type {ctype!r} is not application/json"]
    try:
        body = json.loads(raw)
    except ValueError:
        return ["body is not JSON"]
    msg = body.get("message") if isinstance(body, dict) else None
    if not isinstance(msg, dict):
        return ["'message' object is required"]
    problems = []
    targets = [k for k in ("token", "topic", "condition") if k in msg]
    if len(targets) != 1:
        problems.append("exactly one of token, topic, condition is required")
    note = msg.get("notification")
    if note is not None and (not isinstance(note, dict) or not all(isinstance(note.get(k), str) for k in note)):
        problems.append("notification fields must be strings")
    data = msg.get("data")
    if data is not None and (not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values())):
        problems.append("data values must be strings")
    unknown = set(msg) - {"name", "data", "notification", "android", "webpush", "apns", "fcm_options",
                          "token", "topic", "condition"}
    if unknown:
        problems.append(f"unknown message fields {sorted(unknown)}")
    return problems


def _invalid(provider: str, problems: list[str]) -> _Reply:
    if provider == "sendgrid":
        return _Reply(400, {"errors": [{"field": "body", "message": p} for p in problems]})
    if provider == "twilio":
        code = int(problems[0][:5]) if problems[0][:5].isdigit() else 21604
        return _Reply(400, {"code": code, "message": "; ".join(problems), "more_info": "", "status": 400})
    return _Reply(400, {"error": {"code": 400, "message": "; ".join(problems), "status": "INVALID_ARGUMENT",
                                  "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                               "errorCode": "INVALID_ARGUMENT"}]}})


def _rate_limited(provider: str) -> _Reply:
    if provider == "sendgrid":
        reset = str(int(time.time()) + 1)
        return _Reply(429, {"errors": [{"field": None, "message": "too many requests"}]},
                      {"X-RateLimit-Reset": reset, "X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0"})
    if provider == "twilio":
        return _Reply(429, {"code": 20429, "message": "Too Many Requests", "more_info": "", "status": 429},
                      {"Retry-After": "1"})
    return _Reply(429, {"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED",
                                  "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                               "errorCode": "QUOTA_EXCEEDED"}]}}, {"Retry-After": "1"})


def _server_error(provider: str, status: int) -> _Reply:
    if provider == "fcm":
        code = "UNAVAILABLE" if status == 503 else "INTERNAL"
        return _Reply(status, {"error": {"code": status, "message": "try again", "status": code,
                                         "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                                      "errorCode": code}]}})
    if provider == "twilio":
        return _Reply(status, {"code": 20500, "message": "Internal Server Error", "more_info": "", "status": status})
    return _Reply(status, {"errors": [{"field": None, "message": "internal error"}]})


# Headers SendGrid does not let a personalization override (its mail-send reference).
_RESERVED_HEADERS = {"x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
                     "content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc"}


def _header_problems(headers: Any) -> list[str]:
    """SendGrid personalization headers: strings, nothing reserved, and RFC 8058's one-click pair."""
    if headers is None:
        return []
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        return ["headers must be an object of strings"]
    problems = [f"header {name} may not be overridden" for name in headers if name.lower() in _RESERVED_HEADERS]
    lowered = {name.lower(): value for name, value in headers.items()}
    post = lowered.get("list-unsubscribe-post")
    if post is not None:
        if post != "List-Unsubscribe=One-Click":
            problems.append("RFC 8058: List-Unsubscribe-Post must be List-Unsubscribe=One-Click")
        if not re.fullmatch(r"<https://[^<>\s]+>(,\s*<[^<>]+>)*", lowered.get("list-unsubscribe", "")):
            problems.append("RFC 8058: List-Unsubscribe-Post needs a List-Unsubscribe with an <https://...> URI")
    return problems


def _opted_out(provider: str) -> _Reply:
    if provider == "twilio":
        return _Reply(400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient",
                            "more_info": "https://www.twilio.com/docs/errors/21610", "status": 400})
    return _Reply(404, {"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}})


def _permanent(provider: str) -> _Reply:
    if provider == "sendgrid":
        error = {"field": "personalizations.0.to", "message": "Does not contain a valid address."}
        return _Reply(400, {"errors": [error]})
    if provider == "twilio":
        return _Reply(400, {"code": 21211, "message": "The 'To' number is not a valid phone number.",
                            "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400})
    return _Reply(404, {"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
                                  "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                               "errorCode": "UNREGISTERED"}]}})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake SendGrid/Twilio/FCM server for tests and benchmarks.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", required=True, help="accepted-messages JSONL file")
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--burst", type=int, default=None)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--fault-ratio", type=float, default=0.0)
    parser.add_argument("--fault-kind", default="503", choices=FAULT_KINDS)
    parser.add_argument("--hang", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-validate", action="store_true")
    parser.add_argument("--bad-address", action="append", default=[], help="answer a permanent error for it")
    parser.add_argument("--twilio-queued", action="store_true", help="accepted SMS stay queued (no date_sent)")
    parser.add_argument("--opted-out", action="append", default=[], help="answer Twilio 21610 / FCM NOT_FOUND for it")
    args = parser.parse_args(argv)
    fake = FakeProvider(
        rate=args.rate, burst=args.burst, latency=args.latency, log_path=args.log, port=args.port,
        faults=Faults(ratio=args.fault_ratio, kind=args.fault_kind, seed=args.seed, hang=args.hang),
        validate=not args.no_validate, bad_addresses=set(args.bad_address), twilio_queued=args.twilio_queued,
        opted_out=set(args.opted_out),
    ).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(json.dumps({"base_url": fake.base_url, "env": fake.env(), "pid": os.getpid()}), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
