"""The delivery events' wire formats: SendGrid's ECDSA signature and timestamp window, Twilio's HMAC, parsing.

The signatures are made by the fake providers' own code (tests/fakes/providers.py), written apart
from tasks/channels/events.py, so each checks the other against the documented algorithm.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tasks.channels import events as wire
from tasks.channels.twilio import DELIVERY_CODES, TwilioClient, status_callback_url
from tasks.errors import ConfigError, WebhookRefusedError
from tests.fakes.providers import sign_sendgrid, sign_twilio

NOW = 1_800_000_000.0


def public_b64(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_sendgrid_signature_verifies_only_the_exact_body_timestamp_and_key(key):
    body = json.dumps([{"event": "delivered", "sg_event_id": "e1", "email": "a@example.com"}]).encode()
    headers = sign_sendgrid(key, body, timestamp=str(int(NOW)))
    signature, stamp = headers[wire.SENDGRID_SIGNATURE], headers[wire.SENDGRID_TIMESTAMP]
    public = wire.load_sendgrid_key(public_b64(key))
    wire.verify_sendgrid(public, signature, stamp, body)  # no exception

    for bad_body, bad_stamp, bad_key in ((body.replace(b"e1", b"e2"), stamp, public),
                                         (body, str(int(NOW) + 1), public),
                                         (body, stamp, wire.load_sendgrid_key(public_b64(
                                             ec.generate_private_key(ec.SECP256R1())))),
                                         (body + b" ", stamp, public)):
        with pytest.raises(WebhookRefusedError) as refused:
            wire.verify_sendgrid(bad_key, signature, bad_stamp, bad_body)
        assert refused.value.status == 403
    with pytest.raises(WebhookRefusedError, match="missing"):
        wire.verify_sendgrid(public, "", stamp, body)
    with pytest.raises(WebhookRefusedError):
        wire.verify_sendgrid(public, "not base64!", stamp, body)


@pytest.mark.parametrize("offset", [-601, 601, float("nan")])
def test_sendgrid_timestamp_outside_ten_minutes_is_refused(offset):
    with pytest.raises(WebhookRefusedError) as refused:
        wire.check_sendgrid_timestamp(str(NOW + offset), NOW)
    assert refused.value.status == 403


def test_sendgrid_timestamp_inside_the_window_and_bad_keys():
    wire.check_sendgrid_timestamp(str(int(NOW) - 599), NOW)
    wire.check_sendgrid_timestamp(str(int(NOW) + 599), NOW)
    for bad in (None, "", "yesterday"):
        with pytest.raises(WebhookRefusedError):
            wire.check_sendgrid_timestamp(bad, NOW)
    with pytest.raises(ConfigError, match="SENDGRID_WEBHOOK_PUBLIC_KEY"):
        wire.load_sendgrid_key("not a key")
    rsa_like = base64.b64encode(ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    with pytest.raises(ConfigError, match="P-256"):
        wire.load_sendgrid_key(rsa_like)


def test_sendgrid_events_parse_into_rows():
    body = json.dumps([
        {"event": "bounce", "type": "bounce", "bounce_classification": "Invalid Address", "reason": "550 no",
         "status": "5.1.1", "sg_event_id": "b1", "sg_message_id": "m1", "email": "x@example.com",
         "timestamp": 1_700_000_000, "send_id": "demo/2026-03-02/email/C1", "customer_id": "C1"},
        {"event": "bounce", "type": "blocked", "sg_event_id": "b2", "email": "y@example.com", "timestamp": 1},
        {"event": "spamreport", "sg_event_id": "s1", "email": "z@example.com", "timestamp": 2},
        {"event": "brand_new_kind", "email": "w@example.com", "timestamp": 3},
    ]).encode()
    rows = wire.parse_sendgrid(body, NOW)
    hard, soft, spam, new = rows
    assert (hard.event, hard.bounce_type, hard.bounce_classification, hard.dedupe_key) == (
        "bounced", "bounce", "Invalid Address", "b1")
    assert (hard.send_id, hard.send_key, hard.customer_id, hard.event_at) == (
        "demo/2026-03-02/email/C1", "demo/2026-03-02/email", "C1", 1_700_000_000)
    assert (soft.bounce_type, soft.send_id, soft.send_key) == ("blocked", None, None)
    assert (spam.event, spam.provider_event) == ("complained", "spamreport")
    assert new.event == "brand_new_kind" and new.dedupe_key.startswith("sha256:")
    assert wire.parse_sendgrid(body, NOW)[3].dedupe_key == new.dedupe_key  # a stable key for a retried batch


@pytest.mark.parametrize("body", [b"{not json", b'{"event": "delivered"}', b"[1, 2]", b'[{"email": "a"}]',
                                  b"\xff\xfe"])
def test_malformed_sendgrid_bodies_are_400(body):
    with pytest.raises(WebhookRefusedError) as refused:
        wire.parse_sendgrid(body, NOW)
    assert refused.value.status == 400


def test_twilio_signature_is_the_documented_hmac_and_tries_the_default_port():
    token, url = "12345", "https://hooks.example.com/events/twilio?send_id=demo%2F2026-03-02%2Fsms%2FC1"
    form = {"MessageSid": "SM1", "MessageStatus": "delivered", "To": "+12025550123", "AccountSid": "AC1"}
    by_hand = base64.b64encode(hmac.new(b"12345", (url + "AccountSidAC1MessageSidSM1MessageStatusdelivered"
                                                   "To+12025550123").encode(), hashlib.sha1).digest()).decode()
    assert wire.twilio_signature(token, url, form.items()) == by_hand == sign_twilio(token, url, form)
    wire.verify_twilio(token, url, list(form.items()), by_hand)
    with_port = url.replace("example.com/", "example.com:443/")
    wire.verify_twilio(token, url, list(form.items()), sign_twilio(token, with_port, form))
    for bad_url, bad_form, bad_token in ((url + "x", form, token), (url, {**form, "To": "+1"}, token),
                                         (url, form, "54321"), (url.replace("https", "http"), form, token)):
        with pytest.raises(WebhookRefusedError) as refused:
            wire.verify_twilio(token, url, list(bad_form.items()), sign_twilio(bad_token, bad_url, form))
        assert refused.value.status == 403


def test_twilio_callbacks_parse_with_the_code_table():
    event = wire.parse_twilio({"MessageSid": "SM9", "MessageStatus": "undelivered", "ErrorCode": "30007",
                               "To": "+12025550123"}, "demo/2026-03-02/sms/C7", NOW)
    assert (event.dedupe_key, event.event, event.error_code, event.customer_id) == (
        "SM9:undelivered", "undelivered", "30007", "C7")
    assert event.reason == DELIVERY_CODES["30007"].meaning and DELIVERY_CODES["30007"].filtered
    assert {c for c, d in DELIVERY_CODES.items() if d.suppress} == {"21610", "30005", "30006"}
    assert wire.parse_twilio({"MessageSid": "SM9", "MessageStatus": "delivered"}, None, NOW).send_id is None
    with pytest.raises(WebhookRefusedError):
        wire.parse_twilio({"MessageStatus": "delivered"}, None, NOW)


def test_every_sms_carries_its_status_callback_when_a_public_url_is_set():
    from tasks.channels.base import Message

    message = Message("C1", "+12025550123", "demo/2026-03-02/sms/C1", {"body": "hi"})
    with_url = TwilioClient(None, "AC1", "+15005550006", public_url="https://hooks.example.com/")  # type: ignore[arg-type]
    assert with_url.request_form(message)["StatusCallback"] == (
        "https://hooks.example.com/events/twilio?send_id=demo%2F2026-03-02%2Fsms%2FC1")
    assert status_callback_url("https://h.example", "a b") == "https://h.example/events/twilio?send_id=a%20b"
    assert "StatusCallback" not in TwilioClient(None, "AC1", "+15005550006").request_form(message)  # type: ignore[arg-type]
