"""The implement loop's tools: their JSON schemas, argument checks, and the file tools behind them.

list_files, read_file and search only read; edit and write_file change files through an Editor (which
applies the scope rules). run_check and finish need the loop's state and are carried out by the loop; their
schemas live here with the others. Every problem comes back as a ToolResult with is_error=True and a
message the model can act on; nothing here raises on model input.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labmind.brains.llm.edits import Editor, EditRefused
from labmind.llm.base import ToolSpec
from labmind.workspace.scope import matches

#: Caps on what one tool result may hold, so a big file or a broad search cannot flood the context.
READ_MAX_CHARS = 24_000
LINE_MAX_CHARS = 2_000
LIST_MAX_FILES = 400
SEARCH_MAX_HITS = 100
SEARCH_MAX_FILE_BYTES = 2_000_000
PATTERN_MAX_CHARS = 500
#: Directories that hold no source worth listing or searching (they stay readable by path).
SKIP_DIRS = frozenset({".git", ".labmind", "__pycache__", ".venv", "venv", "node_modules", ".mypy_cache",
                       ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints"})  # fmt: skip


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


_STR = {"type": "string"}
LIST_FILES = ToolSpec(
    "list_files",
    "List the files of the task directory and whether you may edit each (E editable, P protected, R read-only).",
    _schema({}, []),
)
READ_FILE = ToolSpec(
    "read_file",
    "Read a text file with numbered lines (the number and tab before each line are not part of the file). "
    "Long files come in parts: pass start_line/end_line (1-based, inclusive) to read further.",
    _schema({"path": _STR, "start_line": {"type": "integer"}, "end_line": {"type": "integer"}}, ["path"]),
)
SEARCH = ToolSpec(
    "search",
    "Search the task's text files for a Python regular expression, line by line; glob limits the files "
    "(e.g. '*.py'). Returns path:line: text for each match.",
    _schema({"pattern": _STR, "glob": _STR}, ["pattern"]),
)
EDIT = ToolSpec(
    "edit",
    "Replace text in an editable file. `old` must match the file exactly (whitespace included) and exactly "
    "once: copy it from read_file without the line numbers and add surrounding lines to make it unique.",
    _schema({"path": _STR, "old": _STR, "new": _STR}, ["path", "old", "new"]),
)
WRITE_FILE = ToolSpec(
    "write_file",
    "Write a whole file: replaces an editable file, or creates a new one whose path matches an editable glob.",
    _schema({"path": _STR, "content": _STR}, ["path", "content"]),
)
RUN_CHECK = ToolSpec(
    "run_check",
    "Run the task's quick smoke check on the current files; returns its exit code and the end of its output.",
    _schema({}, []),
)
FINISH = ToolSpec(
    "finish",
    "Stop: your change is complete. Summarise what you changed and why in a few sentences.",
    _schema({"summary": _STR}, ["summary"]),
)


def tool_specs(*, check: bool) -> list[ToolSpec]:
    """The tools offered to the model; run_check only when there is a smoke check to run."""
    return [LIST_FILES, READ_FILE, SEARCH, EDIT, WRITE_FILE, *([RUN_CHECK] if check else []), FINISH]


@dataclass(frozen=True)
class ToolResult:
    text: str
    is_error: bool = False


class BadArguments(Exception):
    """A tool call's arguments do not fit its schema; the message names the problem."""


def check_arguments(spec: ToolSpec, arguments: dict[str, Any] | None, raw: str) -> dict[str, Any]:
    """The arguments with types checked (integers given as digit strings are accepted), else BadArguments."""
    props: dict[str, Any] = spec.parameters.get("properties", {})
    expected = ", ".join(f"{k} ({v['type']})" for k, v in props.items()) or "no arguments: send {}"
    if arguments is None:
        shown = raw if len(raw) <= 200 else raw[:200] + "…"
        raise BadArguments(
            f"the arguments of {spec.name} are not a valid JSON object ({shown!r}); send one JSON object with: "
            f"{expected}"
        )
    out: dict[str, Any] = {}
    for key in spec.parameters.get("required", []):
        if key not in arguments:
            raise BadArguments(f"{spec.name} needs the argument '{key}'; its arguments are: {expected}")
    for key, value in arguments.items():
        kind = props.get(key, {}).get("type")
        if kind is None:
            continue  # extra keys are ignored: a model's harmless addition should not cost a turn
        if kind == "string" and not isinstance(value, str):
            raise BadArguments(f"argument '{key}' of {spec.name} must be a string, got {type(value).__name__}")
        if kind == "integer":
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool):
                raise BadArguments(f"argument '{key}' of {spec.name} must be an integer, got {value!r}")
        out[key] = value
    return out


def _is_binary(data: bytes) -> bool:
    return b"\0" in data[:8192]


