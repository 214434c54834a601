"""Helpers for executor tests: a fake worktree and a one-call way to run a command in it."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from labmind.execute.base import RunOutcome, RunSpec, Slot
from labmind.execute.prepared import PreparedRunner
from labmind.execute.sandbox import Sandbox

#: The real interpreter: a venv's python may live under /tmp, which the sandbox replaces with a tmpfs.
PY = os.path.realpath(sys.executable)

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
MODES = [
    pytest.param("none", id="none"),
    pytest.param("bwrap", id="bwrap", marks=[pytest.mark.sandbox, needs_bwrap]),
]


@dataclass
class Tree:
    """A worktree with a task directory inside it, and a log path outside it."""

    root: Path
    task: Path
    log: Path

    def spec(self, command: str, **kwargs: object) -> RunSpec:
        fields: dict = {
            "run_id": 1,
            "command": command,
            "workdir": self.task,
            "writable": self.root,
            "log_path": self.log,
            "timeout_s": 30.0,
            "metric": "score",
            "token": f"test-{uuid.uuid4().hex}",
        }
        fields.update(kwargs)
        return RunSpec(**fields)

    def run(
        self, mode: str, command: str, *, slot: Slot = Slot(0), grace_s: float = 0.5, network: bool = False,
        **kwargs: object,
    ) -> RunOutcome:  # fmt: skip
        executor = PreparedRunner([slot], Sandbox(mode), grace_s=grace_s, network=network)  # type: ignore[arg-type]
        return asyncio.run(executor.run(self.spec(command, **kwargs), slot))

    def log_text(self) -> str:
        return self.log.read_text()


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    root = tmp_path / "wt"
    task = root / "task"
    task.mkdir(parents=True)
    return Tree(root=root, task=task, log=tmp_path / "logs" / "run.log")


def alive(pid: int) -> bool:
    """True when pid is a live process (zombies count as dead: they run nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
