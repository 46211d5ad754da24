"""Push sends with a service account (GOOGLE_APPLICATION_CREDENTIALS): real Luigi tasks, a real token
endpoint and FCM on loopback (tests/fakes/providers.py) that accept only tokens issued and still valid.
"""

from __future__ import annotations

import collections
import json
import logging

import pytest

from tasks.campaign import wiring
from tasks.channels.ledger import SendKey, SendLedger, ledger_path
from tasks.errors import AuthApiError, ConfigError
from tests.fakes.providers import FakeProvider
from tests.tasks.campaign_helpers import DAY, TASKS, build, setup_campaign


@pytest.fixture
def service_account_env(monkeypatch):
    """Only a service account: no static token, and the project from the key file."""
    for name in ("FCM_ACCESS_TOKEN", "FCM_PROJECT_ID", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def point_at(luigi_cfg, fake: FakeProvider, **settings: object) -> None:
    base = {"provider": "fcm", "base_url": fake.base_url, "retry_delay": 0.2, "timeout": 2, "progress_interval": 0.2}
    for key, value in {**base, **settings}.items():
        luigi_cfg.set("push_campaign", key, value)


def ledger_states(var_path) -> collections.Counter:
    with SendLedger(ledger_path(var_path, "push")) as ledger:
        return collections.Counter(r["state"] for r in ledger.rows(SendKey("demo", DAY.isoformat(), "push")))


def test_a_send_outlasting_its_tokens_refreshes_them_and_leaks_none(luigi_cfg, tmp_path, var_path,
                                                                     service_account_env, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    # tokens live 4 s and are replaced 1.5 s before they expire; 50 pushes at 8/s (burst 2) take at
    # least 6 s whatever the machine's speed, so the send crosses at least two refreshes
    with FakeProvider(token_lifetime=4, validate=False) as fake:
        key_file = fake.write_service_account(tmp_path / "service-account.json")
        service_account_env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
        rows = setup_campaign(luigi_cfg, tmp_path, 50)
        point_at(luigi_cfg, fake, rate=8, burst=2, concurrency=4, token_refresh_margin=1.5)
        assert build(TASKS["push"](date=DAY))

        delivered = collections.Counter(m["customer_id"] for m in fake.accepted())
        assert set(delivered) == {r["customer_id"] for r in rows} and max(delivered.values()) == 1
        assert ledger_states(var_path) == {"sent": 50}
        assert fake.counters["token_requests"] >= 3, "the send outlasted a token, so it was refreshed"
        assert fake.counters["token_errors"] == 0 and fake.counters["auth_errors"] == 0
        assert fake.counters["fcm_requests"] == 50

    logged = caplog.text
    assert "service-account access token refreshed" in logged, "the log capture saw the send"
    assert fake.secrets_seen and not [s for s in fake.secrets_seen if s in logged], "a token or assertion was logged"
    private_key = json.loads(key_file.read_text())["private_key"]
    assert not [line for line in private_key.splitlines()[1:-1] if line in logged]


def test_a_token_revoked_mid_send_is_refreshed_once_and_the_send_goes_on(luigi_cfg, tmp_path, var_path,
                                                                        service_account_env) -> None:
    with FakeProvider(validate=False) as fake:
        key_file = fake.write_service_account(tmp_path / "sa.json")
        service_account_env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
        rows = setup_campaign(luigi_cfg, tmp_path, 20)
        point_at(luigi_cfg, fake, rate=50, burst=5, concurrency=2)
        fake.revoke_at = {6}
        assert build(TASKS["push"](date=DAY))

        delivered = collections.Counter(m["customer_id"] for m in fake.accepted())
        assert set(delivered) == {r["customer_id"] for r in rows} and max(delivered.values()) == 1
        assert ledger_states(var_path) == {"sent": 20}
        assert fake.counters["revocations"] == 1 and fake.counters["token_requests"] == 2
        # the request that met the revocation, and one then in flight with the same token, were sent again
        assert 1 <= fake.counters["auth_errors"] <= 2
        assert fake.counters["fcm_requests"] == 20 + fake.counters["auth_errors"]


def test_a_service_account_fcm_keeps_refusing_stops_the_send_and_fails_nobody(luigi_cfg, tmp_path, var_path,
                                                                              service_account_env) -> None:
    with FakeProvider(validate=False) as fake:
        key_file = fake.write_service_account(tmp_path / "sa.json")
        service_account_env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
        setup_campaign(luigi_cfg, tmp_path, 5)
        point_at(luigi_cfg, fake, rate=50, burst=5, concurrency=1)
        fake.revoke_at = set(range(1, 100))
        with pytest.raises(AuthApiError) as raised:
            TASKS["push"](date=DAY).run()
        assert str(raised.value) == "fcm: HTTP 401 UNAUTHENTICATED: credentials rejected"
        assert fake.counters["fcm_requests"] == 2 and fake.counters["token_requests"] == 2
        assert ledger_states(var_path) == {"pending": 5}


def test_a_missing_or_unusable_key_file_stops_the_send_naming_the_variable(luigi_cfg, tmp_path,
                                                                            service_account_env) -> None:
    setup_campaign(luigi_cfg, tmp_path, 3)
    luigi_cfg.set("push_campaign", "provider", "fcm")
    with pytest.raises(ConfigError, match="FCM_ACCESS_TOKEN or GOOGLE_APPLICATION_CREDENTIALS is not set"):
        TASKS["push"](date=DAY).run()

    key_file = tmp_path / "sa.json"
    key_file.write_text('{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nc2VjcmV0\\n'
                        '-----END PRIVATE KEY-----\\n", "client_email": "a@b.c", "token_uri": "http://127.0.0.1:9/"}')
    service_account_env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    with pytest.raises(ConfigError) as raised:
        wiring.run_channel_send("push", DAY, "demo", "all", tmp_path / "none.parquet")
    assert "GOOGLE_APPLICATION_CREDENTIALS: the service-account file's private_key is not a PEM private key" \
        in str(raised.value)
    assert "c2VjcmV0" not in str(raised.value) and str(key_file) not in str(raised.value)
