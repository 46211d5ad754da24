"""Shared plumbing of the benchmarks: sizes, child processes, their peak RSS, results.json.

Every figure is measured in a fresh process: a child `python -m bench.<module> --child ...`
that prints one JSON line with its timings, or the `luigi` command itself. Reads no
luigi.cfg section; `private_env()` writes a private luigi.cfg and var dir under the output
folder, so a benchmark never touches var/.

**Peak RSS** is each measured process's own high-water mark, taken by `PeakRss`:

- `/usr/bin/time -v` (GNU time), whenever it runs here: the command is started as
  `/usr/bin/time -v -o FILE <command>` and "Maximum resident set size (kbytes)" is read
  from FILE. That is the rusage wait4() returns for the command: its own peak, or a
  descendant's it waited for if larger. The processes measured wait for none: a benchmark
  child does its work in-process, a `luigi` command with one worker runs its tasks
  in-process, and the embedded warehouse server is detached and never waited for.
- fallback, `VmHWM` from /proc/self/status: the command `python -m X ...` or `python -c ...`
  is started as `python -m bench.peak FILE -m X ...`, which runs the same code in the same
  process and writes its VmHWM at exit. exec gave the process a new address space, so VmHWM
  counts its own pages only.

`BENCH_PEAK_RSS=time|vmhwm` forces one. Not `resource.getrusage` in the child, as before:
on Linux ru_maxrss carries the peak of the process it was forked from over exec, so a 10 MB
child of a 300 MB harness reported 313 MB (tests/bench/test_peak_rss.py).

Environment:

- `BENCH_SMOKE=1` (or `--smoke`): tiny sizes and one run each. It proves that a benchmark
  runs (tests/bench/test_bench_smoke.py); its figures are not worth publishing.
- `BENCH_OUT`: the working folder (generated inputs, private var dirs and warehouses);
  default bench/out/, or bench/out/smoke/ with BENCH_SMOKE.
- `BENCH_RESULTS`: where `save()` merges its entries by name (others' rows stay); default
  bench/results.json, or smoke-results.json in the working folder with BENCH_SMOKE.
"""

from __future__ import annotations

import configparser
import contextlib
import datetime as dt
import functools
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psutil

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = sys.executable
GNU_TIME = "/usr/bin/time"
PEAK_METHODS = ("time", "vmhwm")

T = TypeVar("T")
_MAX_RSS = re.compile(r"Maximum resident set size \(kbytes\):\s*(\d+)")


def smoke() -> bool:
    """True in smoke mode (`BENCH_SMOKE=1` or `--smoke`): tiny sizes, one run each."""
    return os.environ.get("BENCH_SMOKE", "") not in ("", "0")


def pick(full: T, tiny: T) -> T:
    """`tiny` in smoke mode, else `full`."""
    return tiny if smoke() else full


def out_dir() -> Path:
    """The working folder: BENCH_OUT, else bench/out/ (bench/out/smoke/ in smoke mode)."""
    if os.environ.get("BENCH_OUT"):
        return Path(os.environ["BENCH_OUT"]).resolve()
    return BENCH / "out" / "smoke" if smoke() else BENCH / "out"


def results_path() -> Path:
    """BENCH_RESULTS, else bench/results.json (a smoke run: smoke-results.json in the working folder)."""
    if os.environ.get("BENCH_RESULTS"):
        return Path(os.environ["BENCH_RESULTS"]).resolve()
    return out_dir() / "smoke-results.json" if smoke() else BENCH / "results.json"


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


# -- peak RSS ------------------------------------------------------------------------------

@functools.cache
def gnu_time_works() -> bool:
    """True if /usr/bin/time is GNU time with `-v -o` (BusyBox's is not)."""
    if not os.access(GNU_TIME, os.X_OK):
        return False
    with tempfile.TemporaryDirectory(prefix="bench-time-") as tmp:
        report = Path(tmp) / "time.txt"
        proc = subprocess.run([GNU_TIME, "-v", "-o", str(report), PYTHON, "-c", "pass"], capture_output=True,
                              check=False)
        return proc.returncode == 0 and report.exists() and bool(_MAX_RSS.search(report.read_text()))


