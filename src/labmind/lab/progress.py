"""How far a lab is: experiments against `--max-experiments`, the session's time against its `--budget`,
and an estimate of the time left. The same figures in the live view, `--plain` lines and `labmind status`."""

from __future__ import annotations

import time
from typing import Any

from labmind.model import ExperimentKind


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    whole = round(max(0.0, seconds))  # rounded first: 299.6 s is 5m00s, not 4m60s
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def progress(rows: Any, made: int, max_experiments: int | None, session: dict[str, Any] | None,
             running: bool, now: float | None = None) -> dict[str, Any]:
    """`progress_of` counted from experiment rows (the lab's own row cache)."""
    now = time.time() if now is None else now
    started = float(session.get("started_at") or now) if session else now
    judged = [r for r in rows if r.kind == ExperimentKind.CANDIDATE and r.verdict is not None]
    return progress_of(made, len(judged), max_experiments, session, running, now,
                       judged_in_session=sum(1 for r in judged if (r.finished_at or 0) >= started))


def progress_of(made: int, finished: int, max_experiments: int | None, session: dict[str, Any] | None,
                running: bool, now: float | None = None, *, judged_in_session: int = 0) -> dict[str, Any]:
    """`made`: experiments counted toward the limit; `finished`: those with a verdict; `session`:
    {"started_at", "budget_s"} of the lab's latest session (from the store); `judged_in_session`: verdicts given
    since it started. The ETA is the sooner of the budget's end and the time the remaining experiments take at
    this session's pace (verdicts per second so far); None when neither is known."""
    now = time.time() if now is None else now
    out: dict[str, Any] = {"experiments": made, "finished": finished, "max_experiments": max_experiments,
                           "elapsed_s": None, "budget_s": None, "eta_s": None}
    if not session or not running:
        return out
    started = float(session.get("started_at") or now)
    elapsed = max(0.0, now - started)
    budget = session.get("budget_s")
    out.update(elapsed_s=round(elapsed, 1), budget_s=budget)
    etas = []
    if budget:
        etas.append(max(0.0, float(budget) - elapsed))
    if max_experiments is not None:
        left = max(0, max_experiments - finished)
        if left == 0:
            etas.append(0.0)
        elif judged_in_session and elapsed > 0:
            etas.append(left * elapsed / judged_in_session)
    out["eta_s"] = round(min(etas), 1) if etas else None
    return out


def progress_text(p: dict[str, Any]) -> str:
    """`7/12 experiments (5 judged), 5m12s elapsed of a 30m budget, ETA 4m10s`."""
    limit = p.get("max_experiments")
    parts = [f"{p['experiments']}/{limit} experiments" if limit is not None else f"{p['experiments']} experiments"]
    parts[0] += f" ({p['finished']} judged)"
    if p.get("elapsed_s") is not None:
        budget = f" of a {duration_text(p['budget_s'])} budget" if p.get("budget_s") else ""
        parts.append(f"{duration_text(p['elapsed_s'])} elapsed{budget}")
    if p.get("eta_s") is not None:
        parts.append(f"ETA {duration_text(p['eta_s'])}")
    return ", ".join(parts)
