"""The boundaries of docs/architecture.md, enforced.

Reads every module's imports from its syntax tree (function-level imports too, relative imports
resolved; nothing is executed) and checks them against the import table parsed from
docs/architecture.md, so the page and the code cannot drift apart. Also refuses any import
circle between our modules, counted module by module.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "architecture.md"


@dataclass(frozen=True)
class Rule:
    """One row of the import table: the rooms of ours a room may import, the third-party
    packages it must never import."""

    may_import: frozenset[str]
    never_imports: frozenset[str]


@dataclass(frozen=True)
class Import:
    """One imported module, as written in `importer` at `line` (relative imports resolved)."""

    importer: str
    target: str
    line: int


def read_import_table(markdown: str) -> dict[str, Rule]:
    """The rows of the table under the "## Import table" heading: room, may import, never imports,
    each a backticked name ("—" for none)."""
    section = markdown.split("## Import table", 1)[1].split("\n## ", 1)[0]
    rules = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        room, may, never = (re.findall(r"`([\w.]+)`", cell) for cell in cells)
        rules[room[0]] = Rule(frozenset(may), frozenset(never))
    return rules


def module_files(root: Path, rooms: set[str]) -> dict[str, Path]:
    """Every Python module of the rooms present under root, by dotted name."""
    modules = {}
    for room in sorted(rooms):
        for path in sorted((root / room).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """The modules that `name` imports anywhere in its file. `from P import n` names the module
    P.n where that is one of ours, else P."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append(Import(name, submodule if submodule in modules else base, node.lineno))
    return list(dict.fromkeys(found))  # `from P import a, b` is one import of P


def boundary_violations(imports: list[Import], rules: dict[str, Rule]) -> list[str]:
    """One sentence per import that the table forbids."""
    problems = []
    for item in imports:
        room, top = item.importer.split(".")[0], item.target.split(".")[0]
        rule = rules[room]
        where = f"{item.importer} (line {item.line}) imports {item.target}"
        if top in rules and top != room and top not in rule.may_import:
            allowed = ", ".join(sorted(rule.may_import)) or "none of ours"
            problems.append(f"{where}: {room} may import only {allowed}")
        elif top in rule.never_imports:
            problems.append(f"{where}: {room} must never import {top}")
    return problems


def import_graph(imports: list[Import], modules: dict[str, Path]) -> dict[str, set[str]]:
    """Which of our modules each module imports (an import of a name inside a module counts as
    an import of that module)."""
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for item in imports:
        target = item.target
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != item.importer:
            edges[item.importer].add(target)
    return edges


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules from which each reaches every other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            groups.append(sorted(group))

    for name in sorted(edges):
        if name not in index:
            visit(name)
    return groups


def shortest_circle(start: str, group: list[str], edges: dict[str, set[str]]) -> list[str]:
    """The shortest way from start back to itself inside group (breadth first), to name in a
    failure message."""
    paths = {nxt: [start, nxt] for nxt in sorted(edges[start]) if nxt in group}
    frontier = list(paths)
    while start not in paths:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(edges[node]):
                if nxt in group and nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    return paths[start]


def import_circles(imports: list[Import], modules: dict[str, Path]) -> list[str]:
    """One sentence per group of our modules that import each other around a circle."""
    edges = import_graph(imports, modules)
    return [
        f"import circle among {', '.join(group)}: "
        f"{' -> '.join(shortest_circle(group[0], group, edges))} "
        "(no import circle between modules of ours)"
        for group in strongly_connected(edges)
        if len(group) > 1
    ]


def check(root: Path, rules: dict[str, Rule]) -> list[str]:
    """Every leak and every circle under root, one sentence each."""
    modules = module_files(root, set(rules))
    imports = [item for name, path in modules.items() for item in imports_of(name, path, modules)]
    return boundary_violations(imports, rules) + import_circles(imports, modules)


def test_every_room_of_the_repository_has_a_row() -> None:
    rules = read_import_table(ARCHITECTURE.read_text())
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    assert packages <= set(rules), f"rooms missing from the import table: {packages - set(rules)}"
    assert {"protocol", "firmware_sim", "robot_env", "train", "deploy", "glocal"} <= set(rules)


def test_imports_follow_the_table_and_make_no_circle() -> None:
    problems = check(ROOT, read_import_table(ARCHITECTURE.read_text()))
    assert not problems, "docs/architecture.md is broken here:\n" + "\n".join(problems)


SYNTHETIC_TABLE = """
## Import table

| room | may import | never imports |
| --- | --- | --- |
| `low` | — | `torch` |
| `high` | `low` | — |
"""


@pytest.fixture
def synthetic_tree(tmp_path: Path) -> Path:
    files = {
        "low/__init__.py": "",
        "low/a.py": "def late():\n    from . import b\n",
        "low/b.py": "from low.a import late\n",
        "low/heavy.py": "def f():\n    import torch.nn\n",
        "high/__init__.py": "from low import a\n",
        "low/leak.py": "from high import something\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_the_check_catches_a_leak_a_banned_package_and_a_circle(synthetic_tree: Path) -> None:
    problems = check(synthetic_tree, read_import_table(SYNTHETIC_TABLE))
    assert sorted(problems) == [
        "import circle among low.a, low.b: low.a -> low.b -> low.a"
        " (no import circle between modules of ours)",
        "low.heavy (line 2) imports torch.nn: low must never import torch",
        "low.leak (line 1) imports high: low may import only none of ours",
    ]
