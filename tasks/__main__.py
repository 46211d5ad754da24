"""The operator's command line: `python -m tasks <command>`.

  warehouse start|stop|status   the embedded warehouse server
  state start|stop|status       a local Postgres for [state] backend = postgres (development, tests)
  sql "SELECT ..."              run one statement, print rows as CSV with a header
  seed-demo [--sessions N]      load deterministic demo raw data (embedded only, unless --force)
  cron [--date D]               the cron wrapper: run the scheduled day(s) once (tasks/ops/cron.py)
  crontab                       print the crontab line for [schedule]
  luigid [--port P]             the central scheduler and its UI, state under var/luigid/
  check-config                  every problem of the effective luigi.cfg at once (exit 2 if any)
  reconcile --date D [--campaign C]   settle `unknown` SMS with Twilio's Messages list
  status [--date D] [--days N]  what ran: tables, sends, rejects, alerts, runs (exit 1 if the last run failed)
"""

from __future__ import annotations

import argparse
import csv
import datetime
import logging
import sys

from tasks import config
from tasks.demo.seed import DEFAULT_SESSIONS
from tasks.errors import TasksError

log = logging.getLogger("tasks")


def _warehouse(args: argparse.Namespace) -> int:
    from tasks.warehouse import embedded
    from tasks.warehouse.client import embedded_dir

    cfg = config.warehouse()
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
        state = embedded.read_state(directory)
        if state is None:
            print("not running")
            return 3
        print(f"running: pid {state.pid}, 127.0.0.1:{state.port}, files in {directory}")
    return 0


def _state(args: argparse.Namespace) -> int:
    from tasks.state.server import default_server

    server = default_server(config.var_dir(), args.port or config.state().server_port)
    if args.action == "start":
        dsn = server.start()
        print(f"local Postgres running on 127.0.0.1:{server.port}, data in {server.data_dir}")
        print(f"export TASKS_STATE_DSN={dsn}")
    elif args.action == "stop":
        print("stopped" if server.stop() else "not running")
    else:
        if not server.running():
            print("not running")
            return 3
        print(f"running on 127.0.0.1:{server.port}, data in {server.data_dir}")
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

    cfg = config.warehouse()
    if cfg.backend == "snowflake" and not args.force:
        print("refusing to seed demo data into a real Snowflake account; pass --force if you mean it")
        return 2
    with session() as client:
        if seed.raw_tables_present(client) and not args.replace:
            print("raw tables already hold data; nothing to do (--replace to reload)")
            return 0
        sessions_tbl, channels_tbl = seed.demo_tables(args.sessions, args.seed)
        seed.load(client, sessions_tbl, channels_tbl, config.var_dir() / "seed")
    print(f"seeded {args.sessions} sessions")
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

    return status.main(args.date, args.days)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tasks", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
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
    seed.add_argument("--sessions", type=int, default=DEFAULT_SESSIONS)
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
    rec = sub.add_parser("reconcile", help="settle unknown SMS with Twilio's Messages list")
    rec.add_argument("--date", type=datetime.date.fromisoformat, required=True, help="the send date, YYYY-MM-DD")
    rec.add_argument("--campaign", help="only this campaign (default: every send of the date, and `demo`)")
    rec.set_defaults(func=_reconcile)
    st = sub.add_parser("status", help="what ran: tables, sends, rejects, alerts, runs")
    st.add_argument("--date", type=datetime.date.fromisoformat, help="the last day shown (default: today, UTC)")
    st.add_argument("--days", type=int, default=1, help="how many days up to --date (default 1)")
    st.set_defaults(func=_status)
    return parser


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
