"""ELT at 10,000,000 sessions: MauSummary end to end against the same SQL in bare DuckDB.

Everything lives under <out>/elt/ (its own var dir, luigi.cfg and embedded warehouse
folder), never var/. Setup (not timed): `python -m tasks seed-demo --sessions 10000000`
into the private embedded warehouse, and the same deterministic tables
(tasks.demo.seed.demo_tables) into a bare DuckDB file.

- measured: in a child process with luigi, tasks and the Snowflake connector imported (as
  the baseline child imports duckdb before its clock starts) and the embedded server running,
  the time of `luigi.build([MauSummary(date)], local_scheduler=True)`: dependency checks,
  the freshness check, the CTAS into the build's own staging table, every check of
  config/tables.toml, the builds-table rows, the publish, the comment, the markers and the
  clean-up of superseded staging tables, all through the Snowflake connector and the fakesnow
  server. The connector's import time is measured in the same child and reported beside it.
- baseline: in a child process, the same data work in DuckDB's own dialect on the DuckDB
  file: the freshness query, the CTAS, the one-scan check query (row count, NULLs, the three
  expressions), the duplicate-key query, the published row count, the publish as
  `CREATE OR REPLACE TABLE ... AS SELECT * FROM <staging>` and a `DROP TABLE IF EXISTS` standing in for the clean-up
  statement (it finds nothing to drop: the clean-up's cost, not a real drop).
Goal: ratio <= 1.3. Each run uses another date (so each run stages and publishes).

Also: a no-op `luigi --module tasks RunAll --date D --local-scheduler` once everything is
complete (whole process), as a ratio to `python -c "import luigi, tasks"`.

Peak RSS (bench.common.PeakRss) is the measured process's own: the MauSummary child's (the
client side: the embedded server holding the data is a separate, detached process, not in
it) and the no-op `luigi` process's. Smoke mode: 1,000 sessions, one date, one no-op run.
The measured MauSummary runs with `full_refresh` (MAU is incremental since issue 24: this
figure stays the full build's).

Incremental against full (`elt.mau_incremental_over_full`, its own warehouse under
<out>/elt_incremental/): 20,000,000 sessions over 24 months. After a first full build (never
published), for each of three consecutive run dates, in a fresh child each: the day's
incremental `MauSummary(date)` (clone, delete the last two months, insert them, check,
publish), then `MauSummary(date, full_refresh=True)` on the same data and date (the
baseline). Each child reports the luigi.build time, the build's mode from the builds table and
the published rows; the incremental table must equal the full one row for row. Goal: ratio
<= 0.25. Smoke mode: 2,000 sessions, one date.

    python -m bench.elt [--smoke]
"""

from __future__ import annotations

import contextlib
import datetime as dt
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import common
from tasks.errors import WarehouseError

NAME = "elt"
NOOP_DATE = "2026-06-30"
GOAL = 1.3


@dataclass(frozen=True)
class Sizes:
    sessions: int
    dates: tuple[str, ...]  # one measured run per date
    noop_runs: int


FULL = Sizes(sessions=10_000_000, dates=("2026-06-28", "2026-06-29", "2026-06-30"), noop_runs=3)
SMOKE = Sizes(sessions=1_000, dates=("2026-06-30",), noop_runs=1)
INC_NAME = "elt_incremental"
INC_GOAL = 0.25
INC_MONTHS = 24
INC_FIRST = "2026-06-27"  # the first, full build (the table was never published)
INC_FULL = Sizes(sessions=20_000_000, dates=("2026-06-28", "2026-06-29", "2026-06-30"), noop_runs=0)
INC_SMOKE = Sizes(sessions=2_000, dates=("2026-06-30",), noop_runs=0)

