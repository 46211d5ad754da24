"""Every use of Luigi's private names, in one place: an upgrade of luigi breaks here and in
tests/unit/test_luigi_internals.py, nowhere else.

Checked against luigi 3.8.1. Each function below wraps one private name; its test asserts that the
name still exists and still behaves as we rely on, and fails naming the internal and this module.

- `LuigiConfigParser._config_paths` (luigi/configuration/cfg_parser.py): the list of config files
  Luigi reads, in order. `config_paths()` reads it (check-config reports the files),
  `prepend_config_path()` puts the project's luigi.cfg first (`luigi --module tasks` from any
  directory), `use_config_paths()` replaces it (tests: one config file per test).
- `LuigiConfigParser._instance` (luigi/configuration/base_parser.py): the parser singleton;
  `use_config_paths()` drops it so that the next read starts from an empty parser (a reload
  alone keeps the keys of files no longer listed).
- `Register._get_reg()` (luigi/task_register.py): task family -> class for every registered
  Task and Config, `Register.AMBIGUOUS_CLASS` for a family two unrelated classes claim.
  `registered_classes()`: check-config's list of known sections.
- `Parameter._get_value(section, name)` (luigi/parameter.py): Luigi's own lookup and parsing of a
  parameter's configured value, `luigi.parameter._no_value` when it has none. `configured_value()`:
  check-config's type check of each key.
- `Parameter._value_iterator(task_name, param_name)` (luigi/parameter.py): the candidate values of
  a parameter (command line, config, deprecated config path, default); the first that is not
  `_no_value` wins. `LateDefaultParameter` appends a default computed when a task is built
  (tasks.params.RunDateParameter: the run date must not be frozen at import time).
- `Task._event_callbacks` (luigi/task.py): class -> event -> set of handlers. `event_handlers()`
  lets tasks/ops/alerts.py find and remove its own earlier handlers (no double alerts after a
  re-import); adding and removing go through the public `event_handler` / `remove_event_handler`.
- `Worker._add(task, is_complete)` and its local `formatted_traceback` (luigi/worker.py): when a
  task's complete() raises, Luigi fires `Event.DEPENDENCY_MISSING` with the task only, while the
  traceback sits in that local of the calling frame. `complete_traceback()` walks the stack to it.
- `Task.set_status_message` / `Task.set_progress_percentage` (luigi/task.py): public, but `Task.__init__`
  sets them to None and the worker assigns the callables that reach luigid, so their declared type is None.
  `report_status()` and `report_progress()` call them when a worker has set them (a task built outside
  a worker, in a unit test, has none).
- `InterfaceLogging._configured` (luigi/setup_logging.py): true once Luigi applied its logging
  setup; `skip_luigi_logging_setup()` sets it so that `luigi.build()` in pytest leaves pytest's
  log capture alone.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, TypeVar

import luigi
import luigi.parameter
from luigi.configuration.cfg_parser import LuigiConfigParser
from luigi.setup_logging import InterfaceLogging
from luigi.task_register import Register

LUIGI_VERSION_CHECKED = "3.8.1"

T = TypeVar("T")

# ---------------------------------------------------------------- configuration files


def config_paths() -> list[str]:
    """The config files Luigi reads, in its order (a copy; LUIGI_CONFIG_PATH is already in it once
    luigi.configuration was imported with that variable set)."""
    return list(LuigiConfigParser._config_paths)


def prepend_config_path(path: str) -> bool:
    """Put `path` first in Luigi's list of config files (later files override it) and reload;
    False when it was listed already (nothing changed)."""
    if path in LuigiConfigParser._config_paths:
        return False
    LuigiConfigParser._config_paths.insert(0, path)
    LuigiConfigParser.reload()
    return True


def use_config_paths(paths: list[str]) -> None:
    """Make Luigi read exactly `paths`, from a fresh parser (no key of an earlier file survives)."""
    LuigiConfigParser._config_paths = list(paths)
    LuigiConfigParser._instance = None
    LuigiConfigParser.reload()


# ---------------------------------------------------------------- registry and parameters


def registered_classes() -> dict[str, type[luigi.Task]]:
    """Task family -> class of every registered Task and Config (ours and Luigi's own), leaving out a
    family that two unrelated classes claim (Luigi cannot build it by name either)."""
    return {name: cls for name, cls in Register._get_reg().items() if cls is not Register.AMBIGUOUS_CLASS}


def configured_value(param: luigi.Parameter, section: str, name: str) -> Any:
    """The value Luigi would give parameter `name` of `section` (command line, config file, default),
    parsed by the parameter; None when it has none. Raises what the parameter's parse raises for a
    malformed configured value (ValueError, TypeError, luigi.parameter.ParameterException)."""
    value = param._get_value(section, name)
    return None if value is luigi.parameter._no_value else value


class LateDefaultParameter(luigi.Parameter[T]):
    """A parameter whose default is `late_default()`, asked when a task is built without the value
    (not when the class is defined); a command-line or config value still wins."""

    def late_default(self) -> T:
        """The default at the moment a task is built; subclasses say what it is."""
        raise NotImplementedError

    def _value_iterator(self, task_name: str, param_name: str) -> Iterator[tuple[Any, str | None]]:
        yield from super()._value_iterator(task_name, param_name)
        yield (self.late_default(), None)


# ---------------------------------------------------------------- events


def event_handlers(event: str, cls: type[luigi.Task] = luigi.Task) -> list[Callable[..., Any]]:
    """The handlers registered with `cls.event_handler(event)` on `cls` itself (not its subclasses)."""
    return list(luigi.Task._event_callbacks.get(cls, {}).get(event, ()))


def complete_traceback() -> str | None:
    """Inside an `Event.DEPENDENCY_MISSING` handler fired because complete() raised: the formatted
    traceback Luigi's worker holds (`Worker._add`'s local `formatted_traceback`); None elsewhere."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "_add":
            trace = frame.f_locals.get("formatted_traceback")
            if isinstance(trace, str) and trace.strip():
                return trace
        frame = frame.f_back
    return None


# ---------------------------------------------------------------- worker callbacks


def report_status(task: luigi.Task, message: str) -> None:
    """Show `message` as the task's status in luigid's visualiser (a no-op outside a worker)."""
    callback: Callable[[str], None] | None = getattr(task, "set_status_message", None)
    if callable(callback):
        callback(message)


def report_progress(task: luigi.Task, percentage: float) -> None:
    """Show the task's progress bar in luigid's visualiser (a no-op outside a worker)."""
    callback: Callable[[float], None] | None = getattr(task, "set_progress_percentage", None)
    if callable(callback):
        callback(percentage)


# ---------------------------------------------------------------- logging


def skip_luigi_logging_setup() -> None:
    """Tell Luigi its logging is configured already: `luigi.build()` then applies no
    `[core] logging_conf_file` (pytest owns logging in the test process)."""
    InterfaceLogging._configured = True
