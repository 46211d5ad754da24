"""The command line's start-up: `import tasks`, `python -m tasks --help` and `status` against `import luigi`.

Every operator command and every cron start begins by importing the package (`python -m
tasks ...` imports `tasks/__init__.py` before `__main__`, `luigi --module tasks ...` imports it
to find the task classes), so what the package imports at start-up is paid everywhere.

Setup (not timed), under <out>/cli/ (its own var dir, luigi.cfg and embedded warehouse, never
var/): `python -m tasks seed-demo` with a few thousand sessions, then one
`luigi --module tasks RunAll --date D --local-scheduler` (the tables, the bundled 1,000-customer
sample loaded, its three sends to the outbox): a finished day with its run record.

Measured, each command a fresh process from spawn to exit (`python -c ...` or `python -m ...`,
bytecode cached in <out>/cli/pycache by the setup), the commands interleaved round by round so
they share the machine's noise, median of the rounds:

- baseline: `python -c "import luigi"` (what any `luigi --module tasks` start pays anyway);
- `python -c "import tasks"` (every task class, the alert handlers and the run summary registered);
- `python -m tasks --help`;
- `python -m tasks status --date D`: the finished day's tables as its run recorded them at its end,
  the segment load, the sends and the run record;
- `python -m tasks status --date D --live` with the embedded warehouse running: the tables asked from
  the warehouse through the Snowflake connector (no goal: loading the connector alone, which loads
  pandas, pyarrow and boto3, costs more than the rest of the command).

Goals: `import tasks` <= 2.0x, `--help` and `status` <= 3.0x. Peak RSS is each command's own
(bench.common.PeakRss). Smoke mode: 500 sessions, one round.

    python -m bench.cli [--smoke]
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from bench import common

NAME = "cli"
DATE = "2026-06-30"
IMPORT_GOAL = 2.0
COMMAND_GOAL = 3.0


@dataclass(frozen=True)
class Sizes:
    sessions: int
    rounds: int


FULL = Sizes(sessions=5_000, rounds=7)
SMOKE = Sizes(sessions=500, rounds=1)

PY = common.PYTHON
BASELINE = [PY, "-c", "import luigi"]
COMMANDS = {
    "import_tasks": [PY, "-c", "import tasks"],
    "help": [PY, "-m", "tasks", "--help"],
    "status": [PY, "-m", "tasks", "status", "--date", DATE],
    "status_live": [PY, "-m", "tasks", "status", "--date", DATE, "--live"],
}


def _env() -> dict[str, str]:
    env = common.private_env(NAME, {
        "warehouse": {"embedded_dir": common.out_dir() / NAME / "warehouse", "database": "BENCH"},
        "schedule": {"depends_on_past": "false"},
        # RunAll also sends the day's campaigns (the bundled 1,000-customer sample) to the outbox
        **{f"{ch}_campaign": {"provider": "outbox", "rate": 2000, "burst": 200} for ch in ("email", "sms", "push")},
    })
    # bytecode cached, as wherever the package is installed or run from a checkout: with
    # PYTHONDONTWRITEBYTECODE (set in some CI and sandbox shells) every process would compile each module
    # of the package from source, about 0.25 s here; the cache lives in the benchmark's own folder
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(common.out_dir() / NAME / "pycache")
    return env


def _prepare(env: dict[str, str], sizes: Sizes) -> None:
    """A finished day: demo data seeded (once), then RunAll for DATE (a no-op when an earlier run finished it)."""
    common.timed_wall([PY, "-m", "tasks", "seed-demo", "--sessions", str(sizes.sessions)], env)
    common.timed_wall([PY, "-m", "luigi", "--module", "tasks", "RunAll", "--date", DATE, "--local-scheduler"], env)


def _rounds(commands: dict[str, list[str]], env: dict[str, str], rounds: int) -> dict[str, list[common.Finished]]:
    """Each round runs the baseline, then every command, once each: {name: runs}, the baseline under ''."""
    runs: dict[str, list[common.Finished]] = {"": [], **{name: [] for name in commands}}
    for _ in range(rounds):
        runs[""].append(common.timed_wall(BASELINE, env))
        for name, cmd in commands.items():
            runs[name].append(common.timed_wall(cmd, env))
    return runs


def _check_status(runs: Sequence[common.Finished], live: bool) -> None:
    """The measured status really described the finished day, its tables from the run record or, `live`, from
    the warehouse (else the figure measures an error path)."""
    out = runs[-1].stdout
    if f"Summary for {DATE}: RunAll ok" not in out or "segments:" not in out or "mau_summary" not in out.lower():
        raise RuntimeError(f"status did not show the finished day and its tables:\n{out[-2000:]}")
    if live == ("as the run recorded them" in out):
        raise RuntimeError(f"status {'--live showed recorded' if live else 'asked the warehouse for'} tables:\n"
                           f"{out[-2000:]}")


def _entry(name: str, runs: Sequence[common.Finished], baseline: Sequence[common.Finished], goal: float | None,
           what: str) -> dict:
    base = statistics.median(r.seconds for r in baseline)
    value = statistics.median(r.seconds for r in runs)
    return common.entry(f"{NAME}.{name}_over_import_luigi", values=[r.seconds for r in runs], unit="s",
                        baseline=base, goal=f"ratio <= {goal}" if goal else None,
                        goal_met=value / base <= goal if goal else None,
                        peak_rss_mb=max(r.peak_rss_mb or 0 for r in runs),
                        baseline_peak_rss_mb=max(r.peak_rss_mb or 0 for r in baseline),
                        baseline_runs=[round(r.seconds, 4) for r in baseline], command=what)


def main() -> list[dict]:
    from tasks.warehouse import embedded

    sizes = common.pick(FULL, SMOKE)
    env = _env()
    warehouse = common.out_dir() / NAME / "warehouse"
    try:
        _prepare(env, sizes)
        running = _rounds(COMMANDS, env, sizes.rounds)
        _check_status(running["status"], live=False)
        _check_status(running["status_live"], live=True)
    finally:
        embedded.stop(warehouse)
    entries = [
        _entry("import_tasks", running["import_tasks"], running[""], IMPORT_GOAL, 'python -c "import tasks"'),
        _entry("help", running["help"], running[""], COMMAND_GOAL, "python -m tasks --help"),
        _entry("status", running["status"], running[""], COMMAND_GOAL,
               f"python -m tasks status --date {DATE} (tables as the day's run recorded them)"),
        _entry("status_live", running["status_live"], running[""], None,
               f"python -m tasks status --date {DATE} --live (embedded warehouse running: tables asked)"),
    ]
    return common.publish(entries)


if __name__ == "__main__":
    common.main_or_child(sys.argv[1:], main, None, "bench.cli")
