"""What to tell a person when a run or the baseline fails: the log's end, the exception that ended it, a known
cause and the fix."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

from labmind.execute.limits import KILLED
from labmind.store import RunRow

#: Lines of a failed baseline run's log shown in the error (the whole log stays on disk).
TAIL_LINES = 15

_NO_MODULE = re.compile(r"(?:ModuleNotFoundError|ImportError): No module named '([A-Za-z0-9_.]+)'")


def log_tail(text: str | None, lines: int = TAIL_LINES) -> str:
    kept = (text or "").rstrip().splitlines()[-lines:]
    return "\n".join("  | " + line[:300] for line in kept)


#: A worker's prefix as torchrun prints it: `[rank0]:`, or `[default0]:` with --tee/--redirects.
_WORKER_PREFIX = re.compile(r"^\[(?:rank|default)\d+\]:\s?")
_TRACEBACK = "Traceback (most recent call last):"
#: Exceptions of launchers that only report that a worker failed (the worker's own traceback says why).
_LAUNCHER_ERRORS = ("ChildFailedError", "SignalException")


def error_line(log: str | None) -> str | None:
    """The exception that ended the log's last traceback (a worker's, not a launcher's), or None when the
    log holds no traceback. torchrun ends a failed worker's log with its own ChildFailedError traceback and a
    summary box, so the log's last line says nothing of the cause."""
    lines = [_WORKER_PREFIX.sub("", line) for line in (log or "").splitlines()]
    starts = [i for i, line in enumerate(lines) if line.strip() == _TRACEBACK]
    for start in reversed(starts):
        # Frames and their source lines are indented; the first line that is not is the exception.
        exc = next((line.strip() for line in lines[start + 1:] if line.strip() and not line[0].isspace()), None)
        if exc and not any(name in exc.split(":")[0] for name in _LAUNCHER_ERRORS):
            return exc
    return None


def crash_cause(run: RunRow) -> str | None:
    """What to say of a crashed run: the exception of its last traceback, read from the log on disk (the
    stored tail of a multi-GPU run can hold only the launcher's part). None when labmind itself ended the run
    (its `labmind: killed: ...` line, naming the limit, is the last line and says it best) or the log holds
    no traceback."""
    tail = (run.log_tail or "").strip().splitlines()
    if tail and tail[-1].startswith(KILLED):
        return None
    text = _read_tail(Path(run.log_path), 256_000) if run.log_path else ""
    return error_line(text or run.log_tail)


def host_module_hint(log: str | None) -> str | None:
    """A run that failed to import a module this process can import: the run does not see the host's
    PYTHONPATH (runs get a scrubbed environment) or the folder it lives in (the sandbox hides the home
    directory). Says exactly where the module is and the two ways to make runs see it."""
    found = _NO_MODULE.findall(log or "")
    if not found:
        return None
    top = found[-1].split(".")[0]  # the last one is the import that failed
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return None
    origin = spec.origin if spec.origin not in (None, "built-in", "frozen") else None
    where = Path(origin) if origin else Path(next(iter(spec.submodule_search_locations or []), ""))
    folder = where.parent.parent if where.name == "__init__.py" else where.parent
    via_pythonpath = any(folder == Path(p).resolve() or str(folder).startswith(str(Path(p).resolve()) + os.sep)
                         for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)
    how = ("through PYTHONPATH, which runs do not inherit" if via_pythonpath
           else "outside what runs see")
    return (f"module `{top}` is importable here (from {where}, {how}), but not inside the run. Either install "
            f"the package that provides it into the interpreter runs use: `{sys.executable} -m pip install ...`, "
            f"or give runs its folder in labmind.toml: `[run] env = [\"PYTHONPATH={folder}\"]` (with the "
            "bubblewrap sandbox the folder must lie outside your home directory, which runs cannot see); "
            "then commit and start afresh")


def baseline_failed_message(reason: str, run: RunRow, lab_root: Path) -> str:
    task_dir = lab_root.parent
    parts = [f"the baseline itself failed: {reason}."]
    hint = host_module_hint(run.log_tail)
    if hint:
        parts.append(f"Cause: {hint}.")
    tail = log_tail(run.log_tail)
    if tail:
        parts.append(f"The end of its log ({run.log_path}):\n{tail}\n")
    parts.append(f"Fix the task, commit, and start afresh with `labmind run --fresh {task_dir}` (which first moves "
                 f"the failed lab to {lab_root / 'backups'}).")
    return " ".join(parts)


_NAMED_NUMBER = re.compile(r"(?<![\w.\-/])([A-Za-z_][\w.\-/]*)\s*[:=]\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _read_tail(path: Path, limit: int = 64_000) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - limit))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def holdout_problem(run: RunRow, metric: str, command: str) -> str | None:
    """A baseline run that finished but got no held-out value: the `[metric] holdout` evaluator failed or
    printed no `metric` line. Every later candidate would then be flagged `holdout_failed`, so the lab stops
    here and says what the evaluator printed and what was expected."""
    if run.outcome != "ok" or run.holdout is not None or not run.log_path:
        return None
    held_log = Path(run.log_path + ".holdout")
    text = _read_tail(held_log)
    names = sorted({m.group(1) for m in _NAMED_NUMBER.finditer(text)} - {metric})
    if any(f.rule == "holdout_failed" for f in run.flags):
        what = "failed (non-zero exit, timeout or a resource limit)"
    elif names:
        what = (f"printed no `{metric}` value, but printed {', '.join(f'`{n}`' for n in names[:5])}: it must print "
                f"the held-out score under the metric's own name")
    else:
        what = f"printed no `{metric}` value"
    tail = log_tail(text)
    return (f"the held-out evaluator `{command}` {what}. Expected a line such as `{metric}: 0.93`, `{metric}=0.93` "
            f"or a JSON line {{\"{metric}\": 0.93}}; without it every candidate would be flagged holdout_failed."
            + (f" The end of its output ({held_log}):\n{tail}\n" if tail else f" It printed nothing ({held_log}).")
            )
