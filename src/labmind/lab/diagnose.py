"""What to tell a person when the baseline cannot be measured: the log's end, a known cause and the fix."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

from labmind.store import RunRow

#: Lines of a failed baseline run's log shown in the error (the whole log stays on disk).
TAIL_LINES = 15

_NO_MODULE = re.compile(r"(?:ModuleNotFoundError|ImportError): No module named '([A-Za-z0-9_.]+)'")


def log_tail(text: str | None, lines: int = TAIL_LINES) -> str:
    kept = (text or "").rstrip().splitlines()[-lines:]
    return "\n".join("  | " + line[:300] for line in kept)


#: An exception line of a Python traceback, also as torchrun's workers print it (`[rank0]: ValueError: ...`).
_ERROR_LINE = re.compile(r"^(?:\[rank\d+\]:\s*)?((?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit)\b(?::.*)?)$")
#: Exceptions of launchers that only report that a worker failed (the worker's own error says why).
_LAUNCHER_ERRORS = ("ChildFailedError", "SignalException")


def error_line(log: str | None) -> str | None:
    """The last exception a run's log names, skipping launchers' wrappers: torchrun ends a failed worker's
    log with its own 'ChildFailedError' and a summary box, so the log's last line says nothing of the cause."""
    for line in reversed((log or "").splitlines()):
        m = _ERROR_LINE.match(line.strip())
        if m and not any(name in m.group(1).split(":")[0] for name in _LAUNCHER_ERRORS):
            return m.group(1).strip()
    return None


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
    parts.append(f"Fix the task, commit, and start afresh with `labmind run --fresh {task_dir}` (the failed lab "
                 f"is kept under {lab_root / 'backups'}).")
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


def gate_problem(runs: list[RunRow], gate: tuple[str, str, float] | None, gate_text: str) -> str | None:
    """The baseline against the task's gate (its target, `[metric] gate`). Checked once, at the baseline:
    a baseline none of whose runs meets the target, or whose runs report no value for it, would have every
    candidate as good as the baseline dropped as 'missed the target' (or unscorable), one experiment at a
    time. `gate_text` is the field as the task file spells it."""
    if gate is None:
        return None
    name, op, bound = gate  # the task file allows `<` and `>` only
    ok = [r for r in runs if r.outcome == "ok"]
    if not ok:
        return None
    values = [r.secondary.get(name) for r in ok]
    if any(v is None for v in values):
        return (f"the baseline's runs report no `{name}`, which `[metric] gate = \"{gate_text}\"` needs: the "
                f"evaluator (or the run) must print a line such as `{name}: 1.0` and the task must list it in "
                "`[metric] secondary`")
    if any(float(v) < bound if op == "<" else float(v) > bound for v in values if v is not None):
        return None
    shown = ", ".join(f"{float(v):.6g}" for v in values if v is not None)
    return (f"the baseline misses the task's target `[metric] gate = \"{gate_text}\"` in every run ({name} "
            f"{shown}): every candidate as good as the baseline would be dropped as 'missed the target'. Set a "
            "target the baseline reaches (the speedrun pack: `--target`)")
