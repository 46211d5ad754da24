"""Fixtures for the operations tests: a real luigid, the cron wrapper as a subprocess, a small day."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.state_fixtures import free_port
from tests.tasks.campaign_helpers import write_customers
from tests.warehouse_fixtures import seed_raw

CUSTOMERS = 60  # per channel at SEND_RATE/s: sends take well under a second
SEND_RATE = 100


class Luigid:
    """A real `python -m tasks luigid` on a free loopback port, its state in the test's var dir."""

    def __init__(self, env: dict[str, str], log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "tasks", "luigid", "--port", str(self.port)],
                                     cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.api("task_list", {"status": "DONE", "upstream_status": "", "search": ""})
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"luigid did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)

    def api(self, method: str, data: dict[str, Any] | None = None) -> Any:
        query = urllib.parse.urlencode({"data": json.dumps(data or {})})
        with urllib.request.urlopen(f"{self.url}/api/{method}?{query}", timeout=10) as resp:
            return json.load(resp)["response"]

    def stop(self) -> int:
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if not self._log.closed:
            self._log.close()
        return code


@pytest.fixture
def luigid(subprocess_env: dict[str, str], tmp_path: Path) -> Luigid:
    server = Luigid(subprocess_env, tmp_path / "luigid.out")
    yield server
    server.stop()


def run_cron(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m tasks cron ARGS` in a subprocess, as cron would run it."""
    return subprocess.run([sys.executable, "-m", "tasks", "cron", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def start_cron(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen:
    fh = open(log, "wb")  # noqa: SIM115 - the child holds it; closed with the test's tmp dir
    return subprocess.Popen([sys.executable, "-m", "tasks", "cron", *args], cwd=REPO, env=env,
                            stdout=fh, stderr=subprocess.STDOUT)


def runs(var_path: Path, kind: str = "cron") -> list[dict[str, Any]]:
    """The run records of the wrapper (`kind` cron) or of its luigi runs (`kind` luigi), from
    <var_dir>/runs/runs.jsonl."""
    path = var_path / "runs" / "runs.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [r for r in records if r.get("kind") == kind]


def run_summary_alerts(var_path: Path) -> list[dict[str, Any]]:
    """Run-summary alerts in the fallback file (no Slack webhook in tests)."""
    path = var_path / "alerts" / "alerts.jsonl"
    if not path.exists():
        return []
    alerts = [json.loads(line) for line in path.read_text().splitlines()]
    return [a for a in alerts if "Luigi run ended badly" in json.dumps(a["message"])]


@pytest.fixture
def small_day(warehouse, luigi_cfg, tmp_path: Path):
    """Raw data in the test's warehouse, a small segment CSV (<tmp>/customers.csv), fast outbox sends."""
    seed_raw(warehouse, tmp_path, sessions=2_000)
    write_customers(tmp_path / "customers.csv", CUSTOMERS)
    luigi_cfg.set("segments", "input_path", tmp_path / "customers.csv")
    for channel in ("email", "sms", "push"):
        luigi_cfg.set(f"{channel}_campaign", "rate", SEND_RATE)
        luigi_cfg.set(f"{channel}_campaign", "burst", 5)
    luigi_cfg.set("schedule", "start_date", "2026-01-01")
    return warehouse


@pytest.fixture
def slow_schedule(luigi_cfg):
    """The wrapper runs tests.e2e.slow_tasks.SlowDay instead of RunAll."""
    luigi_cfg.set("schedule", "module", "tests.e2e.slow_tasks")
    luigi_cfg.set("schedule", "task", "SlowDay")
    luigi_cfg.set("schedule", "start_date", "2026-01-01")
    return luigi_cfg


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
