"""Shared fixtures: every test gets its own var/ folder and its own luigi config file.

`luigi_cfg.set(section, key, value)` writes an override into the test's config file (a copy
of the repo's luigi.cfg) and reloads Luigi's config, so in-process tasks and subprocesses
(which inherit LUIGI_CONFIG_PATH) see the same settings.
"""

from __future__ import annotations

import configparser
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import luigi.configuration
import pytest

from tasks.luigi_internals import config_paths, skip_luigi_logging_setup, use_config_paths
from tests.fakes.slack import FakeSlack

pytest_plugins = ["tests.warehouse_fixtures", "tests.state_fixtures"]

# pytest owns logging in the test process: luigi.build must not apply [core] logging_conf_file
# (logging.config.fileConfig would take caplog's handler off the root logger). Subprocesses
# (`luigi --module tasks ...`) still apply it.
skip_luigi_logging_setup()

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


class LuigiCfg:
    """A test's own luigi config file, reloaded into Luigi on every change."""

    def __init__(self, path: Path):
        self.path = path
        self.parser = configparser.ConfigParser(interpolation=None)
        self.parser.read(REPO / "luigi.cfg")
        # quiet hours follow the wall clock (`auto`: the TCPA window with a real provider), so a test pointing
        # SMS at the fake Twilio would pass or fail by the hour it runs; the compliance tests set them with a
        # controllable clock
        self.parser.set("sms_campaign", "quiet_hours", "off")
        self._write()

    def set(self, section: str, key: str, value: object) -> LuigiCfg:
        if not self.parser.has_section(section):
            self.parser.add_section(section)
        self.parser.set(section, key, str(value))
        self._write()
        return self

    def remove(self, section: str, key: str) -> LuigiCfg:
        if self.parser.has_section(section):
            self.parser.remove_option(section, key)
        self._write()
        return self

    def _write(self) -> None:
        with open(self.path, "w") as fh:
            self.parser.write(fh)
        use_config_paths([str(self.path)])
        assert luigi.configuration.get_config().get("paths", "var_dir", None) is not None


@pytest.fixture(autouse=True)
def var_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's var/ folder (TASKS_VAR_DIR), also inherited by subprocesses."""
    path = tmp_path / "var"
    path.mkdir()
    monkeypatch.setenv("TASKS_VAR_DIR", str(path))
    return path


@pytest.fixture(autouse=True)
def luigi_cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LuigiCfg:
    """The test's luigi config (a copy of the repo's luigi.cfg), inherited by subprocesses."""
    cfg_path = tmp_path / "luigi.cfg"
    monkeypatch.setenv("LUIGI_CONFIG_PATH", str(cfg_path))
    saved = config_paths()
    cfg = LuigiCfg(cfg_path)
    yield cfg
    use_config_paths(saved)


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for a subprocess running this package: the test's var dir and config."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch, luigi_cfg: LuigiCfg) -> Iterator[FakeSlack]:
    """A fake Slack webhook the alerts of this test go to; fast retry settings."""
    luigi_cfg.set("slack", "backoff", 0.1)
    luigi_cfg.set("slack", "timeout", 2)
    with FakeSlack() as fake:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", fake.url)
        yield fake
