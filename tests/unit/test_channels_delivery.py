"""What delivery events change, on a real SQLite and a real Postgres: the ledger's delivery outcome (latest by event
time, a hard bounce or a complaint never overwritten by a later delivered), idempotent re-application, automatic
suppressions with their reason, and a ledger made before the delivery columns existed."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest

from tasks import state
from tasks.channels import delivery
from tasks.channels.ledger import SendKey, SendLedger
from tasks.channels.suppressions import SuppressionStore
from tasks.state.events import DeliveryEvent, EventStore

EMAIL = SendKey("spring", "2026-03-02", "email")
SMS = SendKey("spring", "2026-03-02", "sms")


class Stores:
    def __init__(self, tmp_path) -> None:
        self.events = EventStore(state.database(tmp_path / "ledger" / "events.sqlite3"))
        self.suppressions = SuppressionStore(state.database(tmp_path / "ledger" / "suppressions.sqlite3"))
        self.ledgers = {ch: SendLedger(state.database(tmp_path / "ledger" / f"{ch}.sqlite3"))
                        for ch in ("email", "sms")}

    def apply(self) -> delivery.Applied:
        return delivery.apply_events(self.events, self.ledgers.__getitem__, self.suppressions, page=3)

    def row(self, key: SendKey, cid: str) -> tuple:
        (found,) = [r for r in self.ledgers[key.channel].rows(key) if r["customer_id"] == cid]
        return found["state"], found["delivery"], found["delivery_type"], found["delivery_detail"]

    def close(self) -> None:
        for closable in (self.events, self.suppressions, *self.ledgers.values()):
            closable.close()


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request, tmp_path):
    if request.param == "postgres":
        request.getfixturevalue("postgres_state")
    opened = Stores(tmp_path)
    yield opened
    opened.close()


_n = iter(range(10**6))


def email(cid: str, event: str, at: float, **fields) -> DeliveryEvent:
    provider_event = fields.pop("provider_event", event)
    return DeliveryEvent(f"sg{next(_n)}", "sendgrid", "email", event, provider_event, at, at + 1,
                         send_id=EMAIL.send_id(cid), address=fields.pop("address", f"{cid}@Example.com"), **fields)


def sms(cid: str, status: str, at: float, code: str | None = None) -> DeliveryEvent:
    return DeliveryEvent(f"SM{cid}:{status}:{next(_n)}", "twilio", "sms", status, status.capitalize(), at, at,
                         send_id=SMS.send_id(cid), error_code=code, provider_message_id=f"SM{cid}",
                         address=f"+120255501{cid[-2:]}")


def seed_sent(ledger: SendLedger, key: SendKey, ids: list[str]) -> None:
    ledger.seed(key, ids)
    ledger.mark_sending(key, ids)
    ledger.mark_sent(key, [(i, f"m-{i}") for i in ids])


def test_outcomes_latest_wins_final_bad_stays_and_applying_again_changes_nothing(stores):
    ids = ["C1", "C2", "C3", "C4", "C5"]
    seed_sent(stores.ledgers["email"], EMAIL, ids)
    stores.events.add([
        email("C1", "deferred", 10), email("C1", "delivered", 20),  # later wins
        email("C2", "bounced", 10, bounce_type="bounce", bounce_classification="Invalid Address"),
        email("C2", "delivered", 30),  # never over a hard bounce
        email("C3", "delivered", 10), email("C3", "complained", 50, provider_event="spamreport"),
        email("C4", "bounced", 10, bounce_type="blocked", bounce_classification="Reputation"),
        email("C5", "processed", 5), email("C5", "open", 60),  # not outcomes
        email("C9", "delivered", 10),  # no ledger row: kept, changes nothing
    ])
    applied = stores.apply()
    assert applied.events == 10
    assert stores.row(EMAIL, "C1") == ("sent", "delivered", None, None)
    assert stores.row(EMAIL, "C2") == ("sent", "bounced", "hard", "Invalid Address")
    assert stores.row(EMAIL, "C3") == ("sent", "complained", None, None)
    assert stores.row(EMAIL, "C4") == ("sent", "bounced", "soft", "Reputation")
    assert stores.row(EMAIL, "C5") == ("sent", None, None, None)
    # a delivered reported later, in another batch, does not undo the hard bounce; a later one replaces the soft one
    stores.events.add([email("C2", "delivered", 99), email("C4", "delivered", 99)])
    assert stores.apply().events == 2
    assert stores.row(EMAIL, "C2")[1:3] == ("bounced", "hard")
    assert stores.row(EMAIL, "C4")[1] == "delivered"
    # every event applied once more (a crash before the cursor moved): nothing changes
    again = delivery.apply_page(stores.events.events_since(0), stores.ledgers.__getitem__, stores.suppressions)
    assert again == (0, 0)
    counts = stores.ledgers["email"].delivery_counts(EMAIL)
    assert counts == {("delivered", "", ""): 2, ("bounced", "hard", "Invalid Address"): 1,
                      ("complained", "", ""): 1, ("", "", ""): 1}


def test_events_suppress_with_their_reason_and_twilio_codes(stores):
    seed_sent(stores.ledgers["sms"], SMS, ["C0001", "C0002", "C0003", "C0004"])
    stores.events.add([
        email("B1", "bounced", 10, bounce_type="bounce", bounce_classification="Invalid Address"),
        email("B2", "bounced", 10, bounce_type="blocked"),  # soft: not suppressed
        email("S1", "complained", 10, provider_event="spamreport"),
        email("U1", "unsubscribed", 10, provider_event="unsubscribe"),
        email("G1", "group_unsubscribed", 10, provider_event="group_unsubscribe"),
        email("D1", "delivered", 10),
        sms("C0001", "undelivered", 10, "30005"), sms("C0002", "failed", 10, "30006"),
        sms("C0003", "undelivered", 10, "21610"), sms("C0004", "undelivered", 10, "30007"),
        dataclasses.replace(sms("C0005", "undelivered", 10, "30005"), provider="outbox"),  # the demo's
    ])
    assert stores.apply().suppressed == 8
    found = {(s.channel, s.value): (s.source, s.reason) for s in stores.suppressions.entries()}
    assert found == {
        ("email", "b1@example.com"): ("sendgrid", "hard bounce: Invalid Address"),
        ("email", "s1@example.com"): ("sendgrid", "spam complaint"),
        ("email", "u1@example.com"): ("sendgrid", "unsubscribed at the provider"),
        ("email", "g1@example.com"): ("sendgrid", "unsubscribed from the group at the provider"),
        ("sms", "+12025550101"): ("twilio", "Twilio 30005: unknown destination handset"),
        ("sms", "+12025550102"): ("twilio", "Twilio 30006: landline or unreachable carrier"),
        ("sms", "+12025550103"): ("twilio", "Twilio 21610: recipient unsubscribed (STOP)"),
        ("sms", "+12025550105"): ("outbox", "Twilio 30005: unknown destination handset"),
    }
    assert stores.row(SMS, "C0004") == ("sent", "undelivered", None, "30007")
    assert stores.row(SMS, "C0002") == ("sent", "failed", None, "30006")
    assert stores.events.cursor(delivery.CURSOR) == stores.events.last_seq()
    assert stores.apply().events == 0


def test_the_order_of_events_does_not_change_the_outcome():
    def outcome(event: str, at: float, **fields) -> delivery.DeliveryOutcome:
        found = delivery.outcome_of(email("C1", event, at, **fields))
        assert found is not None
        return found[1]

    events = [outcome("deferred", 1), outcome("delivered", 2), outcome("bounced", 1, bounce_type="bounce"),
              outcome("delivered", 3), outcome("bounced", 2, bounce_type="blocked")]
    winners = {delivery.latest([("email", o) for o in order])["email"][0]
               for order in (events, events[::-1], events[2:] + events[:2])}
    assert winners == {events[2]}


def test_a_ledger_from_before_delivery_outcomes_gains_the_columns(tmp_path):
    path = tmp_path / "ledger" / "email.sqlite3"
    with SendLedger(state.database(path)) as ledger:
        seed_sent(ledger, EMAIL, ["C1"])
    con = sqlite3.connect(path)
    for column in ("delivery", "delivery_type", "delivery_detail", "delivery_at"):
        con.execute(f"ALTER TABLE sends DROP COLUMN {column}")
    con.commit()
    con.close()
    with SendLedger(state.database(path)) as ledger, SendLedger(state.database(path)) as again:
        assert ledger.rows(EMAIL)[0]["delivery"] is None
        assert again.apply_outcomes("email", [delivery.outcome_of(email("C1", "delivered", 5))[1]]) == 1  # type: ignore[index]
        assert ledger.rows(EMAIL)[0]["delivery"] == "delivered"
