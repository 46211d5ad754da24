"""The run summary at the end of a real `luigi` run, `python -m tasks status` reading it back (exit 1
after a failed run), `[slack] notify_success`, and the metrics textfile and Pushgateway push."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tasks import status
from tasks.ops import metrics
from tasks.ops.summary import DaySummary, read_runs, render
from tests.conftest import REPO
from tests.fakes.slack import FakeSlack
from tests.tasks.campaign_helpers import DAY, write_customers
from tests.warehouse_fixtures import seed_raw

pytestmark = pytest.mark.slow  # real luigi subprocesses


def run_luigi(env: dict[str, str], *args: str, date: dt.date = DAY) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "luigi", "--module", "tasks", *args, "--date", date.isoformat(), "--local-scheduler"]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_run_ends_on_the_summary_and_status_reads_it_back(warehouse, luigi_cfg, tmp_path, var_path,
                                                            subprocess_env):
    rows = write_customers(tmp_path / "customers.csv", 30)
    luigi_cfg.set("segments", "input_path", tmp_path / "customers.csv")
    luigi_cfg.set("email_campaign", "rate", 200)
    luigi_cfg.set("email_campaign", "burst", 50)
    luigi_cfg.set("slack", "notify_success", "true")
    with FakeSlack() as slack:
        env = {**subprocess_env, "SLACK_WEBHOOK_URL": slack.url}
        done = run_luigi(env, "ExportSendResults", "--channel", "email")
        assert done.returncode == 0, done.stderr[-3000:]
        # the run ends on the summary table, after Luigi's own execution summary
        out = done.stdout.rstrip()
        assert "Execution Summary" in done.stderr and "Summary for 2026-03-02: ExportSendResults ok" in out
        tail = out[out.rindex("Summary for 2026-03-02"):]
        assert "segments: 30 rows, 30 valid" in tail and "alerts: 0" in tail
        assert "email demo/all    outbox      30    30" in tail
        assert not any(r["email"] in done.stdout + done.stderr for r in rows), "no address in the output"
        (posted,) = slack.wait_for(1)
        assert "Day 2026-03-02 done" in posted.payload["text"] and "email demo/all" in json.dumps(posted.payload)

        (record,) = read_runs()
        assert (record["kind"], record["status"], record["run_date"]) == ("luigi", "ok", "2026-03-02")
        (sent,) = record["sends"]
        delivery = sent.pop("delivery")  # no event applied yet: 30 sent, nothing reported back
        assert sent == {"channel": "email", "campaign": "demo", "segment": "all", "counts": {"sent": 30}}
        assert (delivery["sent"], delivery["delivered"], delivery["bounced"], delivery["delivered_rate"]) == (
            30, 0, 0, 0.0)
        printed = io.StringIO()
        assert status.main(DAY, 2, out=printed) == 0
        text = printed.getvalue()
        assert "Summary for 2026-03-01" in text and "nothing stored for this date" in text
        assert "last run: luigi ok" in text and "email demo/all" in text
        exported = samples((var_path / "metrics" / "mau_campaign_tasks.prom").read_text())
        key = ("tasks_messages", (("campaign", "demo"), ("channel", "email"), ("segment", "all"), ("state", "sent")))
        assert exported[key] == 30

        # a failing run: its summary says so, status exits 1, and no success note goes to Slack
        luigi_cfg.set("segments", "input_path", tmp_path / "missing.csv")
        failed = run_luigi(env, "LoadSegments", date=dt.date(2026, 3, 3))
        assert failed.returncode == 30
        assert "Summary for 2026-03-03: LoadSegments failed" in failed.stdout
        assert "alerts: 1" in failed.stdout and "LoadSegments(date=2026-03-03) failure" in failed.stdout
        last = read_runs()[-1]
        assert (last["status"], last["alerts"]) == ("failed", 1)
        assert status.main(dt.date(2026, 3, 3), 1, out=io.StringIO()) == 1
        assert status.main(DAY, 1, out=io.StringIO()) == 0, "03-02 alone: its last run went well"
        assert status.main(dt.date(2026, 3, 3), 2, out=io.StringIO()) == 1, "the newest run of the two days failed"


class _Pushgateway(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append(("PUT", self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_metrics_go_to_the_textfile_and_a_pushgateway(luigi_cfg, var_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pushgateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        luigi_cfg.set("metrics", "pushgateway_url", f"http://127.0.0.1:{server.server_address[1]}")
        summary = DaySummary(
            date="2026-03-02",
            tables=[{"table": "analytics.mau_summary", "published": True, "rows": 18,
                     "checks": {"pass": 8, "warn": 1}, "problems": ["freshness warn"]}],
            segments={"done": True, "rows_read": 10, "valid": 8, "rejected": 2, "blank_lines": 0,
                      "rejected_by_reason": {"invalid_segment": 2}, "channel_issues_by_reason": {"sms": {"bad": 1}}},
            sends=[{"channel": "sms", "campaign": "demo", "segment": "all", "counts": {"sent": 7, "suppressed": 1},
                    "rate": 4.5, "duration_s": 2.0, "done": True, "provider": "twilio", "target": 8}],
            run={"task": "RunAll", "status": "ok", "duration_s": 12.5, "failed_tasks": [], "alerts": 1,
                 "warned_tasks": ["StageTable(...) data check warning"]})
        path = metrics.export(summary)
        assert path == var_path / "metrics" / "mau_campaign_tasks.prom"
        ((method, where, body),) = _Pushgateway.received
        assert (method, where) == ("PUT", "/metrics/job/mau_campaign_tasks")
        for text in (path.read_text(), body.decode()):
            got = samples(text)
            # a state the ledger gains later (here `suppressed`) flows through as it is
            labels = (("campaign", "demo"), ("channel", "sms"), ("segment", "all"))
            assert got[("tasks_messages", (*labels, ("state", "suppressed")))] == 1
            assert got[("tasks_send_rate_messages_per_second", labels)] == 4.5
            assert got[("tasks_check_failures", (("status", "warn"), ("table", "analytics.mau_summary")))] == 1
            assert got[("tasks_segment_rejects", (("reason", "invalid_segment"),))] == 2
            assert got[("tasks_run_duration_seconds", (("task", "RunAll"),))] == 12.5
            # a data-check warning is not a failed task
            assert got[("tasks_run_warnings", (("task", "RunAll"),))] == 1
            assert got[("tasks_run_alerts", (("task", "RunAll"),))] == 0
        assert "suppressed" in render(summary), "the table shows every state too"
    finally:
        server.shutdown()
        server.server_close()


def test_status_shows_the_tables_a_run_recorded_without_loading_the_connector(warehouse, tmp_path, var_path,
                                                                               subprocess_env):
    """A finished day's tables come from its last luigi run record (the connector alone takes longer to load than
    the rest of `status`); --live asks the warehouse."""
    seed_raw(warehouse, tmp_path)
    done = run_luigi(subprocess_env, "MauSummary", date=dt.date(2026, 6, 30))
    assert done.returncode == 0, done.stderr[-3000:]
    (record,) = read_runs()
    recorded = {t["table"]: t for t in record["tables"]}  # every table of the specs; MauSummary publishes its own
    assert recorded["analytics.mau_summary"]["published"] and recorded["analytics.mau_summary"]["rows"], recorded
    code = ("import contextlib, io, sys\nfrom tasks import __main__ as cli\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    assert cli.main(['status', '--date', '2026-06-30']) == 0\n"
            "print(out.getvalue())\nprint('connector loaded:', 'snowflake.connector' in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=subprocess_env, capture_output=True,
                           text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "analytics.mau_summary" in shown.stdout and "tables as the run recorded them at" in shown.stdout
    assert "connector loaded: False" in shown.stdout
    live = io.StringIO()
    assert status.main(dt.date(2026, 6, 30), 1, out=live, live=True) == 0
    assert "analytics.mau_summary" in live.getvalue() and "as the run recorded them" not in live.getvalue()