class FileTools:
    """list_files, read_file, search, edit and write_file over one Editor's scope."""

    names = ("list_files", "read_file", "search", "edit", "write_file")

    def __init__(self, editor: Editor) -> None:
        self.editor = editor
        self.scope = editor.scope

    def call(self, name: str, args: dict[str, Any]) -> ToolResult:
        try:
            if name == "list_files":
                return ToolResult(self.list_files())
            if name == "read_file":
                return ToolResult(self.read_file(args["path"], args.get("start_line"), args.get("end_line")))
            if name == "search":
                return ToolResult(self.search(args["pattern"], args.get("glob")))
            if name == "edit":
                return ToolResult(self.editor.edit(args["path"], args["old"], args["new"]))
            if name == "write_file":
                return ToolResult(self.editor.write(args["path"], args["content"]))
        except EditRefused as exc:
            return ToolResult(str(exc), is_error=True)
        except (OSError, ValueError) as exc:  # e.g. permissions, a full disk, a name the OS rejects
            return ToolResult(f"{name} failed: {exc}", is_error=True)
        raise KeyError(name)

    # ---- reading

    def _walk(self) -> list[tuple[str, Path]]:
        """(task-relative path, path) of every visible file, sorted; directories in SKIP_DIRS are left out."""
        root = self.scope.root
        found = []
        for current, dirs, files in os.walk(root):
            base = Path(current)
            rel_dir = base.relative_to(root).as_posix()
            dirs[:] = sorted(
                d for d in dirs
                if d not in SKIP_DIRS and not self.scope.off_limits(f"{d}" if rel_dir == "." else f"{rel_dir}/{d}")
            )  # fmt: skip
            for name in files:
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                if not self.scope.off_limits(rel):
                    found.append((rel, base / name))
        return sorted(found)

    def list_files(self) -> str:
        entries = self._walk()
        lines = []
        for rel, path in entries[:LIST_MAX_FILES]:
            lines.append(f"{self._mark(rel)}  {rel}  {self._describe(rel, path)}")
        if len(entries) > LIST_MAX_FILES:
            lines.append(f"… and {len(entries) - LIST_MAX_FILES} more files (use search with a glob to find them)")
        existing = {rel for rel, _ in entries}
        unmatched = [g for g in self.scope.editable if not any(matches(rel, [g]) for rel in existing)]
        header = "Files of the task directory (E editable, P protected, R read-only):"
        text = "\n".join([header, *lines]) if lines else "The task directory has no files."
        if unmatched:
            text += f"\nEditable globs matching no file yet (write_file may create them): {', '.join(unmatched)}"
        return text

    def _mark(self, rel: str) -> str:
        if matches(rel, list(self.scope.protected)):
            return "P"
        return "R" if self.scope.write_refusal(rel) else "E"

    def _describe(self, rel: str, path: Path) -> str:
        if path.is_symlink():
            try:
                self.scope.for_read(rel)
            except EditRefused:
                return "(symlink leading outside what you may read)"
        try:
            size = path.stat().st_size
        except OSError:
            return "(unreadable)"
        if size > SEARCH_MAX_FILE_BYTES:
            return f"({size / 1e6:.1f} MB)"
        data = path.read_bytes()
        if _is_binary(data):
            return f"({size} bytes, binary)"
        newline = b"\n"
        lines = data.count(newline) + (0 if data.endswith(newline) or not data else 1)
        return f"({lines} lines)"

    def read_file(self, path: str, start_line: int | None, end_line: int | None) -> str:
        resolved, rel = self.scope.for_read(path)
        if not resolved.is_file():
            what = "a directory" if resolved.is_dir() else "not an existing file"
            raise EditRefused(f"{rel} is {what}; use list_files to see the files")
        data = resolved.read_bytes()
        if _is_binary(data):
            raise EditRefused(f"{rel} is a binary file ({len(data)} bytes) and cannot be shown")
        lines = data.decode("utf-8", errors="replace").splitlines()
        if not lines:
            return f"{rel} is empty (0 lines)"
        first = max(1, start_line or 1)
        last = min(len(lines), end_line or len(lines))
        if first > len(lines):
            raise EditRefused(f"{rel} has {len(lines)} lines; start_line {first} is past its end")
        if last < first:
            raise EditRefused(f"end_line {last} is before start_line {first}")
        shown, size = [], 0
        for number in range(first, last + 1):
            line = lines[number - 1]
            if len(line) > LINE_MAX_CHARS:
                line = line[:LINE_MAX_CHARS] + f"…[{len(line) - LINE_MAX_CHARS} more characters on this line]"
            row = f"{number:>6}\t{line}"
            if shown and size + len(row) > READ_MAX_CHARS:
                break
            shown.append(row)
            size += len(row) + 1
        end = first + len(shown) - 1
        header = f"{rel}: lines {first}-{end} of {len(lines)}"
        footer = f"\n[more: call read_file with start_line={end + 1} to continue]" if end < last else ""
        return f"{header}\n" + "\n".join(shown) + footer

    def search(self, pattern: str, glob: str | None) -> str:
        if not pattern:
            raise EditRefused("the pattern is empty")
        if len(pattern) > PATTERN_MAX_CHARS:
            raise EditRefused(f"the pattern is longer than {PATTERN_MAX_CHARS} characters")
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise EditRefused(f"invalid regular expression {pattern!r}: {exc}") from None
        hits: list[str] = []
        searched = 0
        for rel, path in self._walk():
            if glob and not matches(rel, [glob]):
                continue
            try:
                if path.stat().st_size > SEARCH_MAX_FILE_BYTES:
                    continue
                self.scope.for_read(rel)  # a symlink may lead out of the task
                data = path.read_bytes()
            except (OSError, EditRefused):
                continue
            if _is_binary(data):
                continue
            searched += 1
            for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
                # Only the start of very long lines: bounds the cost of a pathological pattern on minified data.
                if regex.search(line[:LINE_MAX_CHARS]):
                    hits.append(f"{rel}:{number}: {line.strip()[:200]}")
                    if len(hits) >= SEARCH_MAX_HITS:
                        return "\n".join([*hits, f"[stopped at {SEARCH_MAX_HITS} matches: narrow the pattern or glob]"])
        if not hits:
            where = f" matching {glob}" if glob else ""
            return f"no matches for {pattern!r} in {searched} text files{where}"
        return "\n".join(hits)