BARE_FRESHNESS = "SELECT MAX(ts), COUNT(ts) FROM raw_data.session_timestamp"
BARE_CTAS = """
CREATE TABLE analytics.{staging} AS
SELECT strftime(s.ts, '%Y-%m') AS month, COUNT(DISTINCT u.userid) AS mau
FROM raw_data.session_timestamp AS s
JOIN raw_data.user_session_channel AS u ON s.sessionid = u.sessionid
WHERE s.ts < CAST(? AS DATE) + INTERVAL 1 DAY
GROUP BY 1
"""
BARE_CHECKS = (
    "SELECT COUNT(*), COALESCE(SUM(CASE WHEN month IS NULL OR mau IS NULL THEN 1 ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN NOT COALESCE((mau > 0), FALSE) THEN 1 ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN NOT COALESCE((month <= strftime(CAST(? AS DATE), '%Y-%m')), FALSE) THEN 1 ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN NOT COALESCE((LENGTH(month) = 7), FALSE) THEN 1 ELSE 0 END), 0) "
    "FROM analytics.{staging}",
    "SELECT COUNT(*) FROM (SELECT month FROM analytics.{staging} GROUP BY month HAVING COUNT(*) > 1) AS d",
)


def _paths(sessions: int) -> tuple[Path, Path]:
    """The embedded warehouse folder and the bare DuckDB file holding `sessions` sessions."""
    base = common.out_dir() / NAME
    return base / f"warehouse_{sessions}", base / f"bare_{sessions}.duckdb"


def _env(sessions: int) -> dict[str, str]:
    warehouse, _ = _paths(sessions)
    return common.private_env(NAME, {
        "warehouse": {"embedded_dir": warehouse, "database": "BENCH"},
        "schedule": {"depends_on_past": "false"},
        # RunAll also sends the day's campaigns (the bundled 1,000-customer sample) to the outbox
        **{f"{ch}_campaign": {"provider": "outbox", "rate": 2000, "burst": 200} for ch in ("email", "sms", "push")},
    })


def child(argv: list[str]) -> None:
    mode, date = argv[0], dt.date.fromisoformat(argv[1])
    if mode in INC_CHILDREN:
        INC_CHILDREN[mode](date, argv[2:])
        return
    if mode == "luigi":
        import luigi

        from tasks import MauSummary

        imported = time.perf_counter()
        import snowflake.connector  # noqa: F401 (the client library, imported before the clock as duckdb is)

        connector_import = time.perf_counter() - imported

        ran: list[str] = []
        luigi.Task.event_handler(luigi.Event.SUCCESS)(lambda task: ran.append(task.task_family))
        started = time.perf_counter()
        ok = luigi.build([MauSummary(date=date, full_refresh=True)], local_scheduler=True, workers=1,
                         log_level="WARNING")
        seconds = time.perf_counter() - started
        if not ok:
            raise SystemExit("MauSummary failed")
        if not {"StageTable", "PublishTable"} <= set(ran):  # complete already: the reset did not take
            raise SystemExit(f"MauSummary({date}) staged and published nothing (tasks run: {ran}); nothing measured")
        common.child_report({"seconds": seconds, "connector_import_s": connector_import})
        return
    import duckdb

    conn = duckdb.connect(argv[2])
    staging = f"temp_mau_summary__{date:%Y%m%d}"
    started = time.perf_counter()
    conn.execute("CREATE SCHEMA IF NOT EXISTS analytics")
    conn.execute(BARE_FRESHNESS).fetchone()
    conn.execute(BARE_CTAS.format(staging=staging), [date.isoformat()])
    rows, nulls, *violations = conn.execute(BARE_CHECKS[0].format(staging=staging), [date.isoformat()]).fetchone()
    (dupes,) = conn.execute(BARE_CHECKS[1].format(staging=staging)).fetchone()
    published = conn.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'analytics' "
                             "AND table_name = 'mau_summary'").fetchone()[0]
    if published:
        conn.execute("SELECT COUNT(*) FROM analytics.mau_summary").fetchone()
    conn.execute(f"CREATE OR REPLACE TABLE analytics.mau_summary AS SELECT * FROM analytics.{staging}")
    conn.execute("DROP TABLE IF EXISTS analytics.temp_mau_summary__old")
    seconds = time.perf_counter() - started
    conn.close()
    assert rows and not nulls and not dupes and not any(violations)
    common.child_report({"seconds": seconds, "rows": rows})


