"""Delivery events into the embedded warehouse: ExportCampaignEvents loads every stored event once (no address),
campaign_sends carries each message's latest outcome, a table from before the delivery columns gains them, and
events stored later are exported by the next export. With the state on SQLite files and on the shared Postgres."""

from __future__ import annotations

import datetime

import pytest

from tasks import state
from tasks.campaign import results as results_core
from tasks.campaign import web
from tasks.campaign.compliance import open_suppressions
from tasks.campaign.tasks import ExportCampaignEvents, ExportSendResults
from tasks.state.events import DeliveryEvent, EventStore, events_path
from tests.tasks.campaign_helpers import DAY, build, setup_campaign

OLD_CAMPAIGN_SENDS = """CREATE TABLE analytics.campaign_sends (campaign VARCHAR NOT NULL, date DATE NOT NULL,
    channel VARCHAR NOT NULL, segment VARCHAR NOT NULL, provider VARCHAR, customer_id VARCHAR NOT NULL,
    state VARCHAR NOT NULL, reason VARCHAR, attempts INTEGER, provider_message_id VARCHAR,
    first_attempt_at TIMESTAMP_NTZ, last_attempt_at TIMESTAMP_NTZ, loaded_at TIMESTAMP_NTZ)"""


def bounce(cid: str, key: str, at: float) -> DeliveryEvent:
    return DeliveryEvent(key, "sendgrid", "email", "bounced", "bounce", at, at, send_id=f"demo/{DAY}/email/{cid}",
                         bounce_type="bounce", bounce_classification="Invalid Address",
                         reason=f"550 5.1.1 <{cid.lower()}@example.com>: no such user, call +1 202 555 0143",
                         error_code="5.1.1", provider_message_id=f"m-{cid}", address=f"{cid.lower()}@example.com")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_events_are_exported_once_without_addresses_and_outcomes_reach_campaign_sends(
        backend, request, warehouse, luigi_cfg, tmp_path, var_path):
    if backend == "postgres":
        request.getfixturevalue("postgres_state")
    rows = setup_campaign(luigi_cfg, tmp_path, 20, email={"rate": 200, "burst": 50})
    warehouse.execute("CREATE SCHEMA IF NOT EXISTS analytics")
    warehouse.execute(OLD_CAMPAIGN_SENDS)  # an existing deployment: the table without the delivery columns
    assert build(ExportSendResults(date=DAY, channel="email"))
    stored, _ = web.ingest_outbox(var_path)  # the outbox's processed + delivered of every message
    assert stored == 40
    with EventStore(state.database(events_path(var_path))) as store:
        store.add([bounce("T00003", "late-bounce", 4_102_444_800.0)])  # after its delivered: a hard bounce wins

    task = ExportCampaignEvents(date=DAY)
    assert build(task) and task.complete()
    ((count, seqs),) = warehouse.execute("SELECT COUNT(*), COUNT(DISTINCT event_seq) FROM analytics.campaign_events")
    assert count == seqs == 41
    names, table = warehouse.columns("SELECT * FROM analytics.campaign_events")
    assert not {"email", "phone", "address"} & {n.lower() for n in names}
    values = " ".join(str(v) for row in table for v in row)
    assert not any(r["email"] in values for r in rows) and "2025550143" not in values
    ((reason, kind, code, send_id),) = warehouse.execute(
        "SELECT reason, bounce_type, error_code, send_id FROM analytics.campaign_events WHERE event = 'bounced'")
    assert "t***@example.com" in reason and (kind, code, send_id) == ("bounce", "5.1.1", f"demo/{DAY}/email/T00003")

    outcomes = dict(warehouse.execute("SELECT customer_id, delivery || '/' || COALESCE(delivery_type, '') "
                                      "FROM analytics.campaign_sends WHERE channel = 'email'"))
    assert outcomes.pop("T00003") == "bounced/hard"
    assert set(outcomes.values()) == {"delivered/"} and len(outcomes) == 19
    with open_suppressions(var_path) as suppressions:
        assert [(s.value, s.reason) for s in suppressions.entries()] == [
            ("t00003@example.com", "hard bounce: Invalid Address")]

    # again: nothing new, nothing twice; an event stored later goes with the next export, once
    last = count_last(warehouse)
    assert results_core.export_events(DAY, var_path) == (0, last, last)
    with EventStore(state.database(events_path(var_path))) as store:
        store.add([bounce("T00004", "another", 4_102_444_801.0)])
    later = ExportCampaignEvents(date=DAY + datetime.timedelta(days=1))
    assert build(later)
    ((total,),) = warehouse.execute("SELECT COUNT(*) FROM analytics.campaign_events")
    assert total == 42
    ((outcome,),) = warehouse.execute("SELECT delivery FROM analytics.campaign_sends WHERE customer_id = 'T00004'")
    assert outcome == "bounced"


def count_last(warehouse) -> int:
    ((seq,),) = warehouse.execute("SELECT MAX(event_seq) FROM analytics.campaign_events")
    return int(seq)
