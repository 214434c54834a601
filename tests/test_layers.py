"""The package layers: every module imports only its own package and packages below it.

Read bottom to top. Each layer may use what is under it, never what is over it, so a change at the top
cannot break the bottom and a reader can learn the house from the ground up. Only the applications on top
(`cli`, and `packs`, which add commands to it) may import anything. Imports inside functions and under
TYPE_CHECKING count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "labmind"

#: Bottom first. One name per layer: a package (directory) or a single module at the top of labmind/.
LAYERS: tuple[str, ...] = (
    # vocabulary: plain values and words, no labmind imports beyond each other
    "numeric",      # safe means and variances
    "verdicts",     # the verdict names and what they mean
    "model",        # the nouns: Idea, PastExperiment, the kinds and statuses of experiments, runs and lines
    "scale",        # the scale a metric is judged on and the minimum effect
    "figures",      # how a figure with its spread is written
    "paths",        # where a lab keeps its files
    "findings",     # an integrity finding: rule, path, line, evidence (stored, shown, in every --json)
    "terminal",
    "pyast",
    # the parts, each on the ones below
    "task",         # labmind.toml
    "judge",        # statistics over a task's runs
    "llm",          # model providers, budgets, JSON answers, prompt templates
    "store",        # the lab's SQLite store
    "workspace",    # git worktrees, digests, scope
    "search",       # line policies
    "execute",      # slots, sandbox, run processes
    "guard",        # integrity rules and audits
    "library",      # insights across labs
    "brains",       # llm, command, agent and knobs brains
    "lab",          # the lab: scheduling, judging, steering
    "observe",      # live view, dashboard, report, export
    "agent_tools",  # the verbs an interactive agent drives a lab with (CLI and MCP)
    "bench",        # labmind's own benchmarks
)
#: Applications: they put everything together and may import any package.
TOP = frozenset({"cli", "packs"})


def _unit(module: str) -> str:
    """The layer name of a dotted module under labmind (`labmind.lab.loop` -> `lab`)."""
    return module.split(".")[1] if module.count(".") else module


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every labmind module `path` imports, relative imports resolved."""
    rel = path.relative_to(SRC.parent).with_suffix("")
    package = list(rel.parts[:-1])  # the package this file's relative imports start from
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            if node.module:
                found.append((node.lineno, module))
            else:  # `from labmind import figures`, `from . import x`: each name may be a module
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return [(line, m) for line, m in found if m.startswith("labmind.") and m != "labmind.__init__"]


def _unit_of_file(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def upward_imports() -> list[str]:
    rank = {name: i for i, name in enumerate(LAYERS)}
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        unit = _unit_of_file(path)
        if unit == "__init__" or unit in TOP:
            continue
        for line, module in _imports(path):
            target = _unit(module)
            if target == unit or target == "__init__":
                continue
            if target in TOP or rank.get(target, -1) > rank[unit]:
                problems.append(f"{path.relative_to(SRC.parent)}:{line} ({unit}) imports {module} ({target})")
    return problems


def test_every_package_has_a_layer() -> None:
    units = {_unit_of_file(p) for p in SRC.rglob("*.py")} - {"__init__"} - TOP
    assert sorted(units - set(LAYERS)) == [], "add new packages to LAYERS in tests/test_layers.py"
    assert sorted(set(LAYERS) - units) == [], "LAYERS names a package that no longer exists"


def test_no_package_imports_one_above_it() -> None:
    assert upward_imports() == []


@pytest.mark.parametrize("source, expected", [
    ("from labmind.lab.loop import Lab\n", "lab"),
    ("import labmind.observe.live\n", "observe"),
    ("def f():\n    from labmind.cli import main\n", "cli"),
    ("from .. import brains\n", "brains"),
])
def test_the_scan_sees_every_form_of_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str,
                                            expected: str) -> None:
    """The check can fail: an upward import written any of these ways is found."""
    fake = tmp_path / "labmind"
    (fake / "store").mkdir(parents=True)
    (fake / "store" / "bad.py").write_text(source, encoding="utf-8")
    monkeypatch.setattr(f"{__name__}.SRC", fake)
    assert [p.rsplit("(", 1)[1].rstrip(")") for p in upward_imports()] == [expected]
