"""FCM access tokens (tasks/channels/oauth.py) against a real OAuth2 token endpoint on loopback.

The fake's /token verifies each service account's signed JWT with the public key; its FCM route
accepts only tokens it issued and has not revoked or seen expire.
"""

from __future__ import annotations

import json
import socket
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tasks.channels.base import Message
from tasks.channels.fcm import FcmClient
from tasks.channels.http import HttpTransport
from tasks.channels.oauth import ServiceAccountToken, StaticToken, load_service_account
from tasks.errors import AuthApiError, ConfigError, RetriableApiError
from tests.fakes.providers import FCM_PROJECT, FakeProvider, service_account_info


def message(i: int) -> Message:
    return Message(f"C{i}", f"tk{i}:" + "x" * 140, f"demo/2026-03-02/push/C{i}", {"title": "Hi", "body": "Hello"})


def fcm_client(fake: FakeProvider, tokens) -> FcmClient:
    return FcmClient(HttpTransport("fcm", fake.base_url, connect_timeout=2, read_timeout=5), FCM_PROJECT, tokens)


def test_threads_share_one_refresh_and_a_401_on_a_replaced_token_does_not_refresh_again(tmp_path) -> None:
    with FakeProvider(validate=False) as fake:
        tokens = ServiceAccountToken.from_file(fake.write_service_account(tmp_path / "sa.json"), timeout=5)
        start = threading.Barrier(8)
        got: list[str] = []

        def first_use() -> None:
            start.wait()
            got.append(tokens.token())

        threads = [threading.Thread(target=first_use) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(got)) == 1 and fake.counters["token_requests"] == 1

        # eight requests rejected with the same token: one refresh, and every thread may try again
        renewed: list[bool] = []

        def after_401() -> None:
            start.wait()
            renewed.append(tokens.renew(got[0]))

        threads = [threading.Thread(target=after_401) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert renewed == [True] * 8 and fake.counters["token_requests"] == 2
        assert tokens.token() != got[0] and tokens.refreshes == 2
        tokens.close()


def test_a_401_renews_the_token_and_resends_once_then_stops_the_send(tmp_path) -> None:
    with FakeProvider(validate=False) as fake:
        client = fcm_client(fake, ServiceAccountToken.from_file(fake.write_service_account(tmp_path / "sa.json")))
        fake.revoke_at = {2}  # the token is revoked server-side as the second request arrives
        ids = [client.send([message(i)]) for i in range(3)]
        assert all(i[0].startswith(f"projects/{FCM_PROJECT}/messages/") for i in ids)
        assert fake.counters["fcm_requests"] == 4 and fake.counters["auth_errors"] == 1
        assert fake.counters["token_requests"] == 2
        assert [m["customer_id"] for m in fake.accepted()] == ["C0", "C1", "C2"]

        fake.revoke_at = set(range(5, 100))  # every token is refused: one renewal, then the usual AuthApiError
        with pytest.raises(AuthApiError, match=r"^fcm: HTTP 401 UNAUTHENTICATED: credentials rejected$"):
            client.send([message(3)])
        assert fake.counters["fcm_requests"] == 6 and fake.counters["token_requests"] == 3
        client.close()


def test_a_static_token_is_never_refreshed(tmp_path) -> None:
    with FakeProvider(validate=False) as fake:
        client = fcm_client(fake, StaticToken("ya29.an-expired-static-token"))
        with pytest.raises(AuthApiError) as info:
            client.send([message(0)])
        assert "ya29" not in str(info.value) and "ya29" not in repr(client.tokens)
        assert fake.counters["fcm_requests"] == 1 and fake.counters["token_requests"] == 0


def test_a_key_the_endpoint_does_not_know_is_refused_without_quoting_it(tmp_path) -> None:
    with FakeProvider(validate=False) as fake:
        fake.write_service_account(tmp_path / "known.json")
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        info = service_account_info(stranger, fake.base_url + "/token", "another-key-id")
        path = tmp_path / "stranger.json"
        path.write_text(json.dumps(info))
        tokens = ServiceAccountToken.from_file(path)
        with pytest.raises(AuthApiError) as raised:
            tokens.token()
        assert str(raised.value) == "fcm: the service account was refused an access token (invalid_grant)"
        assert fake.counters["token_errors"] == 1
        tokens.close()


def test_an_unreachable_token_endpoint_is_retriable_and_nothing_was_sent(tmp_path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: connections are refused
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(service_account_info(key, f"http://127.0.0.1:{port}/token", "k1")))
    tokens = ServiceAccountToken.from_file(path, timeout=2)
    with pytest.raises(RetriableApiError, match=r"^fcm: cannot reach the OAuth2 token endpoint$") as raised:
        tokens.token()
    assert raised.value.maybe_delivered is False
    tokens.close()


@pytest.fixture(scope="module")
def key_info() -> dict[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return service_account_info(key, "http://127.0.0.1:9/token", "k1")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "GOOGLE_APPLICATION_CREDENTIALS does not name a readable file"),
        ("not json {", "GOOGLE_APPLICATION_CREDENTIALS: the file is not JSON"),
        ({"type": "authorized_user"}, "GOOGLE_APPLICATION_CREDENTIALS: the file is not a service-account key"),
        ({"type": "service_account", "token_uri": "x"},
         "GOOGLE_APPLICATION_CREDENTIALS: the service-account file lacks client_email, private_key"),
        ({"private_key": "-----BEGIN PRIVATE KEY-----\nTUlJRXZRSUJBREFOQmdrcWhraUc5dzBC\n-----END PRIVATE KEY-----\n"},
         "GOOGLE_APPLICATION_CREDENTIALS: the service-account file's private_key is not a PEM private key"),
    ],
)
def test_an_unusable_key_file_is_a_config_error_naming_the_variable_only(tmp_path, key_info, content,
                                                                        expected) -> None:
    path = tmp_path / "sa.json"
    if isinstance(content, dict):
        base = {} if "type" in content else dict(key_info)
        content = json.dumps({**base, **content})
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as raised:
        load_service_account(path)
    assert str(raised.value).startswith(expected)
    assert str(tmp_path) not in str(raised.value) and "PRIVATE KEY" not in str(raised.value)


def test_the_variable_holding_the_json_itself_is_not_quoted(key_info) -> None:
    with pytest.raises(ConfigError) as raised:
        load_service_account(json.dumps(key_info))
    assert str(raised.value) == "GOOGLE_APPLICATION_CREDENTIALS does not name a readable file"
