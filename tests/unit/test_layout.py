"""The house in wings: which folder may import which, no loops, and what `tasks` exports.

Rooms, from the bottom up:
- base: the modules directly in tasks/ (config, errors, files, pii, params, ...): import only base;
- the state library: tasks/state/ (SQLite or Postgres, locks, markers): itself and base;
- libraries: tasks/warehouse/, tasks/channels/: themselves, the state library and base, never a wing or
  each other;
- wings: tasks/elt/, tasks/campaign/, tasks/ops/, tasks/demo/: themselves, the libraries and base,
  never another wing;
- the top: tasks/__init__.py, tasks/__main__.py, tasks/run_all.py, tasks/check_config.py, tasks/status.py:
  anything.
Every `import` in every file counts, including those inside functions; only imports under
`if TYPE_CHECKING:` (which never run) are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import luigi

from tasks.config import PROJECT_ROOT

TASKS = PROJECT_ROOT / "tasks"
TOP = {"tasks", "tasks.__main__", "tasks.run_all", "tasks.check_config", "tasks.status"}
STATE = "state"  # the lowest library: every other library and wing may use it
LIBRARIES = {"warehouse", "channels"}
WINGS = {"elt", "campaign", "ops", "demo"}
EXPORTED = {
    "RunAll", "BuildAllTables", "StageTable", "PublishTable", "MauSummary",
    "LoadSegments", "SendEmailCampaign", "SendSmsCampaign", "SendPushNotification",
    "ExportSegmentLoad", "ExportSendResults", "ExportCampaignEvents",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room(module: str) -> str:
    if module in TOP:
        return "top"
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and (TASKS / parts[1]).is_dir()):
        return parts[1]
    return "base"


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skipped


def _resolve(name: str) -> str:
    """The deepest module of `name` that exists under tasks/ (`tasks.campaign.x.Y` -> `tasks.campaign.x`)."""
    parts = name.split(".")
    while parts:
        base = PROJECT_ROOT.joinpath(*parts)
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    raise AssertionError(f"cannot resolve {name}")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(_resolve(a.name) for a in node.names if a.name.split(".")[0] == "tasks")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tasks":
            found.update(_resolve(f"{node.module}.{a.name}") for a in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) - {module_name(p)} for p in sorted(TASKS.rglob("*.py"))}


def allowed(source: str, target: str) -> bool:
    src, dst = room(source), room(target)
    if src == "top":
        return True
    if dst == "top":
        return False
    if src == dst or dst == "base":
        return True
    if dst == STATE:
        return src in LIBRARIES or src in WINGS
    return src in WINGS and dst in LIBRARIES  # never base -> up, library -> wing or library, wing -> wing


def test_every_folder_imports_only_down() -> None:
    graph = import_graph()
    assert len(graph) > 40, "the walk found too few modules"
    bad = sorted(f"{s} -> {t} ({room(s)} -> {room(t)})" for s, targets in graph.items() for t in targets
                 if not allowed(s, t))
    assert bad == []


def test_there_are_no_import_loops() -> None:
    graph = import_graph()
    loops: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                loops.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    # importing the package root from inside it (`from tasks import config`) resolves to tasks.config,
    # so a loop here is a real one
    assert loops == []


def test_the_rules_catch_a_wrong_arrow() -> None:
    assert not allowed("tasks.channels.sender", "tasks.campaign.wiring")  # library -> wing
    assert not allowed("tasks.warehouse.client", "tasks.channels.http")  # library -> library
    assert not allowed("tasks.elt.tasks", "tasks.campaign.tasks")  # wing -> wing
    assert not allowed("tasks.config", "tasks.warehouse.client")  # base -> library
    assert not allowed("tasks.config", "tasks.state.db")  # base -> state
    assert not allowed("tasks.state.locks", "tasks.channels.ledger")  # state -> library
    assert allowed("tasks.channels.ledger", "tasks.state.db") and allowed("tasks.ops.cron", "tasks.state.locks")
    assert not allowed("tasks.ops.cron", "tasks.run_all")  # wing -> top
    assert allowed("tasks.ops.slack", "tasks.channels.http")
    assert allowed("tasks.run_all", "tasks.elt.tasks")
    assert room("tasks.config") == "base" and room("tasks.elt") == "elt" and room("tasks.run_all") == "top"


def test_star_import_gives_the_twelve_task_classes() -> None:
    namespace: dict[str, object] = {}
    exec("from tasks import *", namespace)  # the statement under test
    exported = {k for k in namespace if not k.startswith("__")}
    assert exported == EXPORTED
    for name in EXPORTED:
        cls = namespace[name]
        assert isinstance(cls, type) and issubclass(cls, luigi.Task)
        assert luigi.task_register.Register.get_task_cls(name) is cls


def test_every_task_takes_date_the_same_way() -> None:
    import tasks
    from tasks.params import RunDateParameter

    for name in EXPORTED:
        param = dict(getattr(tasks, name).get_params())["date"]
        assert type(param) is RunDateParameter, name


MAX_FUNCTION_LINES = 60


def long_functions(root: Path) -> list[str]:
    """Every function or method under `root` longer than MAX_FUNCTION_LINES (signature to last line)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_in_tasks_is_longer_than_a_screen() -> None:
    """A stage of a pipeline is a named function that fits on a screen (about 60 lines)."""
    assert long_functions(PROJECT_ROOT / "tasks") == []


def test_the_length_rule_catches_a_long_function(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "pkg" / "m.py").write_text(f"def short():\n    pass\n\n\ndef long():\n{body}\n")
    assert long_functions(tmp_path / "pkg") == ["pkg/m.py:5 long (61 lines)"]
