"""Fixtures for brain tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .brainkit import git


@pytest.fixture
def repo(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """Factory: a committed git repo with a `task/` directory holding the given files; returns task/."""

    def build(files: dict[str, str]) -> Path:
        root = tmp_path / "repo"
        task_dir = root / "task"
        task_dir.mkdir(parents=True)
        for name, text in files.items():
            (task_dir / name).write_text(text)
        git(root, "init", "-q", "-b", "main")
        git(root, "add", "-A")
        git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
        return task_dir

    return build
