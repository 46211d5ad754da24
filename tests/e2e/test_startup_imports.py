"""What a command pays before it does anything: `import tasks` (every `luigi --module tasks` and every
`python -m tasks` start) loads no heavy library, and still registers every task class, the alert
handlers and the run summary.

Each check runs in a fresh interpreter (a module imported by pytest or another test would hide a
regression). No timing here: bench/cli.py measures the start-up against `import luigi`.
"""

from __future__ import annotations

import json
import subprocess

import pytest

import tasks
from tests.conftest import PYTHON, REPO

pytestmark = pytest.mark.slow  # fresh interpreters and `luigi` processes

# what `import tasks` loaded before the campaign cores, the validators, the limiter and the metrics were
# imported where they are used; the warehouse client, the state backend's driver and the provider auth
# were lazy already and must stay so
HEAVY = ("pandas", "pyarrow", "numpy", "numba", "snowflake", "psycopg", "psycopg_pool", "google", "phonenumbers",
         "email_validator", "prometheus_client", "pyrate_limiter", "sqlglot", "duckdb", "fakesnow", "croniter")
# `status` reads the stored day through the campaign's cores (pyarrow and numpy come with them), but
# never needs pandas (pyarrow.dataset), the limiter, the phone tables or the metrics client; with the
# warehouse stopped it does not load the connector either
STATUS_NEVER = ("pandas", "snowflake", "psycopg", "google", "phonenumbers", "email_validator", "prometheus_client",
                "pyrate_limiter", "numba", "sqlglot", "fakesnow")


def _loaded_after(code: str, env: dict[str, str]) -> set[str]:
    """The top-level names of the modules loaded once `code` ran in a fresh interpreter."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([PYTHON, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {name.split(".")[0] for name in json.loads(proc.stdout.strip().splitlines()[-1])}


def test_import_tasks_loads_no_heavy_library(subprocess_env: dict[str, str]) -> None:
    loaded = _loaded_after("import tasks", subprocess_env)
    assert "luigi" in loaded and "tasks" in loaded
    assert sorted(set(HEAVY) & loaded) == []


def test_cli_help_loads_no_heavy_library(subprocess_env: dict[str, str]) -> None:
    code = ("import contextlib, io\nfrom tasks import __main__ as cli\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):\n"
            "    cli.main(['--help'])\nassert 'status' in out.getvalue()")
    assert sorted(set(HEAVY) & _loaded_after(code, subprocess_env)) == []


def test_status_loads_neither_pandas_nor_the_limiter(subprocess_env: dict[str, str]) -> None:
    code = ("import contextlib, io\nfrom tasks import __main__ as cli\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    assert cli.main(['status', '--date', '2026-06-30']) == 0\n"
            "assert 'Summary for 2026-06-30' in out.getvalue()")
    assert sorted(set(STATUS_NEVER) & _loaded_after(code, subprocess_env)) == []


def test_import_tasks_registers_every_task_the_handlers_and_the_summary(subprocess_env: dict[str, str]) -> None:
    # luigi keeps event handlers in Task._event_callbacks (private; tasks/ops/alerts.py is the one module
    # that reaches into it): this checks that name, and that each handler is attached exactly once
    code = """
import luigi
from luigi.task_register import Register
import tasks
from tasks import status
from tasks.ops import alerts

for name in [*tasks.__all__, "SendShard"]:
    cls = Register.get_task_cls(name)
    assert cls is getattr(tasks, name, cls), name
    assert cls.__module__.startswith("tasks."), (name, cls.__module__)
callbacks = luigi.Task._event_callbacks[luigi.Task]
for event, handler in alerts._HANDLERS.items():
    ours = [cb for cb in callbacks.get(event, ()) if getattr(cb, alerts._MARK, False)]
    assert ours == [handler], (event, ours)
assert status._registered
"""
    assert "tasks" in _loaded_after(code, subprocess_env)


@pytest.mark.parametrize("task", [*tasks.__all__, "SendShard"])
def test_luigi_module_tasks_help_works(task: str, subprocess_env: dict[str, str]) -> None:
    proc = subprocess.run([PYTHON, "-m", "luigi", "--module", "tasks", task, "--help"], cwd=REPO, env=subprocess_env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert f"--{task}-" in proc.stdout  # the task's own parameters are listed: luigi found the class
