"""Shared plumbing of the benchmarks: the machine, repeated runs, child processes, results.json.

Every figure is measured in a child process (`python -m bench.<module> --child ...`) that
prints one JSON line with its timings and its own peak RSS (`resource.getrusage`), so each
measurement has a fresh interpreter and its memory is the process's own, never the
harness's. `save(...)` merges entries into bench/results.json by name, so running one
benchmark alone updates only its own rows. Reads no luigi.cfg section; `private_env()`
writes a private luigi.cfg and var dir under bench/out/ so a benchmark never touches var/.
"""

from __future__ import annotations

import configparser
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
RESULTS = BENCH / "results.json"
PYTHON = sys.executable


def machine() -> dict[str, Any]:
    """CPU model, cores, memory and Python of this machine (stored with every result)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
    }


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def child_report(payload: Mapping[str, Any]) -> None:
    """The last line a child prints: its figures plus its peak RSS."""
    print(json.dumps({**payload, "peak_rss_mb": peak_rss_mb()}), flush=True)


def run_child(module: str, args: Sequence[str], env: Mapping[str, str] | None = None,
              timeout: float = 600) -> dict[str, Any]:
    """Run `python -m <module> --child <args>` and return the JSON of its last stdout line."""
    cmd = [PYTHON, "-m", module, "--child", *args]
    proc = subprocess.run(cmd, cwd=REPO, env=dict(env or os.environ), capture_output=True, text=True,
                          timeout=timeout, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1])


def timed_wall(cmd: Sequence[str], env: Mapping[str, str]) -> float:
    """Wall seconds of a whole command (interpreter start to exit); raises if it fails."""
    started = time.perf_counter()
    proc = subprocess.run(list(cmd), cwd=REPO, env=dict(env), capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return elapsed


def spread(values: Sequence[float], digits: int = 4) -> dict[str, float]:
    """Median, min and max of repeated measurements."""
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def entry(name: str, *, values: Sequence[float], unit: str, baseline: float | None, goal: str | None = None,
          goal_met: bool | None = None, digits: int = 4, **extra: Any) -> dict[str, Any]:
    """One row of results.json: `value` is the median of `values`, `ratio` = value / baseline."""
    stats = spread(values, digits)
    value = stats["median"]
    ratio = round(value / baseline, 4) if baseline not in (None, 0) else None
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, digits),
        "ratio": ratio,
        "runs": len(values),
        **stats,
        "goal": goal,
        "goal_met": goal_met,
        **extra,
    }


def save(entries: Sequence[dict[str, Any]]) -> None:
    """Merge `entries` into results.json by name (others' rows stay), stamping machine and date."""
    existing: list[dict[str, Any]] = []
    if RESULTS.exists():
        existing = json.loads(RESULTS.read_text())
    stamp = {"machine": machine(), "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    by_name = {e["name"]: e for e in existing}
    for e in entries:
        by_name[e["name"]] = {**e, **stamp}
    ordered = sorted(by_name.values(), key=lambda e: e["name"])
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(ordered, indent=2) + "\n")
    os.replace(tmp, RESULTS)


def show(entries: Sequence[dict[str, Any]]) -> None:
    """Print the entries as a compact table."""
    for e in entries:
        ratio = "" if e["ratio"] is None else f" ratio {e['ratio']:.3f}"
        base = "" if e["baseline"] is None else f" vs baseline {e['baseline']:g}"
        goal = "" if not e.get("goal") else f"  goal {e['goal']}: {'met' if e['goal_met'] else 'MISSED'}"
        rss = f"  peak RSS {e['peak_rss_mb']:.0f} MB" if e.get("peak_rss_mb") else ""
        print(f"{e['name']}: {e['value']:g} {e['unit']}{base}{ratio} "
              f"(median of {e['runs']}, min {e['min']:g}, max {e['max']:g}){rss}{goal}", flush=True)


def private_env(name: str, overrides: Mapping[str, Mapping[str, object]] | None = None) -> dict[str, str]:
    """Environment for a benchmark's children: var dir and luigi.cfg under bench/out/<name>/."""
    base = OUT / name
    var = base / "var"
    var.mkdir(parents=True, exist_ok=True)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO / "luigi.cfg")
    for section, values in (overrides or {}).items():
        if not parser.has_section(section):
            parser.add_section(section)
        for key, value in values.items():
            parser.set(section, key, str(value))
    cfg = base / "luigi.cfg"
    with open(cfg, "w") as fh:
        parser.write(fh)
    env = dict(os.environ)
    env.update({"TASKS_VAR_DIR": str(var), "LUIGI_CONFIG_PATH": str(cfg)})
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def is_child(argv: Sequence[str]) -> bool:
    return bool(argv) and argv[0] == "--child"


def publish(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Print the entries and merge them into results.json."""
    show(entries)
    save(entries)
    return entries


def main_or_child(argv: Sequence[str], main: Any, child: Any) -> None:
    """A benchmark module's entry point: the parent's `main()` or, when called as a child, `child(args)`."""
    if is_child(argv):
        child(list(argv)[1:])
    else:
        main()
