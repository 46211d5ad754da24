"""The central scheduler launcher: `python -m tasks luigid` (`make luigid`).

Runs Luigi's own `luigid` in the foreground on [luigid] host:port with its state and pid file
under <var_dir>/luigid/, with Luigi's Prometheus collector on (`[scheduler] metrics_collector =
prometheus` unless luigi.cfg chose another): `GET /metrics` serves `luigi_task_started_total`,
`..._done_total`, `..._failed_total`, `..._disabled_total` and `luigi_task_execution_time_seconds`
by task family. Only luigid reads it: `--local-scheduler` runs serve no /metrics. Reads [luigid],
[paths], [scheduler] and (for its log) [core] logging_conf_file.
"""

from __future__ import annotations

import os
from pathlib import Path

from tasks import config
from tasks.files import private_dir


def luigid_paths() -> dict[str, Path]:
    """Where `python -m tasks luigid` keeps its state and pid file."""
    base = config.var_dir() / "luigid"
    return {"state_path": base / "state.pickle", "pidfile": base / "luigid.pid"}


def luigid_main(port: int | None = None, host: str | None = None) -> int:
    """Run luigid in the foreground on [luigid] host:port, state under <var_dir>/luigid/, log to stderr.

    The log goes through [core] logging_conf_file like every luigi run (no --logdir: Luigi
    would then ignore that file). SIGTERM or Ctrl-C saves the state and stops it.
    """
    import luigi.cmdline
    import luigi.configuration

    luigi_cfg = luigi.configuration.get_config()
    if not luigi_cfg.has_option("scheduler", "metrics_collector"):
        if not luigi_cfg.has_section("scheduler"):
            luigi_cfg.add_section("scheduler")
        luigi_cfg.set("scheduler", "metrics_collector", "prometheus")  # GET /metrics (prometheus_client)
    cfg = config.LuigidConfig()
    paths = luigid_paths()
    private_dir(paths["pidfile"].parent)
    host, port = host or cfg.host, port or cfg.port
    paths["pidfile"].write_text(f"{os.getpid()}\n")
    print(f"luigid on http://{host}:{port} (UI, /api, /metrics); state {paths['state_path']}", flush=True)
    try:
        luigi.cmdline.luigid(["--address", host, "--port", str(port), "--state-path", str(paths["state_path"])])
    finally:
        paths["pidfile"].unlink(missing_ok=True)
    return 0
