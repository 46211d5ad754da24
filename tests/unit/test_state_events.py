"""The delivery event store on both backends: one transaction per batch, dedupe, seq order, reads for the next step."""

from __future__ import annotations

import pytest

from tasks.state.events import DeliveryEvent, EventStore


@pytest.fixture
def store(state_db):
    with EventStore(state_db) as events:
        yield events


def event(key: str, send_id: str | None = "demo/2026-03-02/email/C1", **fields) -> DeliveryEvent:
    return DeliveryEvent(dedupe_key=key, provider="sendgrid", channel="email", event=fields.pop("event", "delivered"),
                         provider_event="delivered", event_at=1.5, received_at=2.5, send_id=send_id,
                         address="a@example.com", **fields)


def test_a_batch_is_stored_once_in_order_and_read_back_by_seq_and_by_send(store):
    first = [event(f"k{i}", f"demo/2026-03-02/email/C{i % 3}") for i in range(5)]
    assert store.add(first) == 5
    assert store.add([*first, event("k5", None, event="bounced", bounce_type="bounce"), event("k5", None)]) == 1
    assert store.last_seq() >= 6  # Postgres identities may skip values; order is what counts
    rows = store.events_since(0)
    assert [r.dedupe_key for r in rows] == ["k0", "k1", "k2", "k3", "k4", "k5"]
    assert [r.seq for r in rows] == sorted(r.seq for r in rows)
    assert (rows[5].event, rows[5].bounce_type, rows[5].send_key, rows[5].customer_id) == ("bounced", "bounce", None,
                                                                                         None)
    assert (rows[0].send_key, rows[0].customer_id, rows[0].event_at, rows[0].address) == (
        "demo/2026-03-02/email", "C0", 1.5, "a@example.com")
    assert [r.dedupe_key for r in store.events_since(rows[2].seq, limit=2)] == ["k3", "k4"]
    assert [r.dedupe_key for r in store.events_of_send("demo/2026-03-02/email", after_seq=rows[0].seq)] == [
        "k1", "k2", "k3", "k4"]
    assert store.events_of_send("demo/2026-03-02/sms") == []
    assert store.counts() == {("email", "delivered", False): 5, ("email", "bounced", True): 1}
    assert store.stored_keys(["k1", "k9"]) == {"k1"}
    store.add([event("k6", "demo/2026-03-02/email/C2", event="bounced", bounce_type="blocked")])
    assert store.counts_of_send("demo/2026-03-02/email") == {("delivered", "", ""): 5, ("bounced", "blocked", ""): 1}
    assert store.add([]) == 0


def test_a_failing_batch_stores_none_of_its_events(store):
    store.add([event("k0")])
    with pytest.raises(Exception):  # noqa: B017 - the backend's own error (a NOT NULL column)
        store.add([event("k1"), DeliveryEvent("k2", "sendgrid", "email", None, "x", 1.0, 1.0)])  # type: ignore[arg-type]
    assert [e.dedupe_key for e in store.events_since(0)] == ["k0"]
