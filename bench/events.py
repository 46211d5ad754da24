"""Delivery events: SendGrid-sized signed batches into the real endpoint, stored, per second.

`python -m tasks web` runs as a fresh child process (its own peak RSS, bench.common.PeakRss);
`CLIENTS` threads of this process POST signed Event Webhook batches of 1,000 events (built and
signed before the clock starts, as SendGrid's servers would have them ready) and the figure is
events stored per second, from the first POST to the last 200, checked against the store's row
count afterwards. On SQLite (a file in the benchmark's var dir) and on Postgres (a scratch
server started here, tasks/state/server.py). Goal: at least 10,000 events/s on each.

Baseline, measured in the same run: the bare store, `EventStore.add` of the same batches in a
child process with no HTTP, no signature and no JSON parsing (the ratio says what the endpoint
costs on top of the store). For scale, SendGrid posts at most 768 KB every 30 s per sending
server: `sendgrid_servers_equivalent` says how many such servers the measured rate absorbs.
Smoke mode: 3 batches of 100 events, 2 clients, one run.

    python -m bench.events [--smoke]
"""

from __future__ import annotations

import base64
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

from bench import common

NAME = "events"
GOAL = 10_000.0
SENDGRID_BYTES_PER_S = 768 * 1024 / 30  # SendGrid's documented ceiling per sending server


@dataclass(frozen=True)
class Sizes:
    batches: int
    batch_size: int
    clients: int
    runs: int


FULL = Sizes(batches=200, batch_size=1000, clients=4, runs=3)  # 200,000 events per run
SMOKE = Sizes(batches=3, batch_size=100, clients=2, runs=1)


def make_events(sizes: Sizes, run: int, prefix: str = "r") -> list[list[dict]]:
    """The batches of one run: SendGrid's delivered events with our send ids (unique sg_event_ids per run and
    prefix: the endpoint's start with `r`, the bare store's with `bare`, and so do their send ids)."""
    now = int(time.time())
    return [[{"email": f"user{b * sizes.batch_size + i}@example.com", "timestamp": now, "event": "delivered",
              "sg_event_id": f"{prefix}{run}-b{b}-e{i}", "sg_message_id": f"m{b}.filter0001",
              "smtp-id": f"<m{b}@example.com>", "response": "250 OK", "category": ["bench"],
              "send_id": f"{prefix}/2026-01-01/email/C{b * sizes.batch_size + i:07d}",
              "customer_id": f"C{b * sizes.batch_size + i:07d}"}
             for i in range(sizes.batch_size)] for b in range(sizes.batches)]


def child(argv: list[str]) -> None:
    """The baseline: the bare store's insert rate for the same batches (no HTTP)."""
    batches, batch_size, run = int(argv[0]), int(argv[1]), int(argv[2])
    from tasks import config, state
    from tasks.channels.events import parse_sendgrid
    from tasks.state.events import EventStore, events_path

    sizes = Sizes(batches, batch_size, 1, 1)
    parsed = [parse_sendgrid(json.dumps(b).encode(), time.time()) for b in make_events(sizes, run, "bare")]
    path = events_path(config.var_dir()).with_name(f"bare-{run}.sqlite3")
    with EventStore(state.database(path)) as store:
        started = time.perf_counter()
        stored = sum(store.add(batch) for batch in parsed)
        seconds = time.perf_counter() - started
    common.child_report({"stored": stored, "seconds": seconds})


def _post(url: str, bodies: list[tuple[bytes, dict[str, str]]], failures: list[int]) -> None:
    session = requests.Session()
    for body, headers in bodies:
        answer = session.post(url, data=body, headers=headers, timeout=120)
        if answer.status_code != 200:
            failures.append(answer.status_code)


