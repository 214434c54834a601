"""Request-scoped read-only store access shared by the API and the pages."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from fastapi import HTTPException, Request

from labmind.paths import LabPaths
from labmind.store import queries
from labmind.store.rows import RunRow


def lab_paths(request: Request) -> LabPaths:
    return request.app.state.settings.paths


def db(request: Request) -> Iterator[sqlite3.Connection]:
    """One read-only connection per request: cheap to open, never blocks the lab's writer."""
    paths = lab_paths(request)
    if not paths.db.exists():
        raise HTTPException(503, f"no lab in {paths.task_dir} yet: start one with `labmind run`")
    with queries.connect(paths.db) as conn:
        yield conn


def safe_log_path(paths: LabPaths, run: RunRow) -> Path | None:
    """The run's log file, only if it really lies inside this lab's .labmind/runs directory.

    The path comes from the store, so a tampered row (or a symlink placed in the runs directory) must not
    turn the dashboard into a file server: resolve symlinks first, then require containment."""
    if not run.log_path:
        return None
    root = (paths.root / "runs").resolve()
    candidate = Path(run.log_path)
    if not candidate.is_absolute():
        candidate = paths.root / "runs" / candidate
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not resolved.is_relative_to(root) or not resolved.is_file():
        return None
    return resolved