def peak_rss_method() -> str:
    """"time" (/usr/bin/time -v) when it works here, else "vmhwm"; BENCH_PEAK_RSS forces one."""
    forced = os.environ.get("BENCH_PEAK_RSS", "")
    if forced and forced not in PEAK_METHODS:
        raise ValueError(f"BENCH_PEAK_RSS={forced!r}; expected one of {PEAK_METHODS}")
    if forced == "time" and not gnu_time_works():
        raise RuntimeError(f"BENCH_PEAK_RSS=time but {GNU_TIME} -v does not work here")
    return forced or ("time" if gnu_time_works() else "vmhwm")


class PeakRss:
    """The own peak RSS of one command: run `wrap(cmd)` to its end, then read `mb()`.

    The wrapped command's exit code, stdout and stderr are the command's own, and a signal
    sent to the wrapper reaches the command only with the "vmhwm" method (same process):
    SIGKILL an unwrapped command instead.
    """

    def __init__(self, method: str | None = None):
        self.method = method or peak_rss_method()
        if self.method not in PEAK_METHODS:
            raise ValueError(f"peak RSS method {self.method!r}; expected one of {PEAK_METHODS}")
        fd, name = tempfile.mkstemp(prefix="bench-peak-", suffix=".txt")
        os.close(fd)
        self.path = Path(name)

    def wrap(self, cmd: Sequence[str]) -> list[str]:
        """The command line that runs `cmd` and records its peak RSS."""
        cmd = list(cmd)
        if self.method == "time":
            return [GNU_TIME, "-v", "-o", str(self.path), *cmd]
        if len(cmd) < 3 or cmd[1] not in ("-m", "-c"):
            raise ValueError(f"the VmHWM method runs `python -m ...` or `python -c ...`, not {cmd[:3]}")
        return [cmd[0], "-m", "bench.peak", str(self.path), *cmd[1:]]

    def mb(self) -> float:
        """The command's peak RSS in MB (read once; the record is then removed)."""
        try:
            text = self.path.read_text()
        finally:
            self.path.unlink(missing_ok=True)
        if self.method == "time":
            match = _MAX_RSS.search(text)
            kib = int(match.group(1)) if match else 0
        else:
            kib = int(text) if text.strip().isdigit() else 0
        if kib <= 0:
            raise RuntimeError(f"no peak RSS recorded ({self.method}): {text[-500:]!r}")
        return round(kib / 1024, 1)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Finished:
    """A measured command that ran to its end: wall seconds from spawn to exit and its own peak RSS."""

    cmd: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float | None  # None when it failed

    def check(self) -> Finished:
        if self.returncode != 0:
            raise RuntimeError(f"{' '.join(self.cmd)} exited {self.returncode}:\n{self.stdout[-2000:]}\n"
                               f"{self.stderr[-4000:]}")
        return self


