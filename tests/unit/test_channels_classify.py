"""Each provider's error map: a response (or a transport failure) -> the error the sender acts on.

Responses are real `requests.Response` objects filled with the providers' documented
status codes, headers and bodies; transport failures come from real sockets on 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests

from tasks.channels import fcm, sendgrid, twilio
from tasks.channels.http import HttpTransport, retry_after_seconds
from tasks.errors import AuthApiError, FatalApiError, OptedOutError, RetriableApiError


def response(status: int, body: object = None, headers: dict[str, str] | None = None) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = b"" if body is None else json.dumps(body).encode()
    resp.headers.update(headers or {})
    return resp


def fcm_error(status: int, code: str) -> dict:
    return {"error": {"code": status, "message": "m", "status": "S",
                      "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]}}


def twilio_error(status: int, code: int) -> dict:
    return {"code": code, "message": "The 'To' number +15005550001 is not valid", "more_info": "", "status": status}


@pytest.mark.parametrize(
    ("module", "resp", "error", "maybe_delivered"),
    [
        (sendgrid, response(202, headers={"X-Message-Id": "abc"}), None, None),
        (sendgrid, response(429, {"errors": []}, {"X-RateLimit-Reset": str(int(time.time()) + 30)}),
         RetriableApiError, False),
        (sendgrid, response(500, {"errors": []}), RetriableApiError, False),
        (sendgrid, response(504), RetriableApiError, True),
        (sendgrid, response(400, {"errors": [{"field": "personalizations.0.to", "message": "bad a@b.c"}]}),
         FatalApiError, None),
        (sendgrid, response(401, {"errors": []}), AuthApiError, None),
        (twilio, response(201, {"sid": "SM1"}), None, None),
        (twilio, response(400, twilio_error(400, 21211)), FatalApiError, None),
        (twilio, response(400, twilio_error(400, 21614)), FatalApiError, None),
        (twilio, response(400, twilio_error(400, 21610)), OptedOutError, None),
        (twilio, response(429, twilio_error(429, 20429), {"Retry-After": "7"}), RetriableApiError, False),
        (twilio, response(503, twilio_error(503, 20500)), RetriableApiError, False),
        (twilio, response(502), RetriableApiError, True),
        (twilio, response(401, twilio_error(401, 20003)), AuthApiError, None),
        (fcm, response(200, {"name": "projects/p/messages/1"}), None, None),
        (fcm, response(404, fcm_error(404, "UNREGISTERED")), OptedOutError, None),
        # a dead token answered without FCM's detail: Google's own status, NOT_FOUND
        (fcm, response(404, {"error": {"code": 404, "message": "m", "status": "NOT_FOUND"}}), OptedOutError, None),
        (fcm, response(400, fcm_error(400, "INVALID_ARGUMENT")), FatalApiError, None),
        (fcm, response(429, fcm_error(429, "QUOTA_EXCEEDED"), {"Retry-After": "12"}), RetriableApiError, False),
        (fcm, response(503, fcm_error(503, "UNAVAILABLE")), RetriableApiError, False),
        (fcm, response(500, fcm_error(500, "INTERNAL")), RetriableApiError, False),
        (fcm, response(401, fcm_error(401, "THIRD_PARTY_AUTH_ERROR")), AuthApiError, None),
        # a token of another Firebase project: this recipient fails, the send goes on
        (fcm, response(403, fcm_error(403, "SENDER_ID_MISMATCH")), FatalApiError, None),
    ],
)
def test_classify(module, resp, error, maybe_delivered):
    if error is None:
        module.classify_response(resp)
        return
    with pytest.raises(error) as info:
        module.classify_response(resp)
    assert type(info.value) is error
    if maybe_delivered is not None:
        assert info.value.maybe_delivered is maybe_delivered
    assert "15005550001" not in str(info.value), "provider messages may quote the recipient: never copied"
    assert "a@b.c" not in str(info.value)


def test_retry_after_sources():
    with pytest.raises(RetriableApiError) as info:
        twilio.classify_response(response(429, twilio_error(429, 20429), {"Retry-After": "7"}))
    assert info.value.retry_after == 7
    reset = str(int(time.time()) + 30)
    with pytest.raises(RetriableApiError) as info:
        sendgrid.classify_response(response(429, {"errors": []}, {"X-RateLimit-Reset": reset}))
    assert 25 <= info.value.retry_after <= 31
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("soon") is None


def test_messages_name_status_code_and_meaning_never_the_provider_text():
    with pytest.raises(FatalApiError) as info:
        twilio.classify_response(response(400, twilio_error(400, 21211)))
    assert str(info.value) == "twilio: HTTP 400 21211: invalid 'To' phone number" and info.value.code == "21211"
    body = {"errors": [{"field": "personalizations.0.to", "message": "bad a@b.c"}, {"field": "from", "message": "x"}]}
    with pytest.raises(FatalApiError) as info:
        sendgrid.classify_response(response(400, body))
    assert str(info.value) == "sendgrid: HTTP 400: request rejected (fields from, personalizations.0.to)"
    with pytest.raises(AuthApiError, match=r"API key rejected or lacks mail\.send"):
        sendgrid.classify_response(response(403, {"errors": []}))
    with pytest.raises(FatalApiError, match=r"^fcm: HTTP 404 UNREGISTERED: the token is no longer registered$"):
        fcm.classify_response(response(404, fcm_error(404, "UNREGISTERED")))


@pytest.fixture
def silent_server():
    """A TCP server that accepts, reads the request and then either hangs or hangs up."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    mode = {"kind": "hang"}
    conns = []

    def serve():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conns.append(conn)
            conn.recv(65536)
            if mode["kind"] == "close":
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield sock.getsockname()[1], mode
    sock.close()
    for c in conns:
        c.close()


def test_transport_errors_say_whether_the_request_may_have_been_delivered(silent_server):
    port, mode = silent_server
    transport = HttpTransport("twilio", f"http://127.0.0.1:{port}", connect_timeout=1, read_timeout=0.3,
                              auth=("AC-secret-sid", "secret-token"))
    with pytest.raises(RetriableApiError) as info:
        transport.post("/2010-04-01/Accounts/AC-secret-sid/Messages.json", data={"To": "+14155550100"})
    assert info.value.maybe_delivered is True and "read timeout" in str(info.value)
    # a caller's budget caps one call's timeouts below the transport's own
    slow = HttpTransport("slack", f"http://127.0.0.1:{port}/hook", connect_timeout=5, read_timeout=5)
    started = time.monotonic()
    with pytest.raises(RetriableApiError, match="slack: read timeout"):
        slow.post("", json={"text": "x"}, timeout=0.2)
    assert time.monotonic() - started < 1.5
    slow.close()
    mode["kind"] = "close"
    with pytest.raises(RetriableApiError) as info:
        transport.post("/2010-04-01/Accounts/AC-secret-sid/Messages.json", data={"To": "+14155550100"})
    assert info.value.maybe_delivered is True
    transport.close()
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    closed_port = free.getsockname()[1]
    free.close()
    refused = HttpTransport("twilio", f"http://127.0.0.1:{closed_port}", connect_timeout=1, read_timeout=1)
    with pytest.raises(RetriableApiError) as info:
        refused.post("/x")
    assert info.value.maybe_delivered is False
    for exc in (info.value,):
        assert "secret" not in str(exc) and "Accounts" not in str(exc)
