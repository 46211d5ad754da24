"""`python -m tasks check-config`: every problem at once, each naming the file and the key."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tasks import check_config
from tasks.campaign import wiring
from tasks.errors import ConfigError
from tests.conftest import REPO
from tests.fakes.providers import service_account_info

TWILIO_ENV = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER", "TWILIO_MESSAGING_SERVICE_SID")


def problems() -> list[str]:
    return [str(p) for p in check_config.check()]


def test_the_shipped_configuration_has_no_problem(luigi_cfg) -> None:
    assert problems() == []


def test_a_misspelt_section_is_named_with_its_file_and_a_suggestion(luigi_cfg) -> None:
    luigi_cfg.set("segment", "input_path", "/data/segments.csv")
    assert problems() == [f"{luigi_cfg.path} [segment]: unknown section; did you mean 'segments'?"]


def test_unknown_keys_and_wrong_values_are_all_reported_at_once(luigi_cfg) -> None:
    luigi_cfg.set("slack", "webhok_url", "x").set("schedule", "workers", "three")
    luigi_cfg.set("segments", "max_reject_ratio", "lots")
    found = problems()
    assert f"{luigi_cfg.path} [slack] webhok_url: unknown key; did you mean 'webhook_url'?" in found
    assert any(p.startswith(f"{luigi_cfg.path} [schedule] workers: wrong value") and "'three'" in p for p in found)
    assert any(p.startswith(f"{luigi_cfg.path} [segments] max_reject_ratio: wrong value") for p in found)
    assert len(found) == 3


def test_task_sections_and_luigi_sections_are_known(luigi_cfg) -> None:
    luigi_cfg.set("SendSmsCampaign", "campaign", "spring").set("worker", "keep_alive", "true")
    luigi_cfg.set("resources", "provider_slots", "3")
    assert problems() == []


def test_every_schedule_value_the_wrapper_cannot_use_is_reported(luigi_cfg) -> None:
    # check-config said "configuration OK"; the wrapper then refused the first of them at 02:00
    luigi_cfg.set("schedule", "cron_expression", "every day").set("schedule", "timezone", "Mars/Olympus")
    luigi_cfg.set("schedule", "end_date", "2026-13-01").set("schedule", "workers", "0")
    found = [p for p in problems() if "[schedule]" in p]
    for key, what in (("cron_expression", "'every day' is not a cron expression"),
                      ("timezone", "'Mars/Olympus' is not an IANA time zone"),
                      ("end_date", "is not YYYY-MM-DD"), ("workers", "must be at least 1")):
        assert any(p.startswith(f"{luigi_cfg.path} [schedule] {key}: ") and what in p for p in found), (key, found)


def test_the_scheduled_module_s_tasks_are_known_and_a_bad_module_is_named(luigi_cfg) -> None:
    luigi_cfg.set("schedule", "module", "tests.e2e.slow_tasks").set("SlowDay", "seconds", "1")
    assert problems() == []
    luigi_cfg.set("schedule", "module", "tests.no_such_module")
    (found,) = [p for p in problems() if "[schedule] module" in p]
    assert found.startswith(f"{luigi_cfg.path} [schedule] module: cannot import 'tests.no_such_module'")


def test_missing_files_are_named(luigi_cfg, tmp_path) -> None:
    specs = tmp_path / "tables.toml"
    specs.write_text('[[table]]\nname = "analytics.t"\nprimary_key = ["k"]\nsql = "sql/missing.sql"\n')
    luigi_cfg.set("segments", "input_path", tmp_path / "nope.csv").set("elt", "table_specs", specs)
    luigi_cfg.set("push_campaign", "template", "config/templates/nope.toml")
    found = problems()
    assert f"{luigi_cfg.path} [segments] input_path: file not found: {tmp_path / 'nope.csv'}" in found
    assert f"{specs} [[table]] analytics.t sql: file not found: {tmp_path / 'sql' / 'missing.sql'}" in found
    assert any(p.startswith(f"{luigi_cfg.path} [push_campaign] template: file not found") for p in found)
    assert len(found) == 3


def test_a_cycle_in_the_table_graph_is_named(luigi_cfg, tmp_path) -> None:
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "a.sql").write_text("WITH b AS (SELECT k FROM raw_data.s) SELECT k FROM b\n")
    (tmp_path / "sql" / "b.sql").write_text("SELECT k FROM raw_data.s\n")
    specs = tmp_path / "tables.toml"
    specs.write_text('[[table]]\nname = "analytics.a"\nprimary_key = ["k"]\nsql = "sql/a.sql"\n'
                     '[[table]]\nname = "analytics.b"\nprimary_key = ["k"]\nsql = "sql/b.sql"\n')
    luigi_cfg.set("elt", "table_specs", specs)
    assert problems() == []  # the CTE named b is not the table analytics.b
    (tmp_path / "sql" / "b.sql").write_text("SELECT k FROM analytics.a\n")
    assert problems() == []  # b reads a: a graph, no cycle
    (tmp_path / "sql" / "a.sql").write_text("SELECT k FROM analytics.b\n")
    assert problems() == ["config: table graph has a cycle: analytics.a -> analytics.b -> analytics.a"]


def test_a_real_provider_needs_its_variables_and_never_the_demo_sample(luigi_cfg, tmp_path, monkeypatch) -> None:
    for name in TWILIO_ENV:
        monkeypatch.delenv(name, raising=False)
    luigi_cfg.set("sms_campaign", "provider", "twilio")
    found = problems()
    assert "environment: TWILIO_ACCOUNT_SID is not set; [sms_campaign] provider = twilio needs it" in found
    assert any("TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID" in p for p in found)
    assert any(p.startswith(f"{luigi_cfg.path} [segments] input_path: the bundled demo sample") for p in found)
    assert len(found) == 4

    for name in TWILIO_ENV[:3]:
        monkeypatch.setenv(name, "set-in-the-environment")
    real = tmp_path / "segments.csv"
    real.write_text("customer_id,segment,email,phone,device_token\n")
    luigi_cfg.set("segments", "input_path", real)
    assert problems() == []


def test_what_a_send_would_refuse_is_reported(luigi_cfg, tmp_path) -> None:
    real = tmp_path / "segments.csv"
    real.write_text("customer_id,segment,email,phone,device_token\n")
    luigi_cfg.set("segments", "input_path", real)
    luigi_cfg.set("email_campaign", "provider", "sendgird").set("sms_campaign", "max_attempts", "0")
    found = problems()
    assert any(p.startswith(f"{luigi_cfg.path} [email_campaign] provider: provider = 'sendgird'") for p in found)
    assert f"{luigi_cfg.path} [sms_campaign] max_attempts: max_attempts = 0; must be at least 1" in found
    assert len(found) == 2


def test_a_send_itself_refuses_the_demo_sample_with_a_real_provider(luigi_cfg, monkeypatch) -> None:
    """Not only check-config: `luigi --module tasks RunAll` by hand reaches the send, which refuses."""
    for name in TWILIO_ENV[:3]:
        monkeypatch.setenv(name, "set-in-the-environment")
    luigi_cfg.set("sms_campaign", "provider", "twilio")
    with pytest.raises(ConfigError, match="bundled demo sample"):
        wiring.run_channel_send("sms", datetime.date(2026, 3, 2), "demo", "all", "/nonexistent/customers.parquet")


@pytest.mark.parametrize(("section", "code"), [("segments", 0), ("segment", 2)])
def test_the_command_exits_2_on_any_problem(luigi_cfg, subprocess_env, section, code) -> None:
    luigi_cfg.set(section, "chunk_rows", "1000")
    done = subprocess.run([sys.executable, "-m", "tasks", "check-config"], cwd=REPO, env=subprocess_env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == code, done.stdout + done.stderr
    assert ("configuration OK" if code == 0 else "1 configuration problem(s)") in done.stdout


@pytest.mark.parametrize("command", ["check-config", "cron"])
def test_a_malformed_config_file_is_named_with_its_line_and_exits_2(tmp_path, subprocess_env, command) -> None:
    # `import luigi` parses the files: a key given twice or a line without `=` was a traceback and exit 1,
    # before any check (and the cron wrapper's exit code said nothing of a config error)
    bad = tmp_path / "luigi.cfg"
    bad.write_text("[core]\nfoo = 1\nfoo = 2\n")
    done = subprocess.run([sys.executable, "-m", "tasks", command], cwd=REPO,
                          env={**subprocess_env, "LUIGI_CONFIG_PATH": str(bad)}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"'{bad}' [line  3]" in done.stderr and "Traceback" not in done.stderr


def test_fcm_needs_a_token_or_a_usable_service_account_and_a_project(luigi_cfg, tmp_path, monkeypatch) -> None:
    for name in ("FCM_ACCESS_TOKEN", "FCM_PROJECT_ID", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    real = tmp_path / "segments.csv"
    real.write_text("customer_id,segment,email,phone,device_token\n")
    luigi_cfg.set("segments", "input_path", real).set("push_campaign", "provider", "fcm")
    needs = "; [push_campaign] provider = fcm needs it"
    assert problems() == [f"environment: FCM_ACCESS_TOKEN or GOOGLE_APPLICATION_CREDENTIALS is not set{needs}"]

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    assert problems() == [f"environment: GOOGLE_APPLICATION_CREDENTIALS does not name a readable file{needs}"]

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info = service_account_info(key, "https://oauth2.googleapis.com/token", "k1", project_id=None)
    key_file = tmp_path / "sa.json"
    key_file.write_text(json.dumps(info))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    assert problems() == [
        f"environment: FCM_PROJECT_ID is not set and the GOOGLE_APPLICATION_CREDENTIALS file has no project_id{needs}"
    ]
    key_file.write_text(json.dumps({**info, "project_id": "my-project"}))
    assert problems() == []

    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    monkeypatch.setenv("FCM_ACCESS_TOKEN", "ya29.minted-outside-for-a-short-send")
    assert problems() == [f"environment: FCM_PROJECT_ID is not set{needs}"]
    monkeypatch.setenv("FCM_PROJECT_ID", "my-project")
    assert problems() == []
def test_campaign_compliance_settings_are_checked(luigi_cfg, tmp_path, monkeypatch) -> None:
    listed = tmp_path / "s.csv"
    listed.write_text("channel,address\nemail,not-an-address\n")
    luigi_cfg.set("campaign", "frequency_caps", "1/7d").set("campaign", "frequency_cap", "weekly")
    luigi_cfg.set("campaign", "suppression_list", listed)
    luigi_cfg.set("sms_campaign", "quiet_hours", "9pm-8am").set("push_campaign", "default_timezone", "Mars/Base")
    luigi_cfg.set("email_campaign", "unsubscribe_url", "http://example.com/u")
    monkeypatch.delenv("UNSUBSCRIBE_SECRET", raising=False)
    found = problems()
    assert f"{luigi_cfg.path} [campaign] frequency_caps: unknown key; did you mean 'frequency_cap'?" in found
    assert any(p.startswith(f"{luigi_cfg.path} [campaign] frequency_cap: [campaign] frequency_cap = 'weekly'")
               for p in found)
    assert any(p.startswith(f"{luigi_cfg.path} [campaign] suppression_list:") and "line(s) [2]" in p for p in found)
    assert any(p.startswith(f"{luigi_cfg.path} [sms_campaign] quiet_hours:") for p in found)
    assert any(p.startswith(f"{luigi_cfg.path} [push_campaign] default_timezone:") for p in found)
    assert any(p.startswith(f"{luigi_cfg.path} [email_campaign] unsubscribe_url:") and "https" in p for p in found)
    assert any(p.startswith("environment: UNSUBSCRIBE_SECRET is not set") for p in found)
    assert len(found) == 7


def test_the_send_tasks_take_campaign_and_template_on_luigis_command_line(luigi_cfg) -> None:
    # a luigi.Config named `campaign` would add global flags --campaign-<key> and make --campaign ambiguous
    from luigi.cmdline_parser import CmdlineParser

    args = ["SendEmailCampaign", "--date", "2026-03-02", "--campaign", "spring", "--template", "spring"]
    with CmdlineParser.global_instance(args) as parser:
        task = parser.get_task_obj()
    assert (task.campaign, task.template) == ("spring", "spring")
