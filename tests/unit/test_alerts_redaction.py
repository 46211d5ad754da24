"""redact(): secrets are removed and personal data masked in free text bound for Slack."""

from __future__ import annotations

import pytest

from tasks.ops.redaction import REDACTED, redact

ENV = {"SENDGRID_API_KEY": "SG.env-only-value.xyz", "DB_PASSWORD": "pa55word!", "PATH": "/usr/bin", "PWD": "/work"}


def test_a_dsn_variable_is_a_secret_wherever_it_appears():
    env = {"TASKS_STATE_DSN": "postgres://u@dbhost/state?password=x9y8z7w6"}
    assert "x9y8z7w6" not in redact("connecting to postgres://u@dbhost/state?password=x9y8z7w6", environ=env)
    assert redact("at 12:30 see http://host:8082/x", environ={}) == "at 12:30 see http://host:8082/x"


@pytest.mark.parametrize(
    "text, gone",
    [
        ("key SG.env-only-value.xyz failed", "SG.env-only-value.xyz"),
        ("login with pa55word! refused", "pa55word!"),
        ("SendGrid SG.abcdefgh12345678.ABCDEFGHijklmnop9876 rejected", "SG.abcdefgh12345678"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
        ("slack xoxb-1234-5678-abcdefghijkl", "xoxb-1234-5678-abcdefghijkl"),
        ("fcm token ya29.a0AfB_byC-dEf.GhIjK refused", "a0AfB_byC-dEf"),
        ("posting to https://hooks.slack.com/services/T1/B2/secretpath failed", "secretpath"),
        ("snowflake://etl:s3cr3t@acme.eu-west-1/db", "s3cr3t"),
        ("conn host=db user=etl password=hunter2 dbname=mau", "hunter2"),
        ('{"api_key": "abc123def456", "x": 1}', "abc123def456"),
        ("GET /v1?token=tok_998877665544&x=1", "tok_998877665544"),
        ("-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END PRIVATE KEY-----", "MIIEv"),
        ("recipient Alice.Smith+promo@mail.example.co.uk bounced", "Alice.Smith+promo@mail.example.co.uk"),
        ("sms to +44 20 7946 0958 failed", "7946 0958"),
        ("sms to (202) 555-0187 failed", "555-0187"),
        ("sms to +15005550006 failed", "5005550006"),
        ("push to " + "fcmTok_" + "a1B2" * 40 + " unregistered", "a1B2a1B2a1B2a1B2"),
        # found by review: a mistyped DSN (libpq repeats it), a webhook path without its host, a passphrase,
        # URL-encoded numbers and addresses, a DSN variable's value
        ('missing "=" after "postgresql//tasks:S3cretPw@db/state" in connection info string', "S3cretPw"),
        ("POST /services/T0123ABCD/B0123ABCD/abcdefghijklmnop1234 HTTP/1.1", "abcdefghijklmnop1234"),
        ("private_key_passphrase=hunter22 rejected", "hunter22"),
        ("GET /Messages.json?To=%2B447946095812&From=x", "7946095812"),
        ("GET /lookup?email=ann.lee%40example.com", "ann.lee"),
    ],
)
def test_secrets_and_pii_do_not_survive(text, gone):
    out = redact(text, environ=ENV)
    assert gone not in out
    assert out != text


def test_masks_keep_enough_to_recognise_the_recipient():
    out = redact("to alice@example.com and +12025550143", environ={})
    assert "a***@example.com" in out and "+1********43" in out


def test_ordinary_text_is_left_alone():
    text = "MAU check failed: rows 1234 < 5000 on 2024-01-05 in /work/main (query id 01b2c3)"
    assert redact(text, environ=ENV) == text


def test_extra_secrets_are_removed():
    assert redact("hook http://127.0.0.1:9/x/abcdef", extra_secrets=["http://127.0.0.1:9/x/abcdef"], environ={}) == (
        f"hook {REDACTED}"
    )