def _prepare(env: dict[str, str], sessions: int) -> None:
    _, bare = _paths(sessions)
    common.run_measured([common.PYTHON, "-m", "tasks", "seed-demo", "--sessions", str(sessions)], env).check()
    if not bare.exists():
        import duckdb

        from tasks.demo.seed import demo_tables

        sessions_tbl, channels_tbl = demo_tables(sessions)
        tmp = bare.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        conn = duckdb.connect(str(tmp))
        conn.execute("CREATE SCHEMA raw_data")
        conn.register("s", sessions_tbl)
        conn.register("u", channels_tbl)
        conn.execute("CREATE TABLE raw_data.session_timestamp AS SELECT sessionid, ts FROM s")
        conn.execute("CREATE TABLE raw_data.user_session_channel AS SELECT userid::INTEGER AS userid, sessionid, "
                     "channel FROM u")
        conn.close()
        tmp.rename(bare)


def _reset(env: dict[str, str], sizes: Sizes) -> None:
    """Forget earlier builds of the measured dates, so every run stages and publishes (the child checks it did)."""
    import duckdb

    _, bare = _paths(sizes.sessions)
    conn = duckdb.connect(str(bare))
    tables = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'analytics'")
    for (name,) in tables.fetchall():
        conn.execute(f"DROP TABLE analytics.{name}")
    conn.close()
    dates = ", ".join(f"'{d}'" for d in sizes.dates)
    subprocess.run([common.PYTHON, "-m", "tasks", "sql",
                    f"DELETE FROM analytics.table_updates WHERE RIGHT(update_id, 10) IN ({dates})"],
                   cwd=common.REPO, env=env, check=False, capture_output=True)


def main() -> list[dict]:
    sizes = common.pick(FULL, SMOKE)
    env = _env(sizes.sessions)
    try:
        entries = _run(env, sizes)
    finally:
        from tasks.warehouse import embedded

        embedded.stop(_paths(sizes.sessions)[0])  # the private server holds ~1 GB; never leave it behind
    return entries + incremental_main()


def _run(env: dict[str, str], sizes: Sizes) -> list[dict]:
    _prepare(env, sizes.sessions)
    _reset(env, sizes)
    _, bare = _paths(sizes.sessions)
    luigi_s, bare_s, rss, bare_rss, imports_s = [], [], [], [], []
    for date in sizes.dates:
        report = common.run_child("bench.elt", ["luigi", date], env)
        luigi_s.append(report["seconds"])
        imports_s.append(report["connector_import_s"])
        rss.append(report["peak_rss_mb"])
        report = common.run_child("bench.elt", ["duckdb", date, str(bare)], env)
        bare_s.append(report["seconds"])
        bare_rss.append(report["peak_rss_mb"])
    baseline = statistics.median(bare_s)
    # the no-op: make the whole day complete once (tables and the three sends), then rerun it
    runall = [common.PYTHON, "-m", "luigi", "--module", "tasks", "RunAll", "--date", NOOP_DATE, "--local-scheduler"]
    common.timed_wall(runall, env)
    noop = [common.timed_wall(runall, env) for _ in range(sizes.noop_runs)]
    imports = [common.timed_wall([common.PYTHON, "-c", "import luigi, tasks"], env) for _ in range(sizes.noop_runs)]
    entries = [
        common.entry(f"{NAME}.mau_summary_over_bare_duckdb", values=luigi_s, unit="s", baseline=baseline,
                     goal=f"ratio <= {GOAL}", goal_met=statistics.median(luigi_s) / baseline <= GOAL,
                     peak_rss_mb=max(rss), baseline_peak_rss_mb=max(bare_rss), sessions=sizes.sessions,
                     baseline_runs=[round(x, 3) for x in bare_s],
                     connector_import_runs=[round(x, 3) for x in imports_s]),
        common.entry(f"{NAME}.runall_noop_over_import", values=[r.seconds for r in noop], unit="s",
                     baseline=statistics.median(r.seconds for r in imports),
                     peak_rss_mb=max(r.peak_rss_mb for r in noop),
                     baseline_peak_rss_mb=max(r.peak_rss_mb for r in imports),
                     import_runs=[round(r.seconds, 3) for r in imports]),
    ]
    return common.publish(entries)