def run_measured(cmd: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 600) -> Finished:
    """Run `cmd` (in the repo, output captured) and return its wall time and own peak RSS."""
    peak = PeakRss()
    started = time.perf_counter()
    # its own process group: a timeout or Ctrl-C kills the command too, not only /usr/bin/time
    proc = subprocess.Popen(peak.wrap(cmd), cwd=REPO, env=dict(env or os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        peak.discard()
        raise
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        peak.discard()
        return Finished(list(cmd), proc.returncode, stdout, stderr, seconds, None)
    return Finished(list(cmd), proc.returncode, stdout, stderr, seconds, peak.mb())


def run_child(module: str, args: Sequence[str], env: Mapping[str, str] | None = None,
              timeout: float = 600) -> dict[str, Any]:
    """Run `python -m <module> --child <args>`: the JSON of its last stdout line plus its own `peak_rss_mb`."""
    done = run_measured([PYTHON, "-m", module, "--child", *args], env, timeout).check()
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{module} --child {' '.join(args)} printed no report:\n{done.stdout[-2000:]}")
    return {**json.loads(lines[-1]), "peak_rss_mb": done.peak_rss_mb}


def child_report(payload: Mapping[str, Any]) -> None:
    """The last line a child prints: its figures (its peak RSS is taken from outside, by `run_child`)."""
    print(json.dumps(dict(payload)), flush=True)


def timed_wall(cmd: Sequence[str], env: Mapping[str, str]) -> Finished:
    """A whole command, interpreter start to exit (`.seconds`, `.peak_rss_mb`); raises if it fails."""
    return run_measured(cmd, env).check()


# -- results --------------------------------------------------------------------------------

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
    """Merge `entries` into the results file by name (others' rows stay), stamping machine, date and method."""
    path = results_path()
    existing: list[dict[str, Any]] = []
    if path.exists():
        existing = json.loads(path.read_text())
    stamp: dict[str, Any] = {"machine": machine(), "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if smoke():
        stamp["smoke"] = True
    by_name = {e["name"]: e for e in existing}
    for e in entries:
        rss = {"peak_rss_method": peak_rss_method()} if e.get("peak_rss_mb") is not None else {}
        by_name[e["name"]] = {**e, **rss, **stamp}
    ordered = sorted(by_name.values(), key=lambda e: e["name"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(ordered, indent=2) + "\n")
    os.replace(tmp, path)


def show(entries: Sequence[dict[str, Any]]) -> None:
    """Print the entries as a compact table."""
    for e in entries:
        ratio = "" if e["ratio"] is None else f" ratio {e['ratio']:.3f}"
        base = "" if e["baseline"] is None else f" vs baseline {e['baseline']:g}"
        goal = "" if not e.get("goal") else f"  goal {e['goal']}: {'met' if e['goal_met'] else 'MISSED'}"
        rss = f"  peak RSS {e['peak_rss_mb']:.0f} MB" if e.get("peak_rss_mb") else ""
        print(f"{e['name']}: {e['value']:g} {e['unit']}{base}{ratio} "
              f"(median of {e['runs']}, min {e['min']:g}, max {e['max']:g}){rss}{goal}", flush=True)


def publish(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Print the entries and merge them into the results file."""
    show(entries)
    save(entries)
    return entries


# -- isolation and entry points ------------------------------------------------------------

def private_env(name: str, overrides: Mapping[str, Mapping[str, object]] | None = None) -> dict[str, str]:
    """Environment for a benchmark's children: var dir and luigi.cfg under <out>/<name>/."""
    base = out_dir() / name
    var = base / "var"
    var.mkdir(parents=True, exist_ok=True)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO / "luigi.cfg")
    # benchmarks send to the same customers again and again to measure pacing: no cap, no demo list; and
    # they run at any hour: no quiet hours (`auto` holds SMS to a real provider outside 8:00-21:00 local)
    overrides = {"campaign": {"frequency_cap": "off", "suppression_list": ""},
                 "sms_campaign": {"quiet_hours": "off"}, **(overrides or {})}
    for section, values in overrides.items():
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


def isolate() -> None:
    """Point this process (and every child it starts) at <out>/harness/: var dir and luigi.cfg, never var/."""
    os.environ.update(private_env("harness"))


def is_child(argv: Sequence[str]) -> bool:
    return bool(argv) and argv[0] == "--child"


def parent_args(argv: Sequence[str], usage: str) -> None:
    """The parent's only option, `--smoke` (sets BENCH_SMOKE=1 for this process and its children)."""
    for arg in argv:
        if arg != "--smoke":
            raise SystemExit(f"usage: {usage} [--smoke]")
        os.environ["BENCH_SMOKE"] = "1"


def main_or_child(argv: Sequence[str], main: Callable[[], Any], child: Callable[[list[str]], None] | None,
                  module: str) -> None:
    """A benchmark module's entry point: the parent's `main()` or, when called as a child, `child(args)`."""
    if is_child(argv):
        if child is None:
            raise SystemExit(f"{module} has no child mode")
        child(list(argv)[1:])
        return
    parent_args(argv, f"python -m {module}")
    isolate()
    main()
