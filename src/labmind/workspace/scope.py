"""Scope rules on a diff: only editable files change, protected files never do (digests, sha256)."""

from __future__ import annotations

import fnmatch
import hashlib
from pathlib import Path


def matches(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(path, p.rstrip("/") + "/*") for p in patterns)


def to_task_relative(repo_path: str, subdir: str) -> str | None:
    """A repository path relative to the task directory, or None when it lies outside it."""
    if not subdir:
        return repo_path
    prefix = subdir.rstrip("/") + "/"
    return repo_path[len(prefix):] if repo_path.startswith(prefix) else None


def scope_violation(changed: list[str], subdir: str, editable: list[str], protected: list[str]) -> str | None:
    """The first broken rule as a sentence naming the path, or None when the change is in scope."""
    for repo_path in changed:
        rel = to_task_relative(repo_path, subdir)
        if rel is None:
            return f"changed {repo_path}, which is outside the task directory"
        if rel == "labmind.toml" or rel.startswith(".labmind/"):
            return f"changed {rel}, which belongs to labmind"
        if matches(rel, protected):
            return f"changed protected file {rel}"
        if not matches(rel, editable):
            return f"changed {rel}, which is not editable (editable: {', '.join(editable)})"
    return None


def protected_files(task_dir: Path, protected: list[str]) -> list[Path]:
    out: set[Path] = set()
    for pattern in protected:
        for path in task_dir.glob(pattern):
            if path.is_file():
                out.add(path)
            elif path.is_dir():
                out.update(p for p in path.rglob("*") if p.is_file())
    return sorted(out)


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


def digest(task_dir: Path, protected: list[str]) -> dict[str, str]:
    """sha256 of every protected file, keyed by its task-relative path."""
    result = {}
    for path in protected_files(task_dir, protected):
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        result[path.relative_to(task_dir).as_posix()] = h.hexdigest()
    return result


def digest_mismatch(expected: dict[str, str], actual: dict[str, str]) -> str | None:
    for name in sorted(set(expected) | set(actual)):
        if name not in actual:
            return f"protected file {name} was deleted"
        if name not in expected:
            return f"protected path gained a new file {name}"
        if expected[name] != actual[name]:
            return f"protected file {name} was modified"
    return None
