"""Scope matchers over a whole change: new files that shadow modules, and symlinks that leave the worktree.

Both are hard rules: a module that shadows the standard library or an installed package runs inside the
evaluator's interpreter, and a symlink out of the worktree reaches files the run must not see."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

from labmind.guard.findings import Change, Hit

#: Suffixes of extension modules: `json.cpython-311-x86_64-linux-gnu.so` shadows `json` as well as `json.py` does.
_EXTENSION_SUFFIXES = (".so", ".pyd")


@lru_cache(maxsize=1)
def installed_top_levels() -> frozenset[str]:
    """Top-level import names of the distributions installed in this interpreter."""
    try:
        names = importlib.metadata.packages_distributions()
    except Exception:  # a broken distribution's metadata must not disable the whole scope check
        return frozenset()
    return frozenset(name for name in names if name.isidentifier())


def module_name(path: str) -> str | None:
    """The import name a file would provide from its own directory, or None when it is not importable."""
    pure = PurePosixPath(path)
    if pure.name == "__init__.py":
        return pure.parent.name or None
    if pure.suffix == ".py":
        return pure.stem
    if pure.suffix in _EXTENSION_SUFFIXES:
        return pure.name.split(".", 1)[0]
    return None


@dataclass(frozen=True)
class ShadowModule:
    """A new file named like a module on the run's import path (see rules.toml for the names)."""

    kind = "shadow_module"
    names: tuple[str, ...] = ()
    stdlib: bool = True
    installed: bool = True
    ignore: tuple[str, ...] = ()

    def scan_change(self, change: Change) -> Iterator[Hit]:
        for path in change.changed:
            if change.old(path) is not None or not os.path.lexists(change.new_dir / path):
                continue
            reason = self.reason(path)
            if reason:
                yield Hit(path, None, f"new file {path} {reason}")

    def reason(self, path: str) -> str | None:
        base = PurePosixPath(path).name
        if any(fnmatch.fnmatchcase(base, pattern) for pattern in self.names):
            return "is loaded by Python or pytest before any task code"
        name = module_name(path)
        if not name or name in self.ignore:
            return None
        if self.stdlib and name in sys.stdlib_module_names:
            return f"shadows the standard-library module {name}"
        if self.installed and name in installed_top_levels():
            return f"shadows the installed package {name}"
        return None


def worktree_root(start: Path) -> Path:
    """The nearest directory at or above start holding `.git` (a directory, or a file in a worktree)."""
    start = start.resolve()
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return start


@dataclass(frozen=True)
class SymlinkOut:
    """A changed path that is, or passes through, a symlink resolving outside the worktree."""

    kind = "symlink_out"

    def scan_change(self, change: Change) -> Iterator[Hit]:
        root = worktree_root(change.new_dir)
        for path in change.changed:
            file = change.new_dir / path
            if not os.path.lexists(file):
                continue
            if not file.resolve().is_relative_to(root):
                target = os.readlink(file) if file.is_symlink() else str(file.resolve())
                yield Hit(path, None, f"{path} -> {target}")
