"""Start a lab afresh: the old lab is moved aside (store, logs, transcripts, git refs), never deleted."""

from __future__ import annotations

import os
import time
from pathlib import Path

from labmind.paths import LabPaths
from labmind.store import LabLock, Store
from labmind.workspace import git as gitops

#: Kept inside `.labmind/`, so that backups stay hidden from runs and brains like the lab itself.
BACKUPS = "backups"


def reset_lab(task_dir: Path) -> Path | None:
    """Move the lab in `task_dir` to `.labmind/backups/<UTC time>/` and its git refs under
    `refs/labmind-backups/<UTC time>/`, so that the next `labmind run` creates a new lab. Returns the backup
    folder, or None when there was no lab. Raises LabLocked while a lab runs there."""
    paths = LabPaths(task_dir.resolve())
    if not paths.root.is_dir():
        return None
    with LabLock(paths.lock):
        name = _lab_name(paths)
        entries = [p for p in paths.root.iterdir() if p.name not in (BACKUPS, paths.lock.name)]
        if not entries:
            return None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        backup = paths.root / BACKUPS / stamp
        n = 1
        while backup.exists():
            n += 1
            backup = paths.root / BACKUPS / f"{stamp}-{n}"
        backup.mkdir(parents=True)
        for entry in entries:
            os.replace(entry, backup / entry.name)
        if name:
            _move_refs(paths.task_dir, name, backup.name)
    return backup


def _lab_name(paths: LabPaths) -> str | None:
    row = Store.peek_lab(paths.db)
    return row.name if row else None


def _move_refs(task_dir: Path, lab: str, stamp: str) -> None:
    """Worktrees moved with the lab are pruned from git's records; the lab's refs (every experiment's commit)
    move under refs/labmind-backups/, so the backup's commits stay reachable and the new lab's refs start empty."""
    try:
        root = gitops.repo_info(task_dir).root
    except gitops.GitError:
        return  # not a repository any more: nothing to move
    gitops.git(root, "worktree", "prune", check=False)
    prefix = f"refs/labmind/{lab}/"
    refs = gitops.git(root, "for-each-ref", "--format=%(refname) %(objectname)", prefix, check=False)
    for line in refs.splitlines():
        name, _, sha = line.partition(" ")
        if not name.startswith(prefix) or not sha:
            continue
        gitops.git(root, "update-ref", f"refs/labmind-backups/{stamp}/{name.removeprefix('refs/labmind/')}", sha)
        gitops.git(root, "update-ref", "-d", name, check=False)
