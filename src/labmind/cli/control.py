"""Verbs that act on a lab: `labmind init`, `labmind stop`."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import typer

from labmind.cli.common import TaskDirArg, console, err_console, fail
from labmind.lab.reset import reset_lab
from labmind.paths import LabPaths
from labmind.store import LabLocked
from labmind.store.lock import holder_pid
from labmind.workspace import git as gitops


def init(task_dir: Path = TaskDirArg) -> None:
    """Make a plain directory a git repository with one commit, so labmind can run experiments on it."""
    try:
        commit = gitops.init_repo(task_dir.resolve())
    except gitops.GitError as exc:
        fail(str(exc))
    console.print(f"initialised {task_dir} as a git repository (commit {commit[:10]}); .labmind/ is ignored.")
    if not (task_dir / "labmind.toml").exists():
        console.print("next: write labmind.toml (see docs/task-file.md) or pass task flags to `labmind run`.")


def _resume_command(paths: LabPaths, task_dir: Path) -> str:
    """How this lab is continued: an agent-driven one in the background, as it was started; others in the
    foreground."""
    from labmind.agent_tools.ops import is_agent_brain
    from labmind.store import Store

    lab = Store.peek_lab(paths.db)
    brain = str(lab.settings.get("brain") or "") if lab is not None else ""
    return f"labmind agent start {task_dir}" if is_agent_brain(brain) else f"labmind resume {task_dir}"


def stop(task_dir: Path = TaskDirArg,
         wait: float = typer.Option(60.0, min=0.0, help="Seconds to wait for it to exit.")) -> None:
    """Stop a running lab: its running runs are killed and re-queued for `labmind resume`."""
    paths = LabPaths(task_dir.resolve())
    pid = holder_pid(paths.lock)
    if pid is None:
        if not paths.db.exists():
            fail(f"no lab in {paths.task_dir}: there is nothing to stop.")
        # Stopped already (at its limit, its budget, or by an earlier stop): the wish is fulfilled.
        console.print(f"the lab in {paths.task_dir} is not running: it has already stopped. See `labmind status "
                      f"{task_dir}`; continue it with `{_resume_command(paths, task_dir)}`.", highlight=False,
                      soft_wrap=True)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if holder_pid(paths.lock) is None:
            console.print(f"stopped lab process {pid}. Continue with `{_resume_command(paths, task_dir)}`.",
                          highlight=False, soft_wrap=True)
            return
        time.sleep(0.2)
    fail(f"lab process {pid} did not stop within {wait:g}s; it may be finishing a step. Try again or kill it.")


def start_afresh(task_dir: Path, *, to_stderr: bool = False) -> Path | None:
    """Move the lab aside (for `labmind reset` and `labmind run --fresh`); a clean error while it runs."""
    try:
        backup = reset_lab(task_dir)
    except LabLocked as exc:
        fail(f"{exc} A running lab is not reset.")
    except OSError as exc:
        fail(f"could not move the lab in {task_dir} aside: {exc}")
    if backup is not None:
        message = (f"moved the previous lab to {backup} (its git refs to refs/labmind-backups/{backup.name}/); "
                   "the next `labmind run` starts a new lab.")
        (err_console if to_stderr else console).print(message, highlight=False, soft_wrap=True)
    return backup


def reset(task_dir: Path = TaskDirArg) -> None:
    """Start a lab afresh: move the lab (store, logs, git refs) to a backup under .labmind/backups/."""
    if start_afresh(task_dir) is None:
        console.print(f"no lab in {task_dir.resolve()}: nothing to reset.")
