"""Scope rules: new files that shadow modules, and symlinks out of the worktree, are hard rejections."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labmind.guard import check_change

from .guardkit import BASE_TRAIN, TASK, check, rules_of


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("sitecustomize.py", "is loaded by Python"),
        ("usercustomize.py", "is loaded by Python"),
        ("conftest.py", "is loaded by Python or pytest"),
        ("evil.pth", "is loaded by Python"),
        ("json.py", "shadows the standard-library module json"),
        ("pkg/random.py", "shadows the standard-library module random"),
        ("numpy/__init__.py", "shadows the installed package numpy"),
        ("pydantic.py", "shadows the installed package pydantic"),
    ],
)
def test_new_shadowing_file_is_rejected(tmp_path: Path, path: str, reason: str) -> None:
    (finding,) = check(tmp_path, {path: "x = 1\n"}, {})
    assert (finding.rule, finding.family, finding.severity, finding.path, finding.line) == (
        "shadow_module",
        "scope",
        "reject",
        path,
        None,
    )
    assert reason in finding.evidence and path in finding.evidence


def test_an_existing_file_with_a_shadowing_name_is_not_new(tmp_path: Path) -> None:
    assert check(tmp_path, {"json.py": "x = 2\n"}, {"json.py": "x = 1\n"}) == []


def test_scope_findings_come_before_static_ones(tmp_path: Path) -> None:
    findings = check(tmp_path, {"conftest.py": "import sys\nsys.exit(0)\n"}, {})
    assert rules_of(findings) == ["shadow_module", "exit_trick"]


def _worktree(tmp_path: Path) -> Path:
    (tmp_path / "wt").mkdir()
    (tmp_path / "wt" / ".git").write_text("gitdir: /elsewhere\n")  # a linked worktree has a .git file
    task_dir = tmp_path / "wt" / "task"
    task_dir.mkdir()
    (task_dir / "train.py").write_text(BASE_TRAIN)
    return task_dir


def test_symlink_out_of_the_worktree_is_rejected(tmp_path: Path) -> None:
    task_dir = _worktree(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("labels\n")
    os.symlink(secret, task_dir / "labels.txt")
    findings = check_change(TASK, task_dir, lambda p: None, ["labels.txt"])
    assert [(f.rule, f.family, f.severity, f.path) for f in findings] == [
        ("symlink_out", "scope", "reject", "labels.txt")
    ]
    assert findings[0].evidence == f"labels.txt -> {secret}"


def test_symlink_through_a_linked_directory_is_rejected(tmp_path: Path) -> None:
    task_dir = _worktree(tmp_path)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.txt").write_text("x\n")
    os.symlink(tmp_path / "outside", task_dir / "cache")
    findings = check_change(TASK, task_dir, lambda p: None, ["cache/x.txt"])
    assert rules_of(findings) == ["symlink_out"]


def test_symlink_inside_the_worktree_is_fine(tmp_path: Path) -> None:
    task_dir = _worktree(tmp_path)
    (tmp_path / "wt" / "shared.txt").write_text("ok\n")
    os.symlink("../shared.txt", task_dir / "shared.txt")
    assert check_change(TASK, task_dir, lambda p: None, ["shared.txt"]) == []