def _inc_seed(_: dt.date, args: list[str]) -> None:
    """Child: load `sessions` demo sessions over INC_MONTHS months into the private warehouse (once)."""
    from tasks.demo import seed
    from tasks.warehouse import session

    sessions = int(args[0])
    with session() as client:
        if not seed.raw_tables_present(client):
            seed.load(client, *seed.demo_tables(sessions, months=INC_MONTHS), common.out_dir() / INC_NAME / "seed")
        client.execute("DROP TABLE IF EXISTS analytics.mau_summary")  # every run starts never published
        for sql in ("DELETE FROM analytics.elt_builds WHERE table_name = 'analytics.mau_summary'",
                    "DELETE FROM analytics.table_updates WHERE update_id LIKE '%:analytics.mau_summary:%'"):
            with contextlib.suppress(WarehouseError):  # absent on the first run
                client.execute(sql)
    common.child_report({"sessions": sessions})


def _inc_build(date: dt.date, args: list[str]) -> None:
    """Child: MauSummary(date) (incremental) or with full_refresh; its time, mode and published rows."""
    import luigi

    from tasks import MauSummary
    from tasks.warehouse import session

    full = args[0] == "full"
    import snowflake.connector  # noqa: F401 (imported before the clock, as in the luigi child above)

    started = time.perf_counter()
    ok = luigi.build([MauSummary(date=date, full_refresh=full)], local_scheduler=True, workers=1,
                     log_level="WARNING")
    seconds = time.perf_counter() - started
    if not ok:
        raise SystemExit(f"MauSummary({date}, full_refresh={full}) failed")
    with session() as client:
        ((mode,),) = client.execute("SELECT mode FROM analytics.elt_builds WHERE run_date = %(d)s AND status = "
                                    "'published' ORDER BY created_at DESC LIMIT 1", {"d": date.isoformat()})
        rows = [[m, int(v)] for m, v in client.execute("SELECT month, mau FROM analytics.mau_summary ORDER BY 1")]
    common.child_report({"seconds": seconds, "mode": mode, "rows": rows})


INC_CHILDREN = {"inc_seed": _inc_seed, "inc_build": _inc_build}


def incremental_main() -> list[dict]:
    """The incremental MAU build against a full build of the same data and date, in the same run."""
    sizes = common.pick(INC_FULL, INC_SMOKE)
    warehouse = common.out_dir() / INC_NAME / f"warehouse_{sizes.sessions}_{INC_MONTHS}m"
    env = common.private_env(INC_NAME, {"warehouse": {"embedded_dir": warehouse, "database": "BENCH"}})
    try:
        common.run_child("bench.elt", ["inc_seed", INC_FIRST, str(sizes.sessions)], env, timeout=1800)
        first = common.run_child("bench.elt", ["inc_build", INC_FIRST, "full"], env, timeout=1800)
        if first["mode"] != "full":
            raise SystemExit(f"the first build of a never published table was {first['mode']}")
        inc, full, equal = [], [], []
        for date in sizes.dates:
            a = common.run_child("bench.elt", ["inc_build", date, "incremental"], env, timeout=1800)
            b = common.run_child("bench.elt", ["inc_build", date, "full"], env, timeout=1800)
            if (a["mode"], b["mode"]) != ("incremental", "full"):
                raise SystemExit(f"{date}: built {a['mode']} and {b['mode']}, not incremental and full")
            inc.append(a)
            full.append(b)
            equal.append(a["rows"] == b["rows"])
    finally:
        from tasks.warehouse import embedded

        embedded.stop(warehouse)
    baseline = statistics.median(r["seconds"] for r in full)
    ratio = statistics.median(r["seconds"] for r in inc) / baseline
    print(f"incremental / full MAU build: {ratio:.3f} (goal <= {INC_GOAL}); row for row equal: {all(equal)}")
    return common.publish([common.entry(
        f"{NAME}.mau_incremental_over_full", values=[r["seconds"] for r in inc], unit="s", baseline=baseline,
        goal=f"ratio <= {INC_GOAL} and the same rows", goal_met=ratio <= INC_GOAL and all(equal),
        peak_rss_mb=max(r["peak_rss_mb"] for r in inc), baseline_peak_rss_mb=max(r["peak_rss_mb"] for r in full),
        sessions=sizes.sessions, months=INC_MONTHS, rows_equal=all(equal), months_published=len(inc[-1]["rows"]),
        baseline_runs=[round(r["seconds"], 3) for r in full], first_full_s=round(first["seconds"], 3),
    )])


if __name__ == "__main__":
    common.main_or_child(sys.argv[1:], main, child, "bench.elt")
