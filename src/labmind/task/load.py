"""Load a task from labmind.toml plus CLI flags; every error names the file, the field and the fix."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from labmind.task.model import Task

TASK_FILE = "labmind.toml"

#: CLI flag -> (section, field). Flags override the file.
FLAG_FIELDS: dict[str, tuple[str, str]] = {
    "edit": ("task", "editable"),
    "protect": ("task", "protected"),
    "setup": ("task", "setup"),
    "command": ("run", "command"),
    "timeout": ("run", "timeout"),
    "gpus_per_run": ("run", "gpus"),
    "metric": ("metric", "name"),
    "goal": ("metric", "goal"),
}
_FLAG_NAME = {v: "--" + k.replace("_", "-") for k, v in FLAG_FIELDS.items()}


class TaskError(Exception):
    """A task that cannot be used; the message says where and how to fix it."""


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if not parts:
        return "(top level)"
    head, rest = parts[0], parts[1:]
    if head in {"task", "run", "metric", "noise", "guard", "knobs"}:
        return f"[{head}] " + ".".join(rest) if rest else f"[{head}]"
    return ".".join(parts)


def _describe(errors: list[dict[str, Any]], source: str) -> str:
    lines = [f"{source} is not a valid task:"]
    for err in errors:
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        flag = _FLAG_NAME.get(loc[:2]) if len(loc) >= 2 else None
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "is required but missing" + (f" (set it in {TASK_FILE} or pass {flag})" if flag else "")
            if len(loc) == 1:
                needs = ", ".join(f"{f}" for (s, f) in FLAG_FIELDS.values() if s == loc[0])
                msg = f"section is required but missing (it needs at least: {needs})"
        elif err["type"] == "extra_forbidden":
            msg = "is not a known field (check its spelling and section)"
        elif "input" in err and "got " not in msg and not isinstance(err["input"], dict):
            msg = f"{msg} (got {err['input']!r})"
        lines.append(f"  {_where(loc)}: {msg}")
    return "\n".join(lines)


def _default_name(task_dir: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "-", task_dir.resolve().name).strip("-.")
    return name or "task"


def load_task(task_dir: Path, flags: dict[str, Any] | None = None) -> Task:
    """Read `task_dir/labmind.toml` (if present), apply flags, validate."""
    path = task_dir / TASK_FILE
    data: dict[str, Any] = {}
    if path.is_dir():
        raise TaskError(f"{path} is a directory, not a task file. Move it away and write the task as a TOML file "
                        "there (see docs/task-file.md).")
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise TaskError(f"{path}: not valid TOML: {exc}. Fix the syntax and try again.") from exc
        except UnicodeDecodeError as exc:
            raise TaskError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}). Save it as UTF-8.") from exc
        except OSError as exc:
            raise TaskError(f"{path} cannot be read ({exc.strerror}). Check its permissions.") from exc
    given = {k: v for k, v in (flags or {}).items() if v not in (None, [], ())}
    if not data and not given:
        raise TaskError(
            f"no {TASK_FILE} in {task_dir} and no task flags given. Create one (see docs/task-file.md) or pass "
            "--edit FILE --command CMD --metric NAME --goal minimize|maximize."
        )
    for flag, value in given.items():
        section, field = FLAG_FIELDS[flag]
        data.setdefault(section, {})[field] = value
    data.setdefault("task", {}).setdefault("name", _default_name(task_dir))
    source = str(path) if path.exists() else f"task flags for {task_dir}"
    try:
        return Task.model_validate(data)
    except ValidationError as exc:
        raise TaskError(_describe(exc.errors(), source)) from exc
