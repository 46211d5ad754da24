"""One test per private name of Luigi that tasks/luigi_internals.py touches: the name still exists and
still behaves as we rely on. A failure names the Luigi internal and our module, so an upgrade of luigi
breaks here, in one named place."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import luigi
import luigi.configuration
import pytest
from luigi.__version__ import VERSION
from luigi.cmdline_parser import CmdlineParser
from luigi.setup_logging import InterfaceLogging
from luigi.task_register import Register

from tasks import luigi_internals
from tasks.params import RunDateParameter, default_run_date

OURS = "tasks/luigi_internals.py"


def broken(internal: str, what: str) -> str:
    return (f"luigi {VERSION}: {internal} no longer {what}; "
            f"{OURS} (checked with luigi {luigi_internals.LUIGI_VERSION_CHECKED}) must follow it")


def test_version_checked_is_the_installed_one() -> None:
    assert VERSION == luigi_internals.LUIGI_VERSION_CHECKED, broken(
        "the installed version", f"is {luigi_internals.LUIGI_VERSION_CHECKED}: re-check every name listed in {OURS}")


# ---------------------------------------------------------------- LuigiConfigParser._config_paths / _instance


def test_config_paths_are_luigis_list_of_files_in_order(luigi_cfg: Any, tmp_path: Path) -> None:
    first = tmp_path / "first.cfg"
    first.write_text("[internals_probe]\nkey = from-first\nonly_first = yes\n")
    assert luigi_internals.config_paths() == [str(luigi_cfg.path)], broken(
        "LuigiConfigParser._config_paths", "holds the files Luigi reads")
    assert luigi_internals.prepend_config_path(str(first)) is True
    assert luigi_internals.prepend_config_path(str(first)) is False, "listed once only"
    assert luigi_internals.config_paths() == [str(first), str(luigi_cfg.path)]
    cfg = luigi.configuration.get_config()
    assert cfg.get("internals_probe", "key") == "from-first", broken(
        "LuigiConfigParser._config_paths", "is read by reload()")
    luigi_cfg.set("internals_probe", "key", "from-later")  # a later file overrides the first
    assert luigi.configuration.get_config().get("internals_probe", "key") == "from-later", broken(
        "LuigiConfigParser._config_paths", "is read in order (a later file wins)")


def test_use_config_paths_starts_from_a_fresh_parser(luigi_cfg: Any, tmp_path: Path) -> None:
    other = tmp_path / "other.cfg"
    other.write_text("[internals_probe]\nkey = other\n")
    luigi_cfg.set("internals_probe", "gone", "soon")
    luigi_internals.use_config_paths([str(other)])
    cfg = luigi.configuration.get_config()
    assert cfg.get("internals_probe", "key") == "other"
    assert cfg.get("internals_probe", "gone", None) is None, broken(
        "LuigiConfigParser._instance", "is the singleton a reload starts from (keys of dropped files linger)")


# ---------------------------------------------------------------- Register._get_reg


def test_registered_classes_name_every_family_and_leave_out_ambiguous_ones() -> None:
    class InternalsProbeTask(luigi.Task):
        pass

    def twin() -> type[luigi.Task]:
        class InternalsProbeTwin(luigi.Task):
            pass

        return InternalsProbeTwin

    twin(), twin()  # two unrelated classes of one family
    reg = luigi_internals.registered_classes()
    assert reg.get("InternalsProbeTask") is InternalsProbeTask, broken(
        "Register._get_reg()", "maps each task family to its class")
    assert "RunAll" in reg and "retcode" in reg, broken("Register._get_reg()", "holds our tasks and Luigi's Configs")
    assert "InternalsProbeTwin" not in reg, broken(
        "Register._get_reg() / Register.AMBIGUOUS_CLASS", "marks a family claimed by two unrelated classes")
    assert Register._get_reg()["InternalsProbeTwin"] is Register.AMBIGUOUS_CLASS


# ---------------------------------------------------------------- Parameter._get_value


class InternalsProbeConfig(luigi.Config):
    count = luigi.IntParameter(description="a probe")
    when = luigi.DateParameter(default=dt.date(2020, 1, 1), description="a probe with a default")


def test_configured_value_is_luigis_own_parsing(luigi_cfg: Any) -> None:
    count = InternalsProbeConfig.count
    when = InternalsProbeConfig.when
    assert luigi_internals.configured_value(count, "InternalsProbeConfig", "count") is None, broken(
        "Parameter._get_value / parameter._no_value", "says a parameter has no value")
    assert luigi_internals.configured_value(when, "InternalsProbeConfig", "when") == dt.date(2020, 1, 1)
    luigi_cfg.set("InternalsProbeConfig", "count", "17")
    assert luigi_internals.configured_value(count, "InternalsProbeConfig", "count") == 17, broken(
        "Parameter._get_value", "reads and parses the configured value")
    luigi_cfg.set("InternalsProbeConfig", "count", "seventeen")
    with pytest.raises(ValueError, match="seventeen"):
        luigi_internals.configured_value(count, "InternalsProbeConfig", "count")


# ---------------------------------------------------------------- Parameter._value_iterator


class _Counted(luigi_internals.LateDefaultParameter[int], luigi.IntParameter):
    calls = 0

    def late_default(self) -> int:
        type(self).calls += 1
        return 1000 + type(self).calls


class InternalsProbeLate(luigi.Task):
    n = _Counted(description="a probe")


def test_a_late_default_is_asked_when_a_task_is_built_and_loses_to_config_and_command_line(luigi_cfg: Any) -> None:
    _Counted.calls = 0
    first = InternalsProbeLate().n
    assert first > 1000, broken(
        "Parameter._value_iterator", "is where a parameter's values come from (our late default was not asked)")
    assert InternalsProbeLate().n > first, "asked again for every task built, never frozen"
    luigi_cfg.set("InternalsProbeLate", "n", "7")
    asked = _Counted.calls
    assert InternalsProbeLate().n == 7, broken("Parameter._value_iterator", "yields the config value first")
    assert _Counted.calls == asked, "not asked when config gives the value"
    with CmdlineParser.global_instance(["InternalsProbeLate", "--n", "9"]) as parser:
        assert parser.get_task_obj().n == 9, broken("Parameter._value_iterator", "yields the command line first")


def test_run_dates_default_through_the_late_default(luigi_cfg: Any) -> None:
    class InternalsProbeDated(luigi.Task):
        date = RunDateParameter()

    assert InternalsProbeDated().date == default_run_date(), broken(
        "Parameter._value_iterator", "lets RunDateParameter default to default_run_date()")
    assert InternalsProbeDated(date=dt.date(2026, 1, 2)).date == dt.date(2026, 1, 2)


# ---------------------------------------------------------------- Task._event_callbacks


def test_event_handlers_lists_what_event_handler_registered() -> None:
    event = "internals_probe_event"
    seen: list[str] = []

    def handler(task: luigi.Task) -> None:
        seen.append(task.task_family)

    assert luigi_internals.event_handlers(event) == []
    luigi.Task.event_handler(event)(handler)
    try:
        assert luigi_internals.event_handlers(event) == [handler], broken(
            "Task._event_callbacks", "maps class -> event -> handlers")
        InternalsProbeLate(n=1).trigger_event(event, InternalsProbeLate(n=1))
        assert seen == ["InternalsProbeLate"]
    finally:
        luigi.Task.remove_event_handler(event, handler)
    assert luigi_internals.event_handlers(event) == [], broken(
        "Task._event_callbacks", "is what remove_event_handler() removes from")


def test_our_alert_handlers_are_registered_once_however_often_register_runs() -> None:
    from tasks.ops import alerts

    alerts.register()
    alerts.register()
    handlers = luigi_internals.event_handlers(luigi.Event.FAILURE)
    assert handlers.count(alerts.on_failure) == 1, broken("Task._event_callbacks", "holds one copy per handler")


# ---------------------------------------------------------------- Worker._add's formatted_traceback


class InternalsProbeBrokenComplete(luigi.Task):
    def complete(self) -> bool:
        raise LookupError("marker table unreachable")

    def run(self) -> None:
        pass


def test_the_frame_walk_finds_the_traceback_when_complete_raises_in_a_real_build() -> None:
    found: list[str | None] = []

    def on_missing(task: luigi.Task) -> None:
        found.append(luigi_internals.complete_traceback())

    InternalsProbeBrokenComplete.event_handler(luigi.Event.DEPENDENCY_MISSING)(on_missing)
    try:
        assert luigi.build([InternalsProbeBrokenComplete()], local_scheduler=True) is False
    finally:
        InternalsProbeBrokenComplete.remove_event_handler(luigi.Event.DEPENDENCY_MISSING, on_missing)
    assert len(found) == 1
    assert found[0] is not None, broken("Worker._add", "holds the traceback in its local `formatted_traceback`")
    assert found[0].strip().splitlines()[-1] == "LookupError: marker table unreachable", broken(
        "Worker._add's formatted_traceback", "is the formatted traceback of complete()")
    assert luigi_internals.complete_traceback() is None, "outside such a handler there is none"


# ---------------------------------------------------------------- InterfaceLogging._configured


def test_skipping_luigis_logging_setup_keeps_the_root_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(InterfaceLogging, "_configured", False)
    root = logging.getLogger()
    before = list(root.handlers)
    luigi_internals.skip_luigi_logging_setup()
    assert InterfaceLogging.setup() is False, broken(
        "InterfaceLogging._configured", "stops luigi's logging setup once true")
    assert list(root.handlers) == before


def test_a_worker_gives_a_running_task_its_status_and_progress_callbacks(tmp_path) -> None:
    """Task.__init__ sets set_status_message / set_progress_percentage to None; the worker assigns callables.
    report_status / report_progress reach them in a real luigi.build and do nothing outside a worker."""
    import luigi

    from tasks.luigi_internals import report_progress, report_status

    seen: list[object] = []

    class _Reports(luigi.Task):
        def complete(self) -> bool:
            return bool(seen)

        def run(self) -> None:
            seen.append(callable(self.set_status_message) and callable(self.set_progress_percentage))
            report_status(self, "half way")
            report_progress(self, 50)

    assert luigi.build([_Reports()], local_scheduler=True, workers=1)
    assert seen == [True], ("luigi's worker no longer sets Task.set_status_message / set_progress_percentage: "
                            "fix tasks/luigi_internals.py report_status / report_progress")
    idle = _Reports()
    report_status(idle, "no worker")  # no callback: nothing happens, nothing raises
    report_progress(idle, 10)
