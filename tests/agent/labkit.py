"""Helpers for end-to-end tests: a toy task in a real git repository, driven through the real `labmind`.

Agents act through the CLI (or MCP); the checks read the store directly, which is quicker than a CLI call each.
"""

from __future__ import annotations

import difflib
import json
import subprocess
from pathlib import Path
from typing import Any

from lab.toy import labmind, make_toy

from labmind.paths import LabPaths
from labmind.store import ExperimentRow, Store
from labmind.store.lock import holder_pid

from .kit import wait_for

__all__ = [
    "as_json",
    "changed_lines",
    "edit",
    "expected_lines",
    "experiments",
    "labmind",
    "make_toy",
    "stop_lab",
    "wait_stopped",
]


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(proc.stdout)


def edit(worktree: str, old: str, new: str) -> tuple[str, str]:
    """Edit train.py in an experiment's worktree as an agent would; returns (before, after)."""
    path = Path(worktree) / "train.py"
    before = path.read_text()
    assert old in before
    after = before.replace(old, new)
    path.write_text(after)
    return before, after


def changed_lines(diff: str) -> list[str]:
    """The removed and added lines of a unified diff, without headers."""
    return [ln for ln in diff.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]


def expected_lines(before: str, after: str) -> list[str]:
    return changed_lines("\n".join(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="")))


def experiments(task: Path) -> dict[int, ExperimentRow]:
    store = Store.open(LabPaths(task).db, readonly=True)
    try:
        return {r.id: r for r in store.experiments()}
    finally:
        store.close()


def wait_stopped(task: Path, timeout: float = 120.0) -> None:
    wait_for(lambda: holder_pid(LabPaths(task).lock) is None, timeout=timeout)


def stop_lab(task: Path) -> None:
    """End a lab a test started (it runs detached); harmless when it has ended already."""
    if holder_pid(LabPaths(task).lock) is not None:
        labmind("stop", str(task), check=False)


def status_of(task: Path) -> dict:
    return as_json(labmind("status", str(task), "--json"))
