"""The web endpoint on real waitress over loopback HTTP, with the event store in a real SQLite file.

Every refusal (tampered body, wrong key, stale or future timestamp, oversized body, malformed
JSON, missing signature) is answered before anything is stored and is counted on /metrics; a
batch posted twice is stored once; the fake SendGrid and Twilio speak back after a real send and
their events land with the send ids the messages carried; a client that sends half a request is
disconnected after channel_timeout.
"""

from __future__ import annotations

import datetime
import json
import socket
import time
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from tasks.campaign import web, wiring
from tasks.campaign.tasks import LoadSegments
from tasks.channels.suppressions import SuppressionStore, suppressions_path
from tasks.errors import ConfigError
from tasks.state.events import EventStore, events_path
from tests.fakes.providers import TWILIO_TOKEN, FakeProvider, sign_sendgrid, sign_twilio
from tests.state_fixtures import free_port
from tests.tasks.campaign_helpers import DAY, build, setup_campaign
from tests.tasks.web_helpers import serving

SECRET = "unsubscribe-test-secret-0123456789"


@pytest.fixture
def stores(var_path: Path):
    with EventStore(events_path(var_path)) as events, SuppressionStore(suppressions_path(var_path)) as suppressions:
        yield events, suppressions


def make_app(stores, var_path: Path, fake: FakeProvider | None = None, **settings) -> web.WebApp:
    env = {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "UNSUBSCRIBE_SECRET": SECRET, **(fake.webhook_env() if fake else {})}
    return web.build_app(stores[0], stores[1], var_path, web.WebSettings(**settings), env)


def events_body(n: int, prefix: str = "e") -> bytes:
    return json.dumps([{"event": "delivered", "email": f"user{i}@example.com", "timestamp": int(time.time()),
                        "sg_event_id": f"{prefix}{i}", "sg_message_id": f"m{i}", "send_id": f"demo/x/email/C{i}"}
                       for i in range(n)]).encode()


def metric(base: str, name: str, **labels: str) -> float:
    text = requests.get(f"{base}/metrics", timeout=5).text
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}_total{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name}{{{wanted}}} in /metrics")


def refusals():
    """(name, how to damage a correctly signed request, expected status)."""
    other = ec.generate_private_key(ec.SECP256R1())

    def tampered(body, headers):
        return body.replace(b"user0@", b"user9@"), headers

    def wrong_key(body, headers):
        return body, sign_sendgrid(other, body)

    def stale(body, headers):
        return body, sign_sendgrid_with(body, int(time.time()) - 601)

    def future(body, headers):
        return body, sign_sendgrid_with(body, int(time.time()) + 601)

    def malformed(body, headers):
        return b'[{"event": "delivered",', sign_sendgrid_with(b'[{"event": "delivered",', int(time.time()))

    def no_signature(body, headers):
        return body, {k: v for k, v in headers.items() if "Signature" not in k}

    def no_timestamp(body, headers):
        return body, {k: v for k, v in headers.items() if "Timestamp" not in k}

    def oversized(body, headers):
        big = json.dumps([{"event": "delivered", "sg_event_id": "x", "pad": "p" * (2 * 1024 * 1024)}]).encode()
        return big, sign_sendgrid_with(big, int(time.time()))

    return [("tampered", tampered, 403), ("wrong_key", wrong_key, 403), ("stale", stale, 403),
            ("future", future, 403), ("malformed", malformed, 400), ("no_signature", no_signature, 403),
            ("no_timestamp", no_timestamp, 403), ("oversized", oversized, 413)]


_SIGNER: dict[str, FakeProvider] = {}


def sign_sendgrid_with(body: bytes, stamp: int) -> dict[str, str]:
    return sign_sendgrid(_SIGNER["fake"].event_key, body, timestamp=str(stamp))


