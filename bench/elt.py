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

    python -m bench.elt [--smoke]
"""

from __future__ import annotations

import datetime as dt
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import common

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
    if mode == "luigi":
        import luigi

        from tasks import MauSummary

        imported = time.perf_counter()
        import snowflake.connector  # noqa: F401 (the client library, imported before the clock as duckdb is)

        connector_import = time.perf_counter() - imported

        ran: list[str] = []
        luigi.Task.event_handler(luigi.Event.SUCCESS)(lambda task: ran.append(task.task_family))
        started = time.perf_counter()
        ok = luigi.build([MauSummary(date=date)], local_scheduler=True, workers=1, log_level="WARNING")
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
        return _run(env, sizes)
    finally:
        from tasks.warehouse import embedded

        embedded.stop(_paths(sizes.sessions)[0])  # the private server holds ~1 GB; never leave it behind


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


if __name__ == "__main__":
    common.main_or_child(sys.argv[1:], main, child, "bench.elt")
