"""Scope rules on a diff: only editable files change, protected files never do (digests, sha256)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from labmind.workspace.digests import (  # noqa: F401  (digests are part of the scope rules' interface)
    DigestCapExceeded,
    DigestCaps,
    digest,
    digest_mismatch,
    protected_entries,
    verify_protected,
)


def matches(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(path, p.rstrip("/") + "/*") for p in patterns)


def to_task_relative(repo_path: str, subdir: str) -> str | None:
    """A repository path relative to the task directory, or None when it lies outside it."""
    if not subdir:
        return repo_path
    prefix = subdir.rstrip("/") + "/"
    return repo_path[len(prefix):] if repo_path.startswith(prefix) else None


@dataclass(frozen=True)
class ScopeBreach:
    """The first scope rule a change breaks: the rule's name, the path, and a sentence naming both."""

    rule: str  # outside_task | labmind_files | protected | outside_editable
    path: str
    message: str


def scope_breach(changed: list[str], subdir: str, editable: list[str], protected: list[str]) -> ScopeBreach | None:
    """The first broken scope rule of a change (repository paths), or None when the change is in scope."""
    for repo_path in changed:
        rel = to_task_relative(repo_path, subdir)
        if rel is None:
            return ScopeBreach("outside_task", repo_path, f"changed {repo_path}, which is outside the task directory")
        if rel == "labmind.toml" or rel.startswith(".labmind/"):
            return ScopeBreach("labmind_files", rel, f"changed {rel}, which belongs to labmind")
        if matches(rel, protected):
            return ScopeBreach("protected", rel, f"changed protected file {rel}")
        if not matches(rel, editable):
            return ScopeBreach("outside_editable", rel,
                               f"changed {rel}, which is not editable (editable: {', '.join(editable)})")
    return None


def scope_violation(changed: list[str], subdir: str, editable: list[str], protected: list[str]) -> str | None:
    """The first broken rule as a sentence naming the path, or None when the change is in scope."""
    breach = scope_breach(changed, subdir, editable, protected)
    return breach.message if breach else None


def protected_files(task_dir: Path, protected: list[str]) -> list[Path]:
    """The regular files the protected globs cover (a directory glob covers its tree), never through a
    symlink: these are bound read-only in the sandbox."""
    return [p for p in protected_entries(task_dir, protected).values() if p.is_file() and not p.is_symlink()]


def hide_targets(task_dir: Path, patterns: list[str]) -> list[Path]:
    """What `[run] hide` globs name under task_dir, files and whole directories, to be masked in the sandbox.
    A matching symlink is followed to its target when that lies inside task_dir (the data it stands for)."""
    root = task_dir.resolve()
    out: set[Path] = set()
    for pattern in patterns:
        for path in task_dir.glob(pattern):
            if path.is_symlink():
                target = path.resolve()
                if target.is_relative_to(root) and target.exists():
                    out.add(target)
            elif path.exists():
                out.add(path)
    return sorted(out)