@pytest.mark.parametrize(("name", "damage", "status"), refusals(), ids=[r[0] for r in refusals()])
def test_a_refused_sendgrid_batch_stores_nothing_and_is_counted(name, damage, status, stores, var_path, caplog):
    with FakeProvider(validate=False) as fake:
        _SIGNER["fake"] = fake
        app = make_app(stores, var_path, fake)
        with serving(app) as base:
            body = events_body(3)
            body, headers = damage(body, sign_sendgrid(fake.event_key, body))
            answer = requests.post(f"{base}/events/sendgrid", data=body, headers=headers, timeout=10)
            assert answer.status_code == status, answer.text
            assert stores[0].last_seq() == 0 and stores[0].events_since() == []
            assert metric(base, "tasks_web_refused", route="events/sendgrid", status=str(status)) == 1
            # the same batch, correctly signed, is then stored: the refusal was about the damage only
            good = events_body(3)
            ok = requests.post(f"{base}/events/sendgrid", data=good, headers=sign_sendgrid(fake.event_key, good),
                               timeout=10)
            assert ok.status_code == 200 and stores[0].last_seq() == 3
    logged = "\n".join(r.getMessage() for r in caplog.records if "refused" in r.getMessage())
    assert "refused events/sendgrid" in logged and "@example.com" not in logged


def test_a_batch_posted_twice_is_stored_once_and_healthz_answers(stores, var_path):
    with FakeProvider(validate=False) as fake, serving(make_app(stores, var_path, fake)) as base:
        assert requests.get(f"{base}/healthz", timeout=5).text == "ok\n"
        body = events_body(1000)
        first = requests.post(f"{base}/events/sendgrid", data=body, headers=sign_sendgrid(fake.event_key, body),
                              timeout=30)
        again = requests.post(f"{base}/events/sendgrid", data=body, headers=sign_sendgrid(fake.event_key, body),
                              timeout=30)
        assert (first.status_code, again.status_code) == (200, 200)
        assert (first.text, again.text) == ("stored 1000 of 1000\n", "stored 0 of 1000\n")
        assert metric(base, "tasks_web_events_stored", provider="sendgrid") == 1000
        assert metric(base, "tasks_web_events_duplicate", provider="sendgrid") == 1000
        assert requests.get(f"{base}/events/sendgrid", timeout=5).status_code == 405
    assert stores[0].last_seq() == 1000
    assert [e.seq for e in stores[0].events_since(998)] == [999, 1000]
    assert len(stores[0].events_of_send("demo/x/email")) == 1000


def test_fake_providers_speak_back_after_a_real_send(luigi_cfg, tmp_path, var_path, stores, monkeypatch):
    rows = setup_campaign(luigi_cfg, tmp_path, 12)
    with FakeProvider() as fake:
        for name, value in {**FakeProvider.env(), **fake.webhook_env()}.items():
            monkeypatch.setenv(name, value)
        port = free_port()
        public_url = f"http://127.0.0.1:{port}"  # what the providers call, and the URL Twilio signs
        app = make_app(stores, var_path, fake, public_url=public_url)
        with serving(app, port) as base:
            luigi_cfg.set("web", "public_url", public_url)
            for channel, provider in (("email", "sendgrid"), ("sms", "twilio")):
                for key, value in {"provider": provider, "base_url": fake.base_url, "rate": 200, "burst": 50}.items():
                    luigi_cfg.set(f"{channel}_campaign", key, value)
                wiring.run_channel_send(channel, DAY, "demo", "all", LoadSegments(date=DAY).customers_path())
            answers = fake.post_sendgrid_events(f"{base}/events/sendgrid", batch_size=5, bounce={rows[0]["email"]},
                                                blocked={rows[1]["email"]}, spam={rows[2]["email"]})
            assert {status for status, _ in answers} == {200}
            callbacks = fake.post_twilio_callbacks({rows[3]["phone"]: ("undelivered", "30007")})
            assert [status for status, _ in callbacks] == [200] * 24
            # a forged callback (signed with another token) is refused
            form = dict(callbacks[0][1], MessageStatus="failed")
            url = fake.accepted()[-1]["status_callback"]
            forged = requests.post(url, data=form, headers={"X-Twilio-Signature": sign_twilio("x", url, form)},
                                   timeout=5)
            assert forged.status_code == 403
    email = stores[0].events_of_send(f"demo/{DAY}/email")
    by_customer = {}
    for e in email:
        by_customer.setdefault(e.customer_id, []).append((e.event, e.bounce_type))
    assert by_customer[rows[0]["customer_id"]] == [("processed", None), ("bounced", "bounce")]
    assert by_customer[rows[1]["customer_id"]] == [("processed", None), ("bounced", "blocked")]
    assert by_customer[rows[2]["customer_id"]] == [("processed", None), ("delivered", None), ("complained", None)]
    assert len(email) == 12 * 2 + 1
    sms = stores[0].events_of_send(f"demo/{DAY}/sms")
    assert len(sms) == 24 and {e.event for e in sms} == {"sent", "delivered", "undelivered"}
    filtered = [e for e in sms if e.event == "undelivered"]
    assert [(e.customer_id, e.error_code, e.address) for e in filtered] == [
        (rows[3]["customer_id"], "30007", rows[3]["phone"])]


