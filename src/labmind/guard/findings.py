"""What the guard reports (a Finding, the shared noun from labmind.findings) and what it looks at (a Change)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from labmind.findings import Finding
from labmind.task.model import Task

__all__ = ["MAX_EVIDENCE", "Change", "Finding", "Hit", "clip", "normalized"]

#: Evidence longer than this is cut, so one huge line cannot flood a flag list or a report.
MAX_EVIDENCE = 200


@dataclass(frozen=True)
class Hit:
    """One match of a matcher, before its rule gives it a name, family and severity."""

    path: str
    line: int | None
    evidence: str


def clip(text: str) -> str:
    return text.strip()[:MAX_EVIDENCE]


def normalized(evidence: str) -> str:
    """Evidence with whitespace collapsed: re-indenting a line must not make an old pattern look new."""
    return " ".join(evidence.split())


@dataclass(frozen=True)
class Change:
    """One proposed change: the task, its directory after the change, and the parent's text of each file."""

    task: Task
    new_dir: Path
    old_source: Callable[[str], str | None]
    changed: list[str]
    #: Parent texts fetched once: old_source may run git, and several rules ask for the same file.
    _old_cache: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)

    def old(self, path: str) -> str | None:
        if path not in self._old_cache:
            self._old_cache[path] = self.old_source(path)
        return self._old_cache[path]

    def new(self, path: str) -> str | None:
        """The file's text after the change; None when deleted, not a regular file, or binary."""
        file = self.new_dir / path
        if file.is_symlink() or not file.is_file():
            return None
        data = file.read_bytes()
        if b"\0" in data[:8192]:
            return None
        return data.decode("utf-8", errors="replace")
