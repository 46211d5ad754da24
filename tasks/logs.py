"""Logging setup for `luigi --module tasks ...`: make `[core] logging_conf_file` independent of the cwd.

Luigi applies `[core] logging_conf_file` (config/logging.cfg) with `logging.config.fileConfig`
and checks the path relative to the working directory. Importing `tasks` (which `--module
tasks` does before Luigi sets up logging) rewrites a relative path to one under the project
root in the loaded config, as for every other path in luigi.cfg. Reads [core].
"""

from __future__ import annotations

import luigi.configuration

from tasks.config import resolve_path


def resolve_logging_conf() -> None:
    """Make a relative `[core] logging_conf_file` absolute (project root) in Luigi's loaded config."""
    cfg = luigi.configuration.get_config()
    value = cfg.get("core", "logging_conf_file", "")
    if value:
        cfg.set("core", "logging_conf_file", str(resolve_path(value)))
