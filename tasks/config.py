"""Thin luigi.Config classes, one per external system, and path resolution.

Sections read: [paths], [state], [warehouse], [elt]. Other modules add their own sections here
([segments], [campaign], [email_campaign], [sms_campaign], [push_campaign], [slack], [schedule]).
Config objects are built inside functions, never at import time. Relative paths in
luigi.cfg are resolved against the project root (the folder holding `tasks/`), so a
run behaves the same from any working directory.

A pure core takes a frozen dataclass of plain values rather than a luigi.Config object, filled
from a section in one way only, `settings(Dataclass, section)`; the wiring around a send
(tasks/campaign/wiring.py and send_config.py) and the alert handlers read their sections directly.
"""

from __future__ import annotations

import configparser
import dataclasses
import datetime
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from tasks.errors import ConfigError
from tasks.files import DIR_MODE, private_dir


def _unreadable(exc: configparser.Error) -> SystemExit:
    """A malformed configuration file: say which file and line, and exit as a config error (2)."""
    sys.stderr.write(f"the luigi configuration cannot be read: {exc}\n  (fix that file: `key = value` lines under "
                     "a [section], each key once per section)\n")
    return SystemExit(2)


try:  # luigi parses its configuration files as it is imported
    import luigi
    import luigi.configuration
except configparser.Error as _exc:
    raise _unreadable(_exc) from None

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_SEGMENTS = "config/sample_segments.csv"  # the bundled demo customers (fictional): never for a real provider


def read_project_config() -> None:
    """Make Luigi read the project's luigi.cfg from any working directory.

    Luigi only looks in the working directory (and LUIGI_CONFIG_PATH): `luigi --module tasks`
    run from elsewhere would silently lose [retcode] (failed runs exit 0) and every section
    here. The project file goes first, so the working directory's file and LUIGI_CONFIG_PATH
    still override it.
    """
    from tasks.luigi_internals import prepend_config_path

    project_cfg = str(PROJECT_ROOT / "luigi.cfg")
    if os.path.isfile(project_cfg):
        try:
            prepend_config_path(project_cfg)
        except configparser.Error as exc:  # the project's own file
            raise _unreadable(exc) from None


