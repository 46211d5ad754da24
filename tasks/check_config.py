"""`python -m tasks check-config`: every problem of the effective configuration at once, each naming
the file and the key to fix.

Reads every file Luigi reads, in Luigi's order (the project's luigi.cfg, /etc/luigi/..., a
luigi.cfg in the working directory, LUIGI_CONFIG_PATH), and reports:

- unknown sections and keys, with a "did you mean" (`[segment]` -> `[segments]`): a typo must
  never silently fall back to a default such as the bundled demo sample;
- values of the wrong type (Luigi's own parsing of each section of this package);
- missing files: the segment CSV, the table specs and their SQL files, the templates, the
  suppression list, the logging config;
- malformed campaign settings: quiet hours, default time zone, frequency cap, suppression-list
  lines, an unsubscribe URL that is not https or lacks {token};
- a provider without its environment variables;
- the bundled demo sample used with a real provider (refused: 1,000 fictional customers must
  never reach SendGrid, Twilio or FCM).

The cron wrapper runs the same check before it starts luigi, and `make run` runs it. Known
sections are Luigi's registered Config classes (ours and Luigi's own), the task families
(Luigi reads task parameters from a section named after the task) and the few free-form
sections Luigi reads without a Config class.
"""

from __future__ import annotations

import configparser
import dataclasses
import difflib
import importlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import luigi
import luigi.configuration

from tasks import config, state
from tasks.campaign import send_config
from tasks.channels.templates import template_path
from tasks.elt.graph import dependencies
from tasks.elt.specs import load_specs
from tasks.errors import TasksError
from tasks.luigi_internals import config_paths, configured_value, registered_classes

# Sections Luigi reads with arbitrary keys or without a Config class.
FREE_FORM = {"resources", "prometheus", "task_history", "hdfs", "spark", "batch_notifier"}


@dataclass(frozen=True)
class Problem:
    """One thing to fix, with where to fix it."""

    where: str  # "<file> [section] key" or "<file> [section]" or "environment"
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def config_files() -> list[Path]:
    """The files Luigi reads, in order, that exist."""
    paths = config_paths()
    env = os.environ.get("LUIGI_CONFIG_PATH")
    if env:
        paths.append(env)  # luigi reads it as one path, added when it reads the files
    seen: list[Path] = []
    for raw in paths:
        path = Path(raw).resolve()
        if path.is_file() and path not in seen:
            seen.append(path)
    return seen


def known_sections() -> dict[str, set[str] | None]:
    """Section -> its keys (normalised with `_`), or None when any key is allowed."""
    sections: dict[str, set[str] | None] = dict.fromkeys(FREE_FORM)
    # sections of ours read without a Config class (see config.campaign)
    sections[config.CAMPAIGN_SECTION] = {f.name for f in dataclasses.fields(config.CampaignSettings)}
    for name, cls in registered_classes().items():
        if name.startswith("_") or name in ("Config", "Section"):
            continue
        if issubclass(cls, luigi.Config | luigi.Task):
            sections[name] = {_norm(p) for p, _ in cls.get_params()}
    return sections


def check() -> list[Problem]:
    """Every problem of the effective configuration (empty: fine)."""
    problems: list[Problem] = []
    where = _key_locations(problems)
    _import_scheduled_module(where, problems)
    problems += _unknown(where)
    problems += _types(where)
    problems += _files(where)
    problems += _providers(where)
    problems += _state(where)
    problems += _schedule(where)
    return problems


def main() -> int:
    """Print the problems; 2 when there is any (the cron wrapper's config exit code)."""
    problems = check()
    files = ", ".join(str(p) for p in config_files()) or "no file"
    if not problems:
        print(f"configuration OK ({files})")
        return 0
    print(f"{len(problems)} configuration problem(s) (read: {files}):")
    for problem in problems:
        print(f"  - {problem}")
    return 2


def _import_scheduled_module(where: dict[tuple[str, str | None], Path], problems: list[Problem]) -> None:
    """Import `[schedule] module` (what the cron wrapper runs) so its tasks' sections are known."""
    module = luigi.configuration.get_config().get("schedule", "module", "tasks")
    try:
        importlib.import_module(module)
    except ImportError as exc:
        problems.append(Problem(_place(where, "schedule", "module"), f"cannot import {module!r}: {exc}"))


def _norm(key: str) -> str:
    return key.strip().lower().replace("-", "_")


def _key_locations(problems: list[Problem]) -> dict[tuple[str, str | None], Path]:
    """(section, key) -> the last file that sets it; (section, None) -> the last file with the section."""
    where: dict[tuple[str, str | None], Path] = {}
    for path in config_files():
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
        except configparser.Error as exc:
            problems.append(Problem(str(path), f"not a valid config file: {exc}"))
            continue
        for section in parser.sections():
            where[(section, None)] = path
            for key in parser.options(section):
                where[(section, _norm(key))] = path
    return where


