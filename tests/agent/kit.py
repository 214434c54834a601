"""Helpers for the agent tools' tests: a git task directory, brain contexts, offers, simulated agents."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from brains.brainkit import make_ctx, make_task

from labmind.brains.agent_inbox import Inbox, Offer, OfferState, Submission
from labmind.brains.base import BrainContext


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout


def git_task(root: Path) -> Path:
    """A committed repository whose task/ directory holds train.py and prepare.py (protected)."""
    task_dir = root / "task"
    task_dir.mkdir(parents=True)
    (task_dir / "train.py").write_text("LR = 0.001\nprint(f'loss: {LR}')\n")
    (task_dir / "prepare.py").write_text("DATA = 1\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "task")
    return task_dir


def context(task_dir: Path, experiment_id: int = 2, line_id: int = 1) -> BrainContext:
    return replace(make_ctx(make_task(), task_dir, experiment_id=experiment_id), line_id=line_id)


def offer(experiment: int, *, line: int = 1, pid: int | None = None, worktree: str = "/nowhere") -> Offer:
    return Offer(experiment=experiment, line=line, lab_pid=os.getpid() if pid is None else pid,
                 offered_at=time.time(), base_commit="0" * 40, claim_timeout_s=None, submit_timeout_s=None,
                 brief={"worktree": worktree, "experiment_id": experiment})


def idea(agent: str, title: str = "raise LR", **extra: Any) -> Submission:
    return Submission(agent=agent, at=time.time(), title=title, hypothesis="a higher LR converges faster", **extra)


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout} s")


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run fn in a thread; the dict receives its 'result' or 'error'."""
    out: dict[str, Any] = {}

    def body() -> None:
        try:
            out["result"] = fn()
        except BaseException as exc:  # the test inspects it
            out["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, out


def open_state(inbox: Inbox, experiment: int) -> OfferState:
    return wait_for(lambda: inbox.read(experiment))
