"""The embedded warehouse as operators and parallel workers use it: lifecycle, CLI, concurrency."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tasks.errors import ObjectMissingError
from tasks.warehouse import embedded
from tasks.warehouse.client import WarehouseClient, connect, connect_params
from tasks.warehouse.dialect import EmbeddedDialect


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tasks", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_start_status_stop_and_data_survive_sigkill(tmp_path: Path, luigi_cfg, subprocess_env) -> None:
    directory = tmp_path / "wh"
    luigi_cfg.set("warehouse", "embedded_dir", directory)
    assert cli(subprocess_env, "warehouse", "status").returncode == 3
    started = cli(subprocess_env, "warehouse", "start")
    assert started.returncode == 0 and "running: pid" in started.stdout
    state = embedded.read_state(directory)
    assert state is not None
    assert cli(subprocess_env, "warehouse", "start").stdout == started.stdout  # idempotent: same server
    assert cli(subprocess_env, "sql", "CREATE TABLE public.t (a INTEGER, b VARCHAR)").returncode == 0
    assert cli(subprocess_env, "sql", "INSERT INTO public.t VALUES (1, 'x,y'), (2, NULL)").returncode == 0
    os.kill(state.pid, signal.SIGKILL)  # no shutdown: DuckDB must replay its WAL
    deadline = time.monotonic() + 10
    while embedded.read_state(directory) and time.monotonic() < deadline:
        time.sleep(0.05)
    out = cli(subprocess_env, "sql", "SELECT a, b FROM public.t ORDER BY a")  # restarts the server on demand
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["A,B", '1,"x,y"', "2,"]
    new_state = embedded.read_state(directory)
    assert new_state is not None and new_state.pid != state.pid
    assert cli(subprocess_env, "warehouse", "stop").stdout.strip() == "stopped"
    assert embedded.read_state(directory) is None
    assert cli(subprocess_env, "warehouse", "stop").stdout.strip() == "not running"


def test_sql_errors_are_clear_and_exit_non_zero(warehouse: WarehouseClient, subprocess_env) -> None:
    out = cli(subprocess_env, "sql", "SELECT * FROM analytics.no_such_table")
    assert out.returncode == 1
    # fakesnow sends no query id with errors; Snowflake does, and WarehouseError then names it
    assert "error: ProgrammingError 2003" in out.stderr and "NO_SUCH_TABLE" in out.stderr
    assert "Traceback" not in out.stderr


def test_seed_demo_runs_once_and_refuses_snowflake(warehouse: WarehouseClient, subprocess_env, luigi_cfg) -> None:
    first = cli(subprocess_env, "seed-demo", "--sessions", "3000")
    assert first.returncode == 0, first.stderr
    assert warehouse.execute("SELECT COUNT(*) FROM raw_data.session_timestamp") == [(3000,)]
    again = cli(subprocess_env, "seed-demo", "--sessions", "5000")
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert warehouse.execute("SELECT COUNT(*) FROM raw_data.user_session_channel") == [(3000,)]
    luigi_cfg.set("warehouse", "backend", "snowflake")
    refused = cli(subprocess_env, "seed-demo")
    assert refused.returncode == 2 and "--force" in refused.stdout


def test_several_client_processes_write_at_once(warehouse: WarehouseClient, subprocess_env) -> None:
    warehouse.execute("CREATE TABLE public.hits (worker INTEGER, n INTEGER)")

    def writer(worker: int) -> int:
        sql = f"INSERT INTO public.hits SELECT {worker}, range FROM range(1000)"
        return cli(subprocess_env, "sql", sql).returncode

    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(writer, range(4)))
    assert codes == [0, 0, 0, 0]
    assert warehouse.execute("SELECT COUNT(*), COUNT(DISTINCT worker) FROM public.hits") == [(4000, 4)]


def test_a_missing_table_is_object_missing_and_the_dialect_is_chosen_once(warehouse) -> None:
    with pytest.raises(ObjectMissingError, match="42S02"):
        warehouse.execute("SELECT * FROM analytics.no_such_table", name="probe")
    assert isinstance(warehouse.dialect, EmbeddedDialect)


def test_sessions_autocommit_and_carry_the_project_query_tag(warehouse: WarehouseClient) -> None:
    params = connect_params()
    assert params["autocommit"] is True  # the AUTOCOMMIT session parameter at login, whatever the account says
    assert json.loads(params["session_parameters"]["QUERY_TAG"]) == {"project": "mau-campaign-tasks"}
    other = connect()
    try:
        warehouse.execute("CREATE TABLE public.ac (a INTEGER)")
        warehouse.execute("INSERT INTO public.ac VALUES (1)")
        assert other.execute("SELECT COUNT(*) FROM public.ac") == [(1,)]  # committed without a COMMIT
    finally:
        other.close()


_OPEN_TRANSACTION_AND_HANG = """
import sys, time
from tasks.warehouse.client import connect
client = connect()
client.execute("BEGIN")
client.execute("INSERT INTO public.reaped VALUES (1)")
print("in transaction", flush=True)
time.sleep(600)
"""


def test_a_client_killed_inside_a_transaction_is_rolled_back_by_the_reaper(
        warehouse: WarehouseClient, warehouse_dir: Path, subprocess_env) -> None:
    warehouse.execute("CREATE TABLE public.reaped (a INTEGER)")
    log = warehouse_dir / embedded.LOG_FILE
    before = log.read_text(errors="replace").count("rolled back a session idle in a transaction")
    child = subprocess.Popen([sys.executable, "-c", _OPEN_TRANSACTION_AND_HANG], env=subprocess_env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "in transaction\n", child.stderr
    finally:
        child.kill()  # SIGKILL: no COMMIT, no ROLLBACK, no logout
        child.communicate(timeout=30)
    deadline = time.monotonic() + 60
    while log.read_text(errors="replace").count("rolled back a session idle in a transaction") == before:
        assert time.monotonic() < deadline, "the reaper never rolled the dead session back"
        time.sleep(0.2)
    assert warehouse.execute("SELECT COUNT(*) FROM public.reaped") == [(0,)]  # the dead client's row is gone
    warehouse.execute("INSERT INTO public.reaped VALUES (2)")  # idle outside a transaction: left alone, still usable
    assert warehouse.execute("SELECT a FROM public.reaped") == [(2,)]
