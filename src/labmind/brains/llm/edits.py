"""Scope-checked file changes in an experiment's task directory, and the plain-text edit format.

Every path the implement loop touches passes `Scope`: it must lie inside the task directory after symlinks
are resolved, never inside `.git` or labmind's own files, and (for writes) match an editable glob and no
protected one. New files that would shadow a module are refused too, since the guard would reject the whole
experiment for them later. A refusal is an `EditRefused` whose message is written for the model.

Globs use `labmind.workspace.scope.matches`, the same matcher the guard's scope check applies to the diff,
so what the loop allows is exactly what the guard accepts.

The text format (for models without tool calling) is a path line followed by a SEARCH/REPLACE block::

    train.py
    <<<<<<< SEARCH
    LR = 0.1
    =======
    LR = 0.2
    >>>>>>> REPLACE

An empty SEARCH section creates a new file. A block right after another may leave out its path line.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath

from labmind.guard.rules import default_rules
from labmind.guard.shadow import ShadowModule
from labmind.workspace.scope import matches

#: Paths that belong to labmind or git, never to the model, wherever they appear.
_OFF_LIMITS_DIRS = (".git", ".labmind")
_LABMIND_FILES = ("labmind.toml",)
#: Lines shown around a spot in a file when an edit needs context.
_CONTEXT_LINES = 3
_SHOWN_MATCHES = 10


class EditRefused(Exception):
    """A path or edit the model asked for is not allowed or cannot be applied; the message says why."""


@cache
def _shadow_matcher() -> ShadowModule | None:
    """The guard's own shadow-module matcher (names and settings from its packaged rules)."""
    for rule in default_rules():
        for matcher in rule.change_matchers:
            if isinstance(matcher, ShadowModule):
                return matcher
    return None


@dataclass(frozen=True)
class Scope:
    """Which task-relative paths the model may read and write. Globs are relative to `workdir`."""

    workdir: Path
    editable: tuple[str, ...]
    protected: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()  # e.g. [run] hide: evaluation data the agent must not see
    refuse_shadowing: bool = True

    @property
    def root(self) -> Path:
        return self.workdir.resolve()

    def relative(self, path: str) -> str:
        """The normalised task-relative form of a path the model gave, or EditRefused when it leaves the task."""
        if not isinstance(path, str) or not path.strip():
            raise EditRefused("the path is empty; give a path relative to the task directory, e.g. train.py")
        if "\0" in path:
            raise EditRefused("the path contains a NUL character")
        raw = path.strip()
        if os.path.isabs(raw):
            absolute = Path(os.path.normpath(raw))
            for base in (self.workdir, self.root):
                if absolute.is_relative_to(base):
                    raw = absolute.relative_to(base).as_posix()
                    break
            else:
                raise EditRefused(f"{path} is outside the task directory; use paths relative to it")
        rel = os.path.normpath(raw).replace(os.sep, "/")
        if rel == ".":
            raise EditRefused(f"{path} is the task directory itself, not a file")
        if rel == ".." or rel.startswith("../"):
            raise EditRefused(f"{path} is outside the task directory")
        return rel

    def off_limits(self, rel: str) -> str | None:
        """Why no tool may touch this path at all, or None."""
        parts = PurePosixPath(rel).parts
        if any(part in _OFF_LIMITS_DIRS for part in parts):
            return f"{rel} is inside {next(p for p in parts if p in _OFF_LIMITS_DIRS)}/, which belongs to labmind/git"
        if self.hidden and matches(rel, list(self.hidden)):
            return f"{rel} is hidden from agents (evaluation data)"
        return None

    def write_refusal(self, rel: str) -> str | None:
        """Why the model may not write this task-relative path, or None."""
        reason = self.off_limits(rel)
        if reason:
            return reason
        if rel in _LABMIND_FILES:
            return f"{rel} is labmind's task file and read-only"
        if matches(rel, list(self.protected)):
            return f"{rel} is protected (read-only: {', '.join(self.protected)})"
        if not matches(rel, list(self.editable)):
            return f"{rel} is not editable; editable files match: {', '.join(self.editable)}"
        return None

    def _inside(self, rel: str) -> tuple[Path, str]:
        """The resolved path and its task-relative form; refused when a symlink leads out of the task."""
        resolved = (self.root / rel).resolve()
        if not resolved.is_relative_to(self.root):
            raise EditRefused(f"{rel} resolves (through a symlink) to {resolved}, outside the task directory")
        return resolved, resolved.relative_to(self.root).as_posix()

    def for_read(self, path: str) -> tuple[Path, str]:
        """(resolved file, task-relative path) the model may read, else EditRefused."""
        rel = self.relative(path)
        reason = self.off_limits(rel)
        if reason:
            raise EditRefused(reason)
        resolved, target = self._inside(rel)
        reason = self.off_limits(target) if target != rel else None
        if reason:
            raise EditRefused(f"{rel} is a symlink to {target}: {reason}")
        return resolved, rel

    def for_write(self, path: str) -> tuple[Path, str]:
        """(resolved file, task-relative path) the model may write, else EditRefused."""
        rel = self.relative(path)
        reason = self.write_refusal(rel)
        if reason:
            raise EditRefused(reason)
        resolved, target = self._inside(rel)
        # A symlink inside the task may still point at a protected or non-editable file: check the target too.
        reason = self.write_refusal(target) if target != rel else None
        if reason:
            raise EditRefused(f"{rel} is a symlink to {target}: {reason}")
        if resolved.is_dir():
            raise EditRefused(f"{rel} is a directory, not a file")
        if not resolved.exists() and self.refuse_shadowing:
            matcher = _shadow_matcher()
            why = matcher.reason(rel) if matcher is not None else None
            if why:
                raise EditRefused(f"creating {rel} is refused: it {why}; choose another file name")
        return resolved, rel


