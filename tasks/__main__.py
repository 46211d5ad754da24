"""The operator's command line: `python -m tasks <command>`.

  warehouse start|stop|status   the embedded warehouse server
  state start|stop|status       a local Postgres for [state] backend = postgres (development, tests)
  sql "SELECT ..."              run one statement, print rows as CSV with a header
  seed-demo [--sessions N]      load deterministic demo raw data (embedded only, unless --force)
  cron [--date D]               the cron wrapper: run the scheduled day(s) once (tasks/ops/cron.py)
  crontab                       print the crontab line for [schedule]
  luigid [--port P]             the central scheduler and its UI, state under var/luigid/
  check-config                  every problem of the effective luigi.cfg at once (exit 2 if any)
  reconcile [--date D] [--campaign C] settle `unknown` SMS with Twilio's Messages list
  status [--date D] [--days N] [--live]  what ran: tables, sends, rejects, alerts, runs (exit 1 if the last run failed)
  suppress add|remove|list|import   the suppression store (addresses never to message)
  web [--host H] [--port P]     the internet-facing endpoint (waitress): one-click unsubscribe, delivery events
  unsubscribe-server            the same as `web` (its old name)
  events ingest-outbox          store the delivery events the demo outbox wrote (var/outbox/events/)
  release-send --date D --campaign C --channel CH  let a send its breaker held go on, breaker off (recorded)
  preview [--date D]            dry run of the sends: counts per future state, first messages rendered

A command without --date takes the day the schedule is on (tasks.params.default_run_date: the date of
the latest [schedule] cron_expression tick in [schedule] timezone, as the cron wrapper computes it).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import logging
import sys

from tasks import config
from tasks.errors import TasksError

log = logging.getLogger("tasks")

_DAY = "the day the schedule is on, in [schedule] timezone"


def _warehouse(args: argparse.Namespace) -> int:
    from tasks.warehouse import embedded
    from tasks.warehouse.client import embedded_dir

    cfg = config.WarehouseConfig()
    if cfg.backend != "embedded":
        print(f"[warehouse] backend = {cfg.backend}: there is no embedded server to manage")
        return 0 if args.action == "status" else 2
    directory = embedded_dir()
    if args.action == "start":
        state = embedded.ensure_running(
            directory, cfg.embedded_port, cfg.embedded_start_timeout, cfg.embedded_reap_after
        )
        print(f"embedded warehouse running: pid {state.pid}, 127.0.0.1:{state.port}, files in {directory}")
    elif args.action == "stop":
        print("stopped" if embedded.stop(directory) else "not running")
    else:
        found = embedded.read_state(directory)
        if found is None:
            print("not running")
            return 3
        print(f"running: pid {found.pid}, 127.0.0.1:{found.port}, files in {directory}")
    return 0


def _state(args: argparse.Namespace) -> int:
    from tasks.state.server import default_server

    server = default_server(config.var_dir(), args.port or config.StateConfig().server_port)
    if args.action == "start":
        dsn = server.start()
        print(f"local Postgres running on its Unix socket only (port {server.port}), data in {server.data_dir}")
        print(f"export TASKS_STATE_DSN={dsn}")
    elif args.action == "stop":
        print("stopped" if server.stop() else "not running")
    else:
        if not server.running():
            print("not running")
            return 3
        print(f"running on its Unix socket only (port {server.port}), data in {server.data_dir}")
        print(f"export TASKS_STATE_DSN={server.dsn}")
    return 0


def _sql(args: argparse.Namespace) -> int:
    from tasks.warehouse import session

    with session() as client:
        names, rows = client.columns(args.statement)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    if names:
        writer.writerow(names)
        writer.writerows(rows)
    return 0


def _seed_demo(args: argparse.Namespace) -> int:
    from tasks.demo import seed
    from tasks.warehouse import session

    cfg = config.WarehouseConfig()
    if cfg.backend == "snowflake" and not args.force:
        print("refusing to seed demo data into a real Snowflake account; pass --force if you mean it")
        return 2
    with session() as client:
        if seed.raw_tables_present(client) and not args.replace:
            print("raw tables already hold data; nothing to do (--replace to reload)")
            return 0
        sessions = seed.DEFAULT_SESSIONS if args.sessions is None else args.sessions
        sessions_tbl, channels_tbl = seed.demo_tables(sessions, args.seed)
        seed.load(client, sessions_tbl, channels_tbl, config.var_dir() / "seed")
    print(f"seeded {sessions} sessions")
    return 0


def _cron(args: argparse.Namespace) -> int:
    from tasks.ops import cron

    return cron.cron(run_date=args.date)


def _crontab(args: argparse.Namespace) -> int:
    from tasks.ops import cron

    print(cron.crontab_line(cron.load_schedule()))
    return 0


def _luigid(args: argparse.Namespace) -> int:
    from tasks.ops import luigid

    return luigid.luigid_main(port=args.port, host=args.host)


def _check_config(args: argparse.Namespace) -> int:
    from tasks import check_config

    return check_config.main()


def _reconcile(args: argparse.Namespace) -> int:
    from tasks.campaign import reconcile, segments
    from tasks.params import default_run_date

    args.date = args.date or default_run_date()
    customers = segments.output_dir(config.var_dir(), args.date) / segments.CUSTOMERS_FILE
    if not customers.exists():
        print(f"no customers for {args.date} ({customers}): LoadSegments has not run for that date")
        return 1
    results, ok = reconcile.reconcile_day(args.date, args.campaign, customers)
    for result in results:
        print(result)
    if not results:
        print(f"nothing to reconcile: no unknown recipient on {args.date}")
    return 0 if ok else 1


def _status(args: argparse.Namespace) -> int:
    from tasks import status

    return status.main(args.date, args.days, live=args.live)


def _suppress(args: argparse.Namespace) -> int:
    from tasks.campaign import compliance
    from tasks.channels.suppressions import Suppression

    region = config.SegmentsConfig().default_region
    with compliance.open_suppressions(config.var_dir()) as store:
        if args.action == "list":
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(["channel", "kind", "value", "source", "reason", "created_at"])
            for e in store.entries():
                created = datetime.datetime.fromtimestamp(e.created_at, datetime.UTC).isoformat(timespec="seconds")
                writer.writerow([e.channel, e.kind, e.value, e.source, e.reason or "", created])
            return 0
        if args.action == "import":
            if not args.values:
                print("suppress import FILE: name a CSV with the header channel,address", file=sys.stderr)
                return 2
            listed = compliance.read_suppression_list(args.values[0], region)
            added = store.add(Suppression(ch, "address", value, "import", args.reason or f"imported from "
                                          f"{args.values[0]}") for ch, value in sorted(listed))
            print(f"{added} added, {len(listed) - added} already suppressed")
            return 0
        if len(args.values) != 2:
            print(f"suppress {args.action} CHANNEL ADDRESS (or --customer CHANNEL CUSTOMER_ID)", file=sys.stderr)
            return 2
        channel, value = args.values
        if args.customer:
            entry = (channel.strip().lower(), value.strip()) if channel.strip().lower() in (
                "email", "sms", "push", "all") and value.strip() else None
        else:
            entry = compliance.parse_entry(channel, value, region)
        if entry is None:
            print(f"not a valid {channel} {'customer id' if args.customer else 'address'} (channel: email, sms, "
                  f"push or all)", file=sys.stderr)
            return 2
        kind = "customer" if args.customer else "address"
        if args.action == "add":
            added = store.add([Suppression(entry[0], kind, entry[1], "cli", args.reason or "added by hand")])
            print("added" if added else "already suppressed")
        else:
            print("removed" if store.remove(entry[0], kind, entry[1]) else "not suppressed")
    return 0


def _web(args: argparse.Namespace) -> int:
    from tasks.campaign import web

    web.serve(args.host, args.port, config.var_dir())
    return 0


def _events(args: argparse.Namespace) -> int:
    from tasks.campaign import web
    from tasks.campaign.delivery import apply_delivery_events

    stored, seen = web.ingest_outbox(config.var_dir())
    applied = apply_delivery_events(config.var_dir())
    print(f"{stored} new event(s) stored of {seen} in the outbox's event files; {applied.outcomes} delivery "
          f"outcome(s) recorded, {applied.suppressed} address(es) suppressed")
    return 0


def _release_send(args: argparse.Namespace) -> int:
    import getpass
    import os

    from tasks.campaign import wiring
    from tasks.channels.send_result import utc_label

    label = f"{args.channel} campaign {args.campaign!r} {args.date}"
    try:
        who = getpass.getuser()
    except OSError:  # no login name in the environment nor the password database: the uid says who
        who = f"uid {os.getuid()}"
    hold = wiring.release_send(args.date, args.campaign, args.channel, who)
    if hold is None:
        print(f"{label} is not held by its breaker: nothing to release")
        return 1
    print(f"{label}: held {utc_label(hold.held_at)} ({hold.reason}); released {utc_label(hold.released_at or 0)} "
          f"by {hold.released_by}: the next run sends its pending recipients with the breaker off")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from tasks.campaign import preview, send_config
    from tasks.params import default_run_date

    args.date = args.date or default_run_date()
    channels = [args.channel] if args.channel else list(send_config.CHANNELS)
    reports = preview.preview(args.date, args.campaign, channels, template=args.template or "",
                              segment=args.segment or "")
    for report in reports.values():
        print(preview.summary_line(report))
    folder = preview.preview_dir(config.var_dir(), args.date, args.campaign)
    print(f"first rendered messages (addresses masked): {folder}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tasks", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_operations(sub)
    _add_campaign(sub)
    return parser


def _add_operations(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The warehouse, the state database, the schedule and what ran."""
    wh = sub.add_parser("warehouse", help="manage the embedded warehouse server")
    wh.add_argument("action", choices=["start", "stop", "status"])
    wh.set_defaults(func=_warehouse)
    st = sub.add_parser("state", help="manage a local Postgres for the shared campaign state")
    st.add_argument("action", choices=["start", "stop", "status"])
    st.add_argument("--port", type=int, help="default: [state] server_port (54329)")
    st.set_defaults(func=_state)
    sql = sub.add_parser("sql", help="run one SQL statement and print the rows as CSV")
    sql.add_argument("statement")
    sql.set_defaults(func=_sql)
    seed = sub.add_parser("seed-demo", help="load deterministic demo raw data")
    seed.add_argument("--sessions", type=int,
                      help="how many sessions to generate (default: DEFAULT_SESSIONS of tasks/demo/seed.py)")
    seed.add_argument("--seed", type=int, default=42)
    seed.add_argument("--replace", action="store_true", help="reload even if the raw tables hold data")
    seed.add_argument("--force", action="store_true", help="allow backend = snowflake")
    seed.set_defaults(func=_seed_demo)
    cron = sub.add_parser("cron", help="the cron wrapper: run the scheduled day(s) once")
    cron.add_argument("--date", type=datetime.date.fromisoformat, help="run this date instead of the scheduled one")
    cron.set_defaults(func=_cron)
    sub.add_parser("crontab", help="print the crontab line for [schedule]").set_defaults(func=_crontab)
    luigid = sub.add_parser("luigid", help="run the central scheduler (foreground)")
    luigid.add_argument("--port", type=int, help="default: [luigid] port (8082)")
    luigid.add_argument("--host", help="default: [luigid] host (127.0.0.1)")
    luigid.set_defaults(func=_luigid)
    sub.add_parser("check-config", help="report every configuration problem (exit 2 if any)").set_defaults(
        func=_check_config
    )
    st = sub.add_parser("status", help="what ran: tables, sends, rejects, alerts, runs")
    st.add_argument("--date", type=datetime.date.fromisoformat, help=f"the last day shown (default: {_DAY})")
    st.add_argument("--days", type=int, default=1, help="how many days up to --date (default 1)")
    st.add_argument("--live", action="store_true", help="ask the warehouse for the tables instead of showing what "
                    "the day's last run recorded at its end")
    st.set_defaults(func=_status)