def test_a_client_that_stalls_mid_request_is_disconnected_after_channel_timeout(stores, var_path):
    with FakeProvider(validate=False) as fake, serving(make_app(stores, var_path, fake, channel_timeout=1.0)) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
            sock.sendall(b"POST /events/sendgrid HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n[{\"event\"")
            started = time.monotonic()
            assert sock.recv(1024) == b"", "waitress closes the stalled connection without an answer"
            waited = time.monotonic() - started
        assert waited < 14  # closed by the server (channel_timeout 1 s plus its cleanup interval), not our timeout
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200  # the worker threads were never held
    assert stores[0].last_seq() == 0


def test_routes_without_their_secret_answer_404_and_nothing_at_all_refuses_to_start(stores, var_path):
    with pytest.raises(ConfigError, match="nothing to serve"):
        web.build_app(stores[0], stores[1], var_path, web.WebSettings(), {})
    app = web.build_app(stores[0], stores[1], var_path, web.WebSettings(), {"UNSUBSCRIBE_SECRET": SECRET})
    with serving(app) as base:
        assert requests.post(f"{base}/events/sendgrid", data=b"[]", timeout=5).status_code == 404
        assert requests.post(f"{base}/events/twilio", data=b"", timeout=5).status_code == 404
        assert requests.get(f"{base}/u/garbage", timeout=5).status_code == 400  # the unsubscribe app
        assert metric(base, "tasks_web_requests", route="unsubscribe", status="400") == 1


def test_unsubscribe_server_is_the_same_command_as_web():
    from tasks.__main__ import build_parser

    web_args = build_parser().parse_args(["web", "--port", "9000"])
    alias = build_parser().parse_args(["unsubscribe-server", "--host", "0.0.0.0"])
    assert web_args.func is alias.func
    assert (web_args.port, web_args.host, alias.port, alias.host) == (9000, None, None, "0.0.0.0")


def test_the_demo_outbox_writes_provider_events_that_ingest_once(luigi_cfg, tmp_path, var_path, capsys):
    from tasks.__main__ import main

    rows = setup_campaign(luigi_cfg, tmp_path, 6)
    rows[0]["email"] = "bounce.someone@example.com"  # the demo's mark for a dead mailbox
    rows[1]["phone"] = "+12125550199"  # a fictional 555-01xx number ending in 99: unknown handset
    with open(tmp_path / "customers.csv", "w", encoding="utf-8") as fh:
        fh.write(",".join(rows[0]) + "\n" + "".join(",".join(r.values()) + "\n" for r in rows))
    luigi_cfg.set("segments", "input_path", tmp_path / "customers.csv")
    day = datetime.date(2026, 3, 3)
    assert build(LoadSegments(date=day))
    for channel in ("email", "sms", "push"):
        luigi_cfg.set(f"{channel}_campaign", "provider", "outbox")
        wiring.run_channel_send(channel, day, "demo", "all", LoadSegments(date=day).customers_path())
    assert main(["events", "ingest-outbox"]) == 0
    assert "24 new event(s) stored of 24" in capsys.readouterr().out  # 6 e-mails and 6 SMS, two events each
    assert main(["events", "ingest-outbox"]) == 0
    assert "0 new event(s) stored of 24" in capsys.readouterr().out
    with EventStore(events_path(var_path)) as store:
        email = store.events_of_send(f"demo/{day}/email")
        sms = store.events_of_send(f"demo/{day}/sms")
    assert {e.provider for e in email + sms} == {"outbox"}
    bounced = [(e.customer_id, e.bounce_type, e.bounce_classification) for e in email if e.event == "bounced"]
    assert bounced == [(rows[0]["customer_id"], "bounce", "Invalid Address")]
    assert sum(e.event == "delivered" for e in email) == 5
    failed = [(e.customer_id, e.event, e.error_code) for e in sms if e.event not in ("sent", "delivered")]
    assert failed == [(rows[1]["customer_id"], "undelivered", "30005")]
    assert sum(e.event == "delivered" for e in sms) == 5