def _start_web(env: dict[str, str], port: int, peak: common.PeakRss, log: Path) -> tuple[subprocess.Popen, int]:
    """The endpoint under the peak-RSS wrapper; (wrapper process, the endpoint's own pid)."""
    cmd = [common.PYTHON, "-m", "tasks", "web", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "ab") as out:
        proc = subprocess.Popen(peak.wrap(cmd), cwd=common.REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the endpoint did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    web_pid = proc.pid if peak.method == "vmhwm" else psutil.Process(proc.pid).children()[0].pid
    return proc, web_pid


def _endpoint_run(sizes: Sizes, env: dict[str, str], run: int, key: object, log: Path) -> dict:
    from tests.fakes.providers import sign_sendgrid
    from tests.state_fixtures import free_port

    port = free_port()
    peak = common.PeakRss()
    proc, web_pid = _start_web(env, port, peak, log)
    bodies = [json.dumps(batch).encode() for batch in make_events(sizes, run)]
    signed = [(body, sign_sendgrid(key, body)) for body in bodies]  # type: ignore[arg-type]
    failures: list[int] = []
    shares = [signed[c::sizes.clients] for c in range(sizes.clients)]
    threads = [threading.Thread(target=_post, args=(f"http://127.0.0.1:{port}/events/sendgrid", share, failures))
               for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    os.kill(web_pid, signal.SIGINT)  # waitress stops cleanly: the wrapper records the peak
    proc.wait(timeout=60)
    if failures:
        raise RuntimeError(f"{len(failures)} batch(es) refused: {sorted(set(failures))}")
    return {"seconds": seconds, "events": sizes.batches * sizes.batch_size, "peak_rss_mb": peak.mb(),
            "body_bytes": statistics.mean(len(b) for b in bodies)}


_COUNT = """
from tasks import config, state
from tasks.state.events import EventStore, events_path
with EventStore(state.database(events_path(config.var_dir()))) as store:
    print(sum(store.counts_of_send("r/2026-01-01/email").values()))
"""


def _stored(env: dict[str, str]) -> int:
    """Events the endpoint stored (not the bare store's), counted in a child process."""
    code = _COUNT
    done = subprocess.run([common.PYTHON, "-c", code], cwd=common.REPO, env=env, capture_output=True, text=True,
                          check=True)
    return int(done.stdout.strip().splitlines()[-1])


def measure(backend: str, sizes: Sizes, env: dict[str, str]) -> dict:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    env = {**env, "SENDGRID_WEBHOOK_PUBLIC_KEY": base64.b64encode(der).decode()}
    env.pop("UNSUBSCRIBE_SECRET", None)
    log = common.out_dir() / NAME / f"web-{backend}.log"
    rates, bare, peaks, sizes_b = [], [], [], []
    for run in range(sizes.runs):
        result = _endpoint_run(sizes, env, run, key, log)
        rates.append(result["events"] / result["seconds"])
        peaks.append(result["peak_rss_mb"])
        sizes_b.append(result["body_bytes"])
        baseline = common.run_child(f"bench.{NAME}", [str(sizes.batches), str(sizes.batch_size), str(run)], env)
        bare.append(baseline["stored"] / baseline["seconds"])
    stored = _stored(env)
    expected = sizes.runs * sizes.batches * sizes.batch_size
    if stored != expected:
        raise RuntimeError(f"{backend}: {stored} events in the store, {expected} acknowledged")
    event_bytes = statistics.mean(sizes_b) / sizes.batch_size
    per_server = SENDGRID_BYTES_PER_S / event_bytes
    median = statistics.median(rates)
    return common.entry(
        f"{NAME}.stored_per_s.{backend}", values=rates, unit="events/s", baseline=statistics.median(bare), digits=1,
        goal=f">= {GOAL:,.0f} events/s", goal_met=median >= GOAL, peak_rss_mb=max(peaks),
        batch_size=sizes.batch_size, batches=sizes.batches, clients=sizes.clients, stored=stored,
        bare_store_runs=[round(r, 1) for r in bare], event_bytes=round(event_bytes, 1),
        sendgrid_server_events_per_s=round(per_server, 1),
        sendgrid_servers_equivalent=round(median / per_server, 1))


def main() -> list[dict]:
    from tasks.state.server import scratch_server
    from tests.state_fixtures import free_port

    sizes = common.pick(FULL, SMOKE)
    entries = [measure("sqlite", sizes, common.private_env(NAME))]
    server = scratch_server(free_port())
    try:
        dsn = server.start()
        env = {**common.private_env(f"{NAME}-postgres", {"state": {"backend": "postgres"}}), "TASKS_STATE_DSN": dsn}
        entries.append(measure("postgres", sizes, env))
    finally:
        server.remove()
    return common.publish(entries)


if __name__ == "__main__":
    common.main_or_child(sys.argv[1:], main, child, f"bench.{NAME}")