def _add_campaign(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The sends' operations: reconcile, suppressions, the web endpoint, delivery events, the dry run."""
    rec = sub.add_parser("reconcile", help="settle unknown SMS with Twilio's Messages list")
    rec.add_argument("--date", type=datetime.date.fromisoformat, help=f"the send date, YYYY-MM-DD (default: {_DAY})")
    rec.add_argument("--campaign", help="only this campaign (default: every send of the date, and `demo`)")
    rec.set_defaults(func=_reconcile)
    sup = sub.add_parser("suppress", help="the suppression store: add, remove, list, import FILE")
    sup.add_argument("action", choices=["add", "remove", "list", "import"])
    sup.add_argument("values", nargs="*", help="add/remove: CHANNEL ADDRESS (channel email, sms, push or all); "
                     "import: FILE (CSV channel,address)")
    sup.add_argument("--customer", action="store_true", help="add/remove a customer id instead of an address")
    sup.add_argument("--reason", help="why (kept with the entry)")
    sup.set_defaults(func=_suppress)
    for name, text in (("web", "serve one-click unsubscribe, SendGrid and Twilio delivery events, /healthz"),
                       ("unsubscribe-server", "the same as `web` (its old name)")):
        web = sub.add_parser(name, help=text)
        web.add_argument("--port", type=int, help="default: [web] port (8090)")
        web.add_argument("--host", help="default: [web] host (127.0.0.1); put it behind your HTTPS proxy")
        web.set_defaults(func=_web)
    events = sub.add_parser("events", help="delivery events: ingest-outbox stores the demo outbox's")
    events.add_argument("action", choices=["ingest-outbox"])
    events.set_defaults(func=_events)
    rel = sub.add_parser("release-send", help="let a send its breaker held go on with the breaker off (recorded)")
    rel.add_argument("--date", type=datetime.date.fromisoformat, required=True, help="the send date, YYYY-MM-DD")
    rel.add_argument("--campaign", required=True)
    rel.add_argument("--channel", choices=["email", "sms", "push"], required=True)
    rel.set_defaults(func=_release_send)
    prev = sub.add_parser("preview", help="dry run: counts per future state and the first rendered messages")
    prev.add_argument("--date", type=datetime.date.fromisoformat, help=f"the send date (default: {_DAY})")
    prev.add_argument("--campaign", default="demo")
    prev.add_argument("--channel", choices=["email", "sms", "push"])
    prev.add_argument("--template", help="template name (default: the channel's [<channel>_campaign] template)")
    prev.add_argument("--segment", help="default: the channel's [<channel>_campaign] segment")
    prev.set_defaults(func=_preview)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("snowflake.connector").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except TasksError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def cron_main() -> None:
    """Console script `tasks-cron`: the same as `python -m tasks cron`."""
    sys.exit(main(["cron", *sys.argv[1:]]))


if __name__ == "__main__":
    sys.exit(main())
