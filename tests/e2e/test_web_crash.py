"""SIGKILL of the endpoint while batches arrive: nothing that got a 2xx is lost, nothing is stored twice.

A real `python -m tasks web` subprocess takes signed SendGrid batches from four client threads;
once some batches were acknowledged it is killed with SIGKILL mid-stream. Every sg_event_id of
every acknowledged batch must be in the store afterwards. Then, as SendGrid does, the clients
retry every batch that got no 2xx against a restarted endpoint: in the end every event is stored
exactly once. On the SQLite file under var/ and on the shared Postgres (tests/state_fixtures.py).
"""

from __future__ import annotations

import base64
import json
import signal
import threading
import time
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tasks import state
from tasks.state.events import EventStore, events_path
from tests.fakes.providers import sign_sendgrid
from tests.state_fixtures import free_port
from tests.tasks.web_helpers import start_web

pytestmark = pytest.mark.slow

BATCH = 200
CLIENTS = 4
BATCHES_PER_CLIENT = 40


def batches(client: int) -> list[bytes]:
    now = int(time.time())
    return [json.dumps([{"event": "delivered", "email": f"c{client}b{b}e{i}@example.com", "timestamp": now,
                         "sg_event_id": f"c{client}-b{b}-e{i}", "send_id": f"demo/2026-03-02/email/C{client}{b}{i}"}
                        for i in range(BATCH)]).encode() for b in range(BATCHES_PER_CLIENT)]


def post_all(url: str, key: ec.EllipticCurvePrivateKey, bodies: list[bytes], acked: list[bytes],
             failed: list[bytes]) -> None:
    session = requests.Session()
    for body in bodies:
        try:
            answer = session.post(url, data=body, headers=sign_sendgrid(key, body), timeout=10)
        except requests.RequestException:
            failed.append(body)
            continue
        (acked if answer.status_code == 200 else failed).append(body)


def ids(bodies: list[bytes]) -> list[str]:
    return [e["sg_event_id"] for body in bodies for e in json.loads(body)]


def run_kill_and_resume(var_path: Path, env: dict[str, str], tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    env = {**env, "SENDGRID_WEBHOOK_PUBLIC_KEY": base64.b64encode(der).decode()}
    env.pop("UNSUBSCRIBE_SECRET", None)
    port = free_port()
    url = f"http://127.0.0.1:{port}/events/sendgrid"
    proc = start_web(env, tmp_path / "web.log", port)
    acked: list[list[bytes]] = [[] for _ in range(CLIENTS)]
    failed: list[list[bytes]] = [[] for _ in range(CLIENTS)]
    threads = [threading.Thread(target=post_all, args=(url, key, batches(c), acked[c], failed[c]))
               for c in range(CLIENTS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    while sum(map(len, acked)) < 8:
        assert time.monotonic() < deadline and proc.poll() is None, "the endpoint acknowledged nothing"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for thread in threads:
        thread.join(timeout=120)
    acknowledged = ids([b for part in acked for b in part])
    unacknowledged = [b for part in failed for b in part]
    assert acknowledged and unacknowledged, "the kill landed mid-stream"

    with EventStore(state.database(events_path(var_path))) as store:
        assert store.stored_keys(acknowledged) == set(acknowledged), "an acknowledged event was lost"
        # SendGrid retries what got no 2xx: after a restart every event is stored, each once
        proc = start_web(env, tmp_path / "web.log", port)
        try:
            retried: list[bytes] = []
            post_all(url, key, unacknowledged, retried, [])
            assert len(retried) == len(unacknowledged)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        every = ids([b for c in range(CLIENTS) for b in batches(c)])
        assert store.last_seq() >= len(every)
        stored = store.events_since(0, limit=len(every) + 10)
        assert sorted(e.dedupe_key for e in stored) == sorted(every)  # each exactly once


def test_sigkill_loses_no_acknowledged_event_on_sqlite(var_path, tmp_path, subprocess_env):
    run_kill_and_resume(var_path, subprocess_env, tmp_path)
    assert events_path(var_path).stat().st_mode & 0o077 == 0  # addresses: owner-only


def test_sigkill_loses_no_acknowledged_event_on_postgres(var_path, tmp_path, subprocess_env, postgres_state):
    run_kill_and_resume(var_path, {**subprocess_env, "TASKS_STATE_DSN": postgres_state}, tmp_path)
    assert not events_path(var_path).exists()