def _read_text(path: Path, rel: str) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise EditRefused(f"{rel} does not exist; use list_files to see the files") from None
    if b"\0" in data:
        raise EditRefused(f"{rel} is a binary file and cannot be edited as text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise EditRefused(f"{rel} is not UTF-8 text and cannot be edited") from None


def occurrences(text: str, old: str) -> list[int]:
    """Start offsets of every occurrence of old in text, overlapping ones included."""
    found, start = [], text.find(old)
    while start != -1:
        found.append(start)
        start = text.find(old, start + 1)
    return found


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def numbered(lines: list[str], first: int) -> str:
    """Lines with their 1-based numbers, in the same form read_file shows."""
    return "\n".join(f"{first + i:>6}\t{line}" for i, line in enumerate(lines))


def _window(text: str, first: int, last: int) -> str:
    lines = text.splitlines()
    lo, hi = max(1, first - _CONTEXT_LINES), min(len(lines), last + _CONTEXT_LINES)
    return numbered(lines[lo - 1 : hi], lo)


def _not_found_hint(text: str, old: str) -> str:
    """Where the model probably meant: a whitespace-insensitive match, else the most similar line."""
    lines = text.splitlines()
    wanted = [ln.strip() for ln in old.strip("\n").splitlines()]
    stripped = [ln.strip() for ln in lines]
    if wanted:
        for i in range(len(lines) - len(wanted) + 1):
            if stripped[i : i + len(wanted)] == wanted:
                return (
                    f"The same lines exist with different indentation or spacing at lines {i + 1}-{i + len(wanted)}; "
                    f"copy them exactly:\n{_window(text, i + 1, i + len(wanted))}"
                )
    key = next((w for w in wanted if w), "")
    close = difflib.get_close_matches(key, stripped, n=1, cutoff=0.5) if key else []
    if close:
        at = stripped.index(close[0]) + 1
        return f"The closest text is near line {at}:\n{_window(text, at, at)}"
    return "Nothing similar was found; read the file again before editing."


@dataclass
class Editor:
    """Applies the model's changes inside a Scope and remembers each file's original bytes, so the files it
    changed (on balance: an edit later undone does not count) can be listed at any time."""

    scope: Scope
    version: int = 0  # bumped on every applied change; a check is current when it saw the latest version
    _original: dict[str, bytes | None] = field(default_factory=dict)

    def _remember(self, path: Path, rel: str) -> None:
        if rel not in self._original:
            self._original[rel] = path.read_bytes() if path.exists() else None

    def _write(self, path: Path, rel: str, text: str) -> None:
        self._remember(path, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.version += 1

    def changed(self) -> list[str]:
        """Task-relative paths whose content now differs from before the loop (created files included)."""
        out = []
        for rel, before in self._original.items():
            path = self.scope.root / rel
            now = path.read_bytes() if path.is_file() else None
            if now != before:
                out.append(rel)
        return sorted(out)

    def edit(self, path: str, old: str, new: str) -> str:
        """Replace the one exact occurrence of old with new; the message shows the edited spot."""
        resolved, rel = self.scope.for_write(path)
        if old == "":
            raise EditRefused("old is empty; quote the exact text to replace, or use write_file for a whole file")
        if old == new:
            raise EditRefused("old and new are the same text; nothing would change")
        text = _read_text(resolved, rel)
        found = occurrences(text, old)
        if not found:
            raise EditRefused(f"old text not found in {rel}. {_not_found_hint(text, old)}")
        if len(found) > 1:
            lines = sorted({line_of(text, i) for i in found})
            where = ", ".join(str(n) for n in lines[:_SHOWN_MATCHES]) + (", …" if len(lines) > _SHOWN_MATCHES else "")
            raise EditRefused(
                f"old text occurs {len(found)} times in {rel} (on lines {where}); "
                "include more surrounding lines so it matches exactly once"
            )
        start = found[0]
        updated = text[:start] + new + text[start + len(old) :]
        self._write(resolved, rel, updated)
        first = line_of(updated, start)
        last = first + max(new.count("\n") - (1 if new.endswith("\n") else 0), 0)
        return f"edited {rel}; it now reads:\n{_window(updated, first, last)}"

    def write(self, path: str, content: str) -> str:
        """Create or overwrite a whole file."""
        resolved, rel = self.scope.for_write(path)
        existed = resolved.exists()
        if existed:
            _read_text(resolved, rel)  # refuses to overwrite binary files
        self._write(resolved, rel, content)
        lines = content.count("\n") + (0 if content.endswith("\n") or not content else 1)
        return f"{'wrote' if existed else 'created'} {rel} ({lines} lines)"

    def apply_block(self, block: Block) -> str:
        """Apply one SEARCH/REPLACE block with the same rules as edit and write_file."""
        if block.search == "":
            resolved, rel = self.scope.for_write(block.path)
            if resolved.exists() and resolved.stat().st_size > 0:
                raise EditRefused(f"{rel} already exists; an empty SEARCH only creates new files")
            return self.write(block.path, block.replace)
        resolved, rel = self.scope.for_write(block.path)
        text = _read_text(resolved, rel)
        search, replace = block.search, block.replace
        # Blocks are whole lines; the file's last line may have no newline: then match without it.
        if not occurrences(text, search) and search.endswith("\n") and text.endswith(search[:-1]):
            search, replace = search[:-1], replace.removesuffix("\n")
        return self.edit(block.path, search, replace)


# --------------------------------------------------------------------------------------- text format

_SEARCH = re.compile(r"^\s*<{5,9}\s*SEARCH\s*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9}\s*REPLACE\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^#+\s*")
_LABEL = re.compile(r"^(?:file|path)\s*:\s*", re.IGNORECASE)
#: Characters models wrap a path line in: markdown emphasis and code, quotes.
_WRAPPING = "`*\"' "


@dataclass(frozen=True)
class Block:
    path: str
    search: str
    replace: str


def _clean_path(line: str) -> str:
    """The path in a decorated path line: `### `a.py`:`, `**File: a.py**` and `'a.py'` all give a.py."""
    text = _HEADING.sub("", line.strip()).strip(_WRAPPING)
    text = _LABEL.sub("", text)
    return text.rstrip(":").strip(_WRAPPING)


def _joined(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def parse_blocks(text: str) -> list[Block | str]:
    """The SEARCH/REPLACE blocks of a model's answer in order; a block that cannot be parsed is a message
    saying why (a str) in its place."""
    lines = text.splitlines()
    found: list[Block | str] = []
    previous_path: str | None = None
    i = 0
    while i < len(lines):
        if not _SEARCH.match(lines[i]):
            i += 1
            continue
        number = len(found) + 1
        path = _path_before(lines, i, previous_path)
        divider = next((j for j in range(i + 1, len(lines)) if _DIVIDER.match(lines[j])), None)
        start = divider + 1 if divider is not None else len(lines)
        end = next((j for j in range(start, len(lines)) if _REPLACE.match(lines[j])), None)
        if divider is None or end is None:
            missing = "=======" if divider is None else ">>>>>>> REPLACE"
            found.append(f"block {number}: no '{missing}' line after '<<<<<<< SEARCH' (was the answer cut off?)")
            break
        if path is None:
            found.append(f"block {number}: no file path on the line before '<<<<<<< SEARCH'")
        else:
            found.append(Block(path, _joined(lines[i + 1 : divider]), _joined(lines[divider + 1 : end])))
        previous_path = path  # a following block without a path line edits the same file (or has none)
        i = end + 1
    return found


def _path_before(lines: list[str], at: int, previous: str | None) -> str | None:
    """The path line above a SEARCH marker, skipping blank and fence lines; a block that directly follows
    another one without its own path line edits the same file."""
    for j in range(at - 1, -1, -1):
        line = lines[j]
        if not line.strip() or _FENCE.match(line):
            continue
        if _REPLACE.match(line):
            return previous
        path = _clean_path(line)
        return path if path and " " not in path else None
    return None