def settings(cls: type[T], section: luigi.Config, **overrides: Any) -> T:
    """The dataclass `cls` filled from `section`: each field takes the section's parameter of the
    same name, unless `overrides` gives it (values derived from several keys or the environment);
    a field the section does not have keeps its default."""
    values: dict[str, Any] = {}
    params = {name for name, _ in section.get_params()}  # not hasattr: a Config is a Task (priority, ...)
    for f in dataclasses.fields(cls):
        if f.name in overrides:
            values[f.name] = overrides.pop(f.name)
        elif f.name in params:
            values[f.name] = getattr(section, f.name)
    if overrides:
        raise ConfigError(f"{cls.__name__} has no field(s) {sorted(overrides)}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"[{section.get_task_family()}] cannot fill {cls.__name__}: {exc}") from None


def resolve_path(value: str | os.PathLike[str]) -> Path:
    """An absolute path: `value` as is when absolute, else relative to the project root."""
    path = Path(os.path.expanduser(str(value)))
    return path if path.is_absolute() else PROJECT_ROOT / path


class Section(luigi.Config):
    """A luigi.Config whose luigi.cfg section (and `--<section>-<key>` command-line prefix) is `section`,
    not its class name: the classes are named `*Config`, so none shadows a package of the same name
    (`state`, `warehouse`, `segments`...), while the sections keep the names operators already use."""

    section: ClassVar[str] = ""

    @classmethod
    def get_task_family(cls) -> str:
        return cls.section or cls.__name__


class PathsConfig(Section):
    """Where the package writes at run time."""

    section = "paths"

    var_dir = luigi.Parameter(
        default="var",
        description="Folder for everything written at run time (warehouse files, ledgers, outbox, "
        "results). The environment variable TASKS_VAR_DIR overrides it.",
    )


def var_dir(create: bool = True) -> Path:
    """The run-time folder (TASKS_VAR_DIR wins over [paths] var_dir), created unless `create` is false."""
    path = resolve_path(os.environ.get("TASKS_VAR_DIR") or PathsConfig().var_dir)
    if create:
        private_dir(path)
        os.chmod(path, DIR_MODE)  # holds personal data (segments, ledgers, outbox): owner-only, even if it existed
    return path


class StateConfig(Section):
    """Where campaign state lives: the send ledger, run locks, rate-limit buckets, completion markers."""

    section = "state"

    backend = luigi.ChoiceParameter(
        choices=["sqlite", "postgres"],
        default="sqlite",
        description="sqlite: files under var/ (one host, no server); postgres: one database every host shares "
        "(DSN from the environment variable TASKS_STATE_DSN).",
    )
    pool_size = luigi.IntParameter(
        default=4, description="Postgres connections per process (psycopg_pool), for the sender's threads."
    )
    server_port = luigi.IntParameter(
        default=54329, description="Port of the local Postgres of `python -m tasks state start` (development, tests)."
    )


class WarehouseConfig(Section):
    """The warehouse the ELT runs on: the embedded fakesnow server or a real Snowflake account."""

    section = "warehouse"

    backend = luigi.ChoiceParameter(
        choices=["embedded", "snowflake"],
        default="embedded",
        description="embedded: a local fakesnow server under var/warehouse; snowflake: a real account.",
    )
    connection_name = luigi.Parameter(
        default="",
        description="Name of the connection in ~/.snowflake/connections.toml (backend = snowflake). "
        "Empty: taken from the environment variable SNOWFLAKE_CONN.",
    )
    connections_file = luigi.Parameter(
        default="",
        description="Path of connections.toml; empty means Snowflake's default (~/.snowflake/connections.toml "
        "or SNOWFLAKE_HOME).",
    )
    database = luigi.Parameter(
        default="DEMO",
        description="Database for the embedded backend (a real account takes it from connections.toml).",
    )
    login_timeout = luigi.IntParameter(default=60, description="Seconds to wait for a login.")
    network_timeout = luigi.IntParameter(
        default=600, description="Seconds a statement may take on the network before the connector gives up."
    )
    embedded_port = luigi.IntParameter(
        default=0, description="Port of the embedded server on 127.0.0.1; 0 picks a free one at start."
    )
    embedded_dir = luigi.Parameter(
        default="", description="Folder of the embedded server's DuckDB files and state; empty: <var_dir>/warehouse."
    )
    embedded_network_timeout = luigi.IntParameter(
        default=120,
        description="network_timeout for the embedded backend: fakesnow answers untranslated DuckDB errors "
        "with HTTP 500, which the connector retries until this many seconds pass.",
    )
    embedded_reap_after = luigi.FloatParameter(
        default=30.0,
        description="Seconds after which the embedded server rolls back a session left idle inside a "
        "transaction (its client died inside it).",
    )
    embedded_start_timeout = luigi.FloatParameter(
        default=30.0, description="Seconds to wait for the embedded server to accept logins."
    )
    marker_table = luigi.Parameter(
        default="analytics.table_updates",
        description="schema.table of the marker table recording staged and published builds.",
    )


class EltConfig(Section):
    """The ELT pipeline: which tables to build and how to check them."""

    section = "elt"

    table_specs = luigi.Parameter(
        default="config/tables.toml", description="TOML file listing the tables to build, in order."
    )
    max_row_drop_ratio = luigi.FloatParameter(
        default=0.5,
        description="Default guard: fail when the staged table has fewer than (1 - ratio) x the rows of the "
        "published one. A table spec may override it.",
    )
    builds_table = luigi.Parameter(
        default="analytics.elt_builds",
        description="schema.table with one row per build (status, row count, check results); re-runs read it, "
        "row_count_anomaly compares with it.",
    )
    stale_build_hours = luigi.FloatParameter(
        default=24.0,
        description="A staged build that was never published is dropped by a later publish of the same table "
        "once it is this many hours old (a run that died, or lost to another run).",
    )


class SegmentsConfig(Section):
    """LoadSegments: the customer-segment CSV and how strictly it is validated."""

    section = "segments"

    input_path = luigi.Parameter(
        default=SAMPLE_SEGMENTS,
        description="CSV with columns customer_id, segment, email, phone, device_token (header required).",
    )
    segments = luigi.Parameter(
        default="premium,regular,new",
        description="Comma-separated segment names a row may carry (compared case-insensitively).",
    )
    default_region = luigi.Parameter(
        default="US", description="ISO region for phone numbers written without a +country prefix."
    )
    encoding = luigi.Parameter(
        default="cp1252",
        description="Fallback encoding for rows that are not valid UTF-8; empty: reject such rows.",
    )
    max_reject_ratio = luigi.FloatParameter(
        default=0.05, description="Fail when more than this share of the rows is rejected."
    )
    max_field_length = luigi.IntParameter(
        default=1024, description="A field longer than this many characters rejects its row."
    )
    device_token_min_length = luigi.IntParameter(
        default=32, description="Shortest device token accepted for push."
    )
    device_token_max_length = luigi.IntParameter(
        default=512, description="Longest device token accepted for push."
    )
    chunk_rows = luigi.IntParameter(
        default=50_000,
        description="About this many lines per range read and validated by one thread, and per Parquet row "
        "group (bounds memory).",
    )


class SlackConfig(Section):
    """Failure alerts to a Slack incoming webhook (tasks/ops/alerts.py, tasks/ops/slack.py)."""

    section = "slack"

    webhook_url = luigi.Parameter(
        default="",
        description="Incoming-webhook URL. The environment variable SLACK_WEBHOOK_URL wins and is the "
        "recommended place (the URL is a secret). Empty: alerts go to <var_dir>/alerts/alerts.jsonl.",
    )
    rate_per_second = luigi.FloatParameter(
        default=1.0, description="Sustained messages per second per webhook, shared by all processes of a run."
    )
    burst = luigi.IntParameter(default=5, description="Messages that may be sent at once before the rate applies.")
    timeout = luigi.FloatParameter(default=5.0, description="Seconds each HTTP request to Slack may take.")
    max_retries = luigi.IntParameter(
        default=3, description="Retries after a 429, a 5xx, a timeout or a connection error (dead webhooks: none)."
    )
    backoff = luigi.FloatParameter(
        default=0.5, description="First backoff in seconds after a 5xx or connection error; doubles per retry."
    )
    handler_budget = luigi.FloatParameter(
        default=15.0,
        description="Seconds one alert may take in total (rate-limit wait, requests, retries) before it is "
        "given up and written to the alerts file, so a Slack outage never holds up a worker.",
    )
    max_alerts_per_run = luigi.IntParameter(
        default=10, description="Individual alerts per run; later failures go into one digest at the end of the run."
    )
    alert_on_retry = luigi.BoolParameter(
        default=False,
        description="false: one alert per task per run (its first failure), later attempts are counted and "
        "reported in the end-of-run digest. true: every failed attempt alerts (within max_alerts_per_run).",
    )
    max_error_chars = luigi.IntParameter(
        default=1500, description="The exception message in an alert is cut to this many characters."
    )
    notify_success = luigi.BoolParameter(
        default=False,
        description="true: after a `luigi` run whose day completed, post the run summary (tables, sends, "
        "rejects, alerts) to the same webhook (or the alerts file). Failures alert either way.",
    )


class AlertsConfig(Section):
    """What failure alerts say about their context (owner, luigid link, phone masking)."""

    section = "alerts"

    owner = luigi.Parameter(
        default="", description="Who is told in each alert (a name or @handle). Empty: the environment variable OWNER."
    )
    luigid_url = luigi.Parameter(
        default="",
        description="Base URL of the luigid UI for task links, e.g. http://luigid.internal:8082. Empty: derived "
        "from [core] default-scheduler-url / default-scheduler-host+port when set and not --local-scheduler.",
    )
    phone_region = luigi.Parameter(
        default="US", description="Region used to recognise national-format phone numbers to mask in alerts."
    )


class ChannelCampaignConfig(Section):
    """Parameters shared by the three channel sections below (a base class, not a section of its own)."""

    section = "_channel_campaign"

    provider = luigi.Parameter(default="outbox", description="Who delivers: outbox (a local JSONL file) or the API.")
    base_url = luigi.Parameter(
        default="", description="Provider API base URL; empty: the provider's public URL. Tests point it at a fake."
    )
    rate = luigi.FloatParameter(
        default=0.0,
        description="Requests per second (token bucket refill). 0: the provider's default (outbox 50; seed limits "
        "sendgrid 10, twilio 5, fcm 2).",
    )
    burst = luigi.IntParameter(
        default=0, description="Token bucket size: requests allowed at once. 0: the provider's default (50/50/20/10)."
    )
    concurrency = luigi.IntParameter(
        default=8,
        description="Requests in flight at once, so the rate limit, not the provider's latency, sets the pace.",
    )
    max_attempts = luigi.IntParameter(
        default=2, description="Attempts per recipient for retriable errors known not to have delivered."
    )
    retry_delay = luigi.FloatParameter(
        default=300.0, description="Seconds before a retry (a longer Retry-After / X-RateLimit-Reset wins)."
    )
    backoff = luigi.BoolParameter(default=False, description="Double retry_delay after each failed attempt.")
    connect_timeout = luigi.FloatParameter(default=5.0, description="Seconds to open a connection to the provider.")
    timeout = luigi.FloatParameter(
        default=30.0,
        description="Seconds to wait for the provider's answer once the request is sent; a timeout after that "
        "makes the recipient `unknown` (it may have been delivered), never a blind retry.",
    )
    segment = luigi.Parameter(default="all", description="Default target segment of the task; 'all' = every segment.")
    template = luigi.Parameter(
        default="demo",
        description="Default template name of the task: [campaign] templates_dir/<channel>/<name>.toml (a value "
        "ending in .toml is a path, relative to the project root).",
    )
    max_failure_ratio = luigi.FloatParameter(
        default=0.05, description="The task fails when more than this share of its recipients failed permanently."
    )
    resend_unknown = luigi.BoolParameter(
        default=False,
        description="Re-send recipients left `unknown` (in flight when a run died, or timed out) once on the next "
        "run. May message a customer twice; off by default.",
    )
    retry_count = luigi.IntParameter(
        default=2,
        description="Luigi-level attempts of the whole task (Luigi's retry_count; [scheduler] retry_delay apart, "
        "needs [worker] keep_alive = true). A rerun resumes from the ledger.",
    )
    progress_interval = luigi.FloatParameter(
        default=2.0, description="Seconds between progress updates to the Luigi scheduler (status message, %)."
    )
    shards = luigi.IntParameter(
        default=1,
        description="Split the send into this many Luigi tasks (by a stable hash of customer_id) that any "
        "workers on any hosts may run; they share one rate limit. Keep it unchanged until a send is finished.",
    )
    breaker_min_outcomes = luigi.IntParameter(
        default=500,
        description="The breaker: while the send runs it reads its own delivery events and stops claiming recipients "
        "(the send ends held, the rest stay pending, until `python -m tasks release-send`) once a rate below passes "
        "its limit, the rates taken over at least this many outcomes (delivered, bounced, dropped; SMS delivered, "
        "undelivered, failed). 0: no breaker.",
    )
    max_bounce_rate = luigi.FloatParameter(
        default=0.05,
        description="Breaker: hard bounces (SendGrid type bounce; SMS Twilio 30005, 30006) over this share of the "
        "outcomes hold the send (SendGrid advises under 5%). 0: not checked.",
    )
    max_complaint_rate = luigi.FloatParameter(
        default=0.003,
        description="Breaker: spam complaints over this share of the outcomes hold the send (Gmail and Yahoo require "
        "under 0.3%; Gmail's target is 0.1%). 0: not checked.",
    )
    max_filtered_rate = luigi.FloatParameter(
        default=0.02,
        description="Breaker, SMS: messages filtered by the carrier or Twilio (30007) over this share of the outcomes "
        "hold the send. 0: not checked.",
    )


class QuietHoursCampaignConfig(ChannelCampaignConfig):
    """Quiet hours, for the channels that reach a phone at once (SMS, push); a base class, not a section."""

    section = "_quiet_hours_campaign"

    quiet_hours = luigi.Parameter(
        default="off",
        description="HH:MM-HH:MM in the recipient's local time when nothing is sent (21:00-08:00: send from 8:00 to "
        "21:00, as the TCPA asks of marketing texts); 'off'; 'auto': 21:00-08:00 with a real provider, off with "
        "the outbox. Held recipients are sent when their window opens.",
    )
    default_timezone = luigi.Parameter(
        default="",
        description="IANA zone for recipients whose zone is unknown, or whose number spans zones with no common "
        "window. Empty: such recipients are held, not sent.",
    )
    max_hold_hours = luigi.FloatParameter(
        default=12.0,
        description="The send waits at most this long for held recipients; later ones stay pending and the task "
        "fails saying so, so the next run resumes them.",
    )


class EmailCampaignConfig(ChannelCampaignConfig):
    """The e-mail send (SendEmailCampaign): outbox or SendGrid (SENDGRID_API_KEY)."""

    section = "email_campaign"

    unsubscribe_url = luigi.Parameter(
        default="",
        description="One-click unsubscribe URL with {token}, e.g. https://example.com/u/{token}: every e-mail carries "
        "RFC 8058 List-Unsubscribe and List-Unsubscribe-Post, and the template field unsubscribe_url. The token is "
        "an HMAC of the send id under the environment variable UNSUBSCRIBE_SECRET. Empty: no headers.",
    )
    asm_group_id = luigi.IntParameter(
        default=0, description="SendGrid unsubscribe (suppression) group id sent as asm.group_id; 0: none."
    )
    sandbox = luigi.BoolParameter(
        default=False,
        description="SendGrid mail_settings.sandbox_mode: requests are validated by SendGrid and delivered to nobody.",
    )
    from_email = luigi.Parameter(
        default="campaigns@example.com", description="Sender address (a verified sender in SendGrid)."
    )
    from_name = luigi.Parameter(default="", description="Sender display name; empty: none.")
    batch_size = luigi.IntParameter(default=1000, description="SendGrid personalizations per request (at most 1000).")


class SmsCampaignConfig(QuietHoursCampaignConfig):
    """The SMS send (SendSmsCampaign): outbox or Twilio (TWILIO_* environment variables)."""

    section = "sms_campaign"

    quiet_hours = luigi.Parameter(
        default="auto",
        description="HH:MM-HH:MM in the recipient's local time when no SMS is sent; 'off'; 'auto' (default): "
        "21:00-08:00 (TCPA: marketing texts 8:00-21:00) with a real provider, off with the outbox.",
    )
    reconcile_grace_minutes = luigi.FloatParameter(
        default=60.0,
        description="Twilio: an `unknown` SMS the Messages list does not show this many minutes after its last "
        "attempt goes back to `pending` (sent by the next run); younger ones stay unknown (a queued message "
        "has no DateSent yet).",
    )


class PushCampaignConfig(QuietHoursCampaignConfig):
    """The push send (SendPushNotification): outbox or FCM HTTP v1 (GOOGLE_APPLICATION_CREDENTIALS or
    FCM_ACCESS_TOKEN; FCM_PROJECT_ID)."""

    section = "push_campaign"

    token_refresh_margin = luigi.FloatParameter(
        default=300.0,
        description="With a service account (GOOGLE_APPLICATION_CREDENTIALS): seconds before the access token "
        "expires at which a new one is minted (at most half its lifetime).",
    )


@dataclasses.dataclass(frozen=True)
class CampaignSettings:
    """[campaign]: what every channel send shares.

    suppression_list: CSV with a header `channel,address` (channel email, sms, push or all) of
    addresses never to message, re-read at every send, beside the store the project fills itself;
    empty: none. frequency_cap: at most N messages per customer per channel in any window, across
    campaigns and dates, counted from the ledger: N/<number>d or N/<number>h, or 'off'; over it a
    recipient ends `capped`. templates_dir: folder of the templates, one subfolder per channel.
    """

    suppression_list: str = ""
    frequency_cap: str = "1/7d"
    templates_dir: str = "config/templates"


CAMPAIGN_SECTION = "campaign"


def campaign() -> CampaignSettings:
    """The [campaign] section, read directly rather than through a luigi.Config class: a Config class
    named `campaign` would give Luigi's command line global flags `--campaign-<key>`, and those make
    the send tasks' own `--campaign` an ambiguous abbreviation (argparse refuses the command)."""
    cfg = luigi.configuration.get_config()
    return CampaignSettings(**{
        f.name: cfg.get(CAMPAIGN_SECTION, f.name, f.default) for f in dataclasses.fields(CampaignSettings)
    })


class ScheduleConfig(Section):
    """When and how the cron wrapper (tasks/ops/cron.py) runs the pipeline; `depends_on_past` is read by RunAll."""

    section = "schedule"

    enabled = luigi.BoolParameter(default=True, description="false: the cron wrapper logs that and exits 0.")
    cron_expression = luigi.Parameter(
        default="@daily",
        description="Five-field cron expression or a macro (@daily, @hourly, ...). The run date is the date of "
        "its latest tick at or before now, in `timezone`; `python -m tasks crontab` prints it as a crontab line.",
    )
    start_date = luigi.DateParameter(
        default=datetime.date(2025, 1, 10), description="First run date; earlier dates are never run."
    )
    end_date = luigi.Parameter(default="", description="Last run date (YYYY-MM-DD); empty: no end.")
    timezone = luigi.Parameter(default="UTC", description="IANA time zone in which the run date is computed.")
    catchup = luigi.BoolParameter(
        default=False,
        description="true: also run every day after the last complete one (at most max_catchup_days, never "
        "before start_date), oldest first, one luigi run per day, stopping at a failing day. false: only the run date.",
    )
    max_catchup_days = luigi.IntParameter(
        default=7, description="Most days (the run date included) one catch-up invocation looks back and runs."
    )
    max_active_runs = luigi.IntParameter(
        default=1, description="Wrapper invocations allowed at once; one more exits with [retcode] already_running."
    )
    timeout_seconds = luigi.IntParameter(
        default=10800, description="The luigi process group is killed after this many seconds (0: no limit)."
    )
    depends_on_past = luigi.BoolParameter(
        default=False,
        description="true: RunAll(date) requires RunAll(date - 1 day), down to start_date, so days complete in order.",
    )
    task = luigi.Parameter(default="RunAll", description="Luigi task family the wrapper runs (takes --date).")
    module = luigi.Parameter(default="tasks", description="Module passed to `luigi --module`.")
    workers = luigi.IntParameter(default=3, description="Luigi worker processes (`--workers`).")
    scheduler_url = luigi.Parameter(
        default="",
        description="Central scheduler URL, e.g. http://127.0.0.1:8082. Empty: [core] default_scheduler_url / "
        "default_scheduler_host when set, else --local-scheduler.",
    )
    kill_grace_seconds = luigi.FloatParameter(
        default=10.0, description="After a timeout, seconds between SIGTERM and SIGKILL of the luigi process group."
    )
    log_file = luigi.Parameter(
        default="", description="Log file named in the crontab line; empty: <var_dir>/log/cron.log."
    )


class ResultsConfig(Section):
    """Campaign results in the warehouse: per-recipient outcomes, delivery events and per-day segment loads."""

    section = "results"

    campaign_sends_table = luigi.Parameter(
        default="analytics.campaign_sends",
        description="schema.table with one row per recipient of every send (no address: customer_id joins).",
    )
    campaign_events_table = luigi.Parameter(
        default="analytics.campaign_events",
        description="schema.table with one row per delivery event the providers reported (no address: send_id "
        "and customer_id join); ExportCampaignEvents loads every event stored since its previous export.",
    )
    segment_loads_table = luigi.Parameter(
        default="analytics.segment_loads",
        description="schema.table with one row per LoadSegments date (counts by reason and channel).",
    )


class ReportConfig(Section):
    """The run summary printed at the end of `luigi --module tasks ...` runs and kept in runs.jsonl."""

    section = "report"

    summary = luigi.BoolParameter(
        default=True, description="Print the summary table when a `luigi` command-line run ends, and record the run."
    )


class MetricsConfig(Section):
    """Business metrics (prometheus_client): a node_exporter textfile and, optionally, a Pushgateway."""

    section = "metrics"

    textfile = luigi.Parameter(
        default="",
        description="The .prom file written after every run (node_exporter's textfile collector reads the "
        "folder); empty: <var_dir>/metrics/mau_campaign_tasks.prom. `-` writes none.",
    )
    pushgateway_url = luigi.Parameter(
        default="", description="Pushgateway base URL, e.g. http://127.0.0.1:9091; empty: no push."
    )
    job = luigi.Parameter(default="mau_campaign_tasks", description="The `job` label of pushed metrics.")
    push_timeout = luigi.FloatParameter(default=5.0, description="Seconds a push to the Pushgateway may take.")


class LuigidConfig(Section):
    """The central scheduler started by `python -m tasks luigid` (state under <var_dir>/luigid/)."""

    section = "luigid"

    host = luigi.Parameter(default="127.0.0.1", description="Address luigid listens on (it has no authentication).")
    port = luigi.IntParameter(default=8082, description="Port of luigid's API and UI.")


class WebConfig(Section):
    """The internet-facing endpoint of `python -m tasks web` (waitress): one-click unsubscribe, SendGrid's
    Event Webhook, Twilio's status callbacks, /healthz and /metrics. Secrets come from the environment
    (UNSUBSCRIBE_SECRET, SENDGRID_WEBHOOK_PUBLIC_KEY, TWILIO_AUTH_TOKEN), never from this file."""

    section = "web"

    host = luigi.Parameter(
        default="127.0.0.1", description="Address to listen on; put the endpoint behind your HTTPS proxy."
    )
    port = luigi.IntParameter(default=8090, description="Port to listen on.")
    public_url = luigi.Parameter(
        default="",
        description="The base URL the providers call, as the proxy publishes it (https://hooks.example.com). "
        "Twilio signs this URL: it is what X-Twilio-Signature is checked against, and every SMS carries "
        "StatusCallback = <public_url>/events/twilio?send_id=... when it is set. Empty: no status callbacks, "
        "and /events/twilio answers 404.",
    )
    threads = luigi.IntParameter(
        default=8, description="Worker threads (fixed): each handles one whole request at a time."
    )
    channel_timeout = luigi.FloatParameter(
        default=30.0,
        description="Seconds a connection may stay idle (a client that sends half a request and stalls) "
        "before it is closed.",
    )
    connection_limit = luigi.IntParameter(
        default=100, description="Connections open at once; more wait in the listen backlog."
    )
    max_body_bytes = luigi.IntParameter(
        default=2 * 1024 * 1024, description="Largest request body accepted; a larger one gets 413 unread."
    )
    max_clock_skew = luigi.FloatParameter(
        default=600.0,
        description="Seconds a signed SendGrid batch's timestamp may be old or ahead of this clock (replays "
        "and captured requests older than this get 403).",
    )