def _place(where: dict[tuple[str, str | None], Path], section: str, key: str | None = None) -> str:
    path = where.get((section, key)) or where.get((section, None))
    return f"{path or 'defaults'} [{section}]" + (f" {key}" if key else "")


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _unknown(where: dict[tuple[str, str | None], Path]) -> list[Problem]:
    known = known_sections()
    problems = []
    for section, key in sorted(where, key=lambda k: (k[0], k[1] or "")):
        if key is None:
            if section not in known:
                problems.append(Problem(_place(where, section), "unknown section" + _suggest(section, known)))
            continue
        keys = known.get(section)
        if keys is not None and key not in keys:
            problems.append(Problem(_place(where, section, key), "unknown key" + _suggest(key, keys)))
    return problems


def _types(where: dict[tuple[str, str | None], Path]) -> list[Problem]:
    problems = []
    sections = {cls.section: cls for cls in vars(config).values()
                if isinstance(cls, type) and issubclass(cls, config.Section) and cls.section in known_sections()}
    for name, cls in sorted(sections.items()):
        for param_name, param in cls.get_params():
            try:
                configured_value(param, name, param_name)  # Luigi's own parsing of the configured value
            except (ValueError, TypeError, luigi.parameter.ParameterException) as exc:
                problems.append(Problem(_place(where, name, param_name), f"wrong value: {exc}"))
    return problems


def _files(where: dict[tuple[str, str | None], Path]) -> list[Problem]:
    problems = []

    def need(section: str, key: str, value: str) -> Path | None:
        if not value:
            return None
        path = config.resolve_path(value)
        if not path.is_file():
            problems.append(Problem(_place(where, section, key), f"file not found: {path}"))
            return None
        return path

    with _quietly(problems):
        need("segments", "input_path", config.SegmentsConfig().input_path)
    with _quietly(problems):
        specs_path = need("elt", "table_specs", config.EltConfig().table_specs)
        if specs_path is not None:
            specs = load_specs(specs_path)
            problems.extend(Problem(f"{specs_path} [[table]] {spec.name} sql", f"file not found: {spec.sql_path}")
                            for spec in specs if not spec.sql_path.is_file())
            if all(spec.sql_path.is_file() for spec in specs):
                dependencies(specs)  # a cycle, an unparsable SELECT, an unknown depends_on: a ConfigError
    with _quietly(problems):
        need("campaign", "suppression_list", config.campaign().suppression_list)
    for channel in send_config.CHANNELS:
        with _quietly(problems):
            directory = config.resolve_path(config.campaign().templates_dir)
            need(f"{channel}_campaign", "template",
                 str(template_path(directory, channel, send_config.channel_config(channel).template)))
    logging_conf = luigi.configuration.get_config().get("core", "logging_conf_file", "")
    need("core", "logging_conf_file", logging_conf)
    return problems


def _providers(where: dict[tuple[str, str | None], Path]) -> list[Problem]:
    """What each send would refuse to start on (send_config.config_problems: provider, limits, environment,
    the demo sample with a real provider)."""
    problems: list[Problem] = []
    with _quietly(problems):
        for section, key, what in send_config.campaign_problems():
            if "does not exist" not in what:  # a missing file: _files names it
                problems.append(Problem(_place(where, section, key), what))
    for channel in send_config.CHANNELS:
        with _quietly(problems):
            for section, key, what in send_config.config_problems(channel, send_config.channel_config(channel)):
                place = "environment" if section == "environment" else _place(where, section, key)
                problems.append(Problem(place, what))
    return problems


def _state(where: dict[tuple[str, str | None], Path]) -> list[Problem]:
    """What keeps the state backend of [state] from working (with backend = postgres: TASKS_STATE_DSN unset, or
    a database that does not answer; a send, a shard lock or a cron slot would fail on it later, after the ELT
    ran)."""
    problems: list[Problem] = []
    with _quietly(problems):
        problems += [Problem("environment" if section == "environment" else _place(where, section, key), what)
                     for section, key, what in state.backend().problems()]
    return problems


def _schedule(where: dict[tuple[str, str | None], Path]) -> list[Problem]:
    """[schedule] values the cron wrapper cannot use (a cron expression, a time zone, a date, counts)."""
    from tasks.ops.cron import schedule_problems

    problems: list[Problem] = []
    with _quietly(problems):
        problems += [Problem(_place(where, "schedule", key), what)
                     for key, what in schedule_problems(config.ScheduleConfig())]
    return problems


class _quietly:  # noqa: N801 - named for how it reads at the call site: `with _quietly(problems):`
    """Turn an error while reading a section into a problem (the type check reports the key)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if exc is None:
            return False
        if isinstance(exc, ValueError | TypeError | luigi.parameter.ParameterException):
            return True  # a malformed value: _types names it with its key
        if isinstance(exc, TasksError):
            self.problems.append(Problem("config", str(exc)))
            return True
        return False
