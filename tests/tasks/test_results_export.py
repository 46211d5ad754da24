"""Campaign results in the embedded warehouse: campaign_sends equals the result files, segment_loads
equals summary.json, no address leaves the ledger, and a re-run replaces instead of adding."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from tasks.campaign import results as results_core
from tasks.campaign import segments as segments_core
from tasks.campaign import wiring
from tasks.campaign.tasks import ExportSegmentLoad, ExportSendResults, LoadSegments, SendEmailCampaign
from tasks.channels.ledger import SendKey
from tasks.errors import WarehouseError
from tests.tasks.campaign_helpers import DAY, build, setup_campaign, write_customers


def by_state(warehouse, channel: str) -> dict[str, int]:
    rows = warehouse.execute(
        "SELECT state, COUNT(*) FROM analytics.campaign_sends WHERE date = %(d)s AND channel = %(c)s GROUP BY 1",
        {"d": DAY.isoformat(), "c": channel})
    return {state: int(n) for state, n in rows}


def test_sends_and_segment_loads_land_in_the_warehouse_as_the_result_files_say(
        warehouse, luigi_cfg, tmp_path, var_path):
    limits = {"rate": 200, "burst": 50}
    rows = setup_campaign(luigi_cfg, tmp_path, 40, email=limits, sms=limits, push={**limits, "segment": "premium"})
    exports = [ExportSendResults(date=DAY, channel=c) for c in ("email", "sms", "push")]
    assert build(*exports, ExportSegmentLoad(date=DAY))

    for channel, segment in (("email", "all"), ("sms", "all"), ("push", "premium")):
        result = json.loads(wiring.result_path(var_path, DAY, "demo", channel, segment).read_text())
        assert by_state(warehouse, channel) == {k: v for k, v in result["counts"].items() if v}
        ((seg, provider),) = warehouse.execute(
            "SELECT DISTINCT segment, provider FROM analytics.campaign_sends WHERE channel = %(c)s", {"c": channel})
        assert (seg, provider) == (segment, "outbox")
    assert by_state(warehouse, "push") == {"sent": sum(1 for r in rows if r["segment"] == "premium")}

    # no address goes to the warehouse: customer_id is the join key
    names, table = warehouse.columns("SELECT * FROM analytics.campaign_sends")
    assert not {"email", "phone", "device_token", "address"} & {n.lower() for n in names}
    addresses = {r[k] for r in rows for k in ("email", "phone", "device_token")}
    assert not addresses & {str(v) for row in table for v in row}
    ids = {r[0] for r in warehouse.execute("SELECT customer_id FROM analytics.campaign_sends WHERE channel = 'sms'")}
    assert ids == {r["customer_id"] for r in rows}
    ((attempts, first, last, mid),) = warehouse.execute(
        "SELECT MIN(attempts), MIN(first_attempt_at), MAX(last_attempt_at), MIN(provider_message_id) "
        "FROM analytics.campaign_sends WHERE channel = 'email'")
    assert attempts == 1 and first is not None and last >= first and mid is not None

    summary = json.loads((segments_core.output_dir(var_path, DAY) / "summary.json").read_text())
    ((rows_read, valid, rejected, email, sms, push, reasons, rejects),) = warehouse.execute(
        "SELECT rows_read, valid, rejected, valid_email, valid_sms, valid_push, rejected_by_reason, rejects_file "
        "FROM analytics.segment_loads WHERE date = %(d)s", {"d": DAY.isoformat()})
    assert (rows_read, valid, rejected) == (summary["rows_read"], summary["valid"], summary["rejected"]) == (40, 40, 0)
    assert (email, sms, push) == (40, 40, 40) and json.loads(reasons) == summary["rejected_by_reason"]
    assert rejects.endswith("rejects.csv")

    # a re-run of a finished day does nothing; a load again replaces the send's rows, never adds
    assert all(task.complete() for task in exports)
    send = SendEmailCampaign(date=DAY)
    again = results_core.export_send("email", DAY, "demo", "all", LoadSegments(date=DAY).customers_path(), "outbox",
                                     send.result_path())
    assert again == 40 and by_state(warehouse, "email") == {"sent": 40}
    ((total,),) = warehouse.execute("SELECT COUNT(*) FROM analytics.campaign_sends")
    assert total == 40 + 40 + len([r for r in rows if r["segment"] == "premium"])


def test_a_rewritten_result_file_makes_the_export_due_again(warehouse, luigi_cfg, tmp_path, var_path):
    setup_campaign(luigi_cfg, tmp_path, 6, email={"rate": 200, "burst": 50})
    export = ExportSendResults(date=DAY, channel="email")
    assert build(export) and export.complete()
    path = SendEmailCampaign(date=DAY).output().path
    payload = json.loads(Path(path).read_text())
    payload["reconciled"] = [{"settled_sent": 0}]
    with open(path, "w") as fh:
        json.dump(payload, fh)
    assert not export.complete()
    assert build(export) and export.complete()


def test_a_segment_load_redone_on_other_data_is_exported_again(warehouse, luigi_cfg, tmp_path, var_path):
    # the export counted as done once its marker row existed: a load redone for the date (a corrected file)
    # left the warehouse with the old counts
    rows = setup_campaign(luigi_cfg, tmp_path, 6)
    export = ExportSegmentLoad(date=DAY)
    assert build(export) and export.complete()
    summary_path = segments_core.output_dir(var_path, DAY) / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["duration_s"] = 99.0  # the same data loaded again (another host, a re-run): nothing to do
    summary_path.write_text(json.dumps(summary))
    assert export.complete()

    write_customers(tmp_path / "customers.csv", len(rows) + 1)  # a corrected file, with one customer more
    summary_path.unlink()
    assert build(LoadSegments(date=DAY))  # the load redone for the date
    assert not export.complete()
    assert build(export) and export.complete()
    ((rows_read,),) = warehouse.execute("SELECT rows_read FROM analytics.segment_loads WHERE date = %(d)s",
                                        {"d": DAY.isoformat()})
    assert rows_read == len(rows) + 1


def test_a_failed_load_leaves_the_previous_rows(warehouse, tmp_path):
    key = SendKey("demo", DAY.isoformat(), "sms")
    ledger_rows = [{"customer_id": f"C{i}", "state": "sent", "attempts": 1, "created_at": 1.0e9, "updated_at": 1.0e9}
                   for i in range(5)]
    rows = results_core.send_rows(ledger_rows, key, "all", "twilio")
    results_core.replace_send(warehouse, "analytics.campaign_sends", rows, key, "all", tmp_path)
    broken = rows.set_column(rows.schema.get_field_index("date"), "date", pa.array(["not a date"] * 5))
    with pytest.raises(WarehouseError):
        results_core.replace_send(warehouse, "analytics.campaign_sends", broken, key, "all", tmp_path)
    assert by_state(warehouse, "sms") == {"sent": 5}, "the delete was rolled back with the failed load"
    assert list(tmp_path.glob("*.parquet")) == [], "the load file is removed either way"
