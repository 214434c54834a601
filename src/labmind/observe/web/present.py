"""Turning store rows into what the pages and the API show: detail dicts, diff lines, number formats."""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

from labmind.observe.web import queries
from labmind.observe.web.deps import safe_log_path
from labmind.paths import LabPaths
from labmind.store.rows import ExperimentRow
from labmind.verdicts import MEANING, Verdict

#: Lines of a run's log shown inline; the full log is a download.
LOG_TAIL_LINES = 60


def meaning(verdict: str | None) -> str:
    return MEANING[Verdict(verdict)] if verdict in {v.value for v in Verdict} else ""


def experiment_detail(conn: sqlite3.Connection, paths: LabPaths, exp: ExperimentRow) -> dict[str, Any]:
    lab = queries.lab_info(conn)
    incumbents = queries.incumbent_ids(conn)
    runs = []
    for r in queries.runs_of(conn, exp.id):
        runs.append({
            "id": r.id, "purpose": r.purpose, "seed": r.seed, "status": r.status, "outcome": r.outcome,
            "slot": r.slot, "metric": r.metric, "self_reported": r.self_reported, "secondary": r.secondary,
            "flags": r.flags, "exit_code": r.exit_code, "seconds": round(r.seconds, 3), "sandbox": r.sandbox,
            "requeued_from": r.requeued_from, "started_at": r.started_at,
            "log_tail": "\n".join((r.log_tail or "").splitlines()[-LOG_TAIL_LINES:]),
            "log_url": f"/api/runs/{r.id}/log" if safe_log_path(paths, r) else None,
        })
    return {
        "id": exp.id, "kind": exp.kind, "line": exp.line_id, "parent": exp.parent_id, "status": exp.status,
        "verdict": exp.verdict, "meaning": meaning(exp.verdict), "reason": exp.reason, "metric": exp.metric,
        "sd": exp.metric_sd, "ci": [exp.ci_low, exp.ci_high], "n_runs": exp.n_runs, "p_value": exp.p_value,
        "flags": exp.flags, "near_miss": exp.near_miss, "idea": exp.idea.to_dict(), "brain": exp.brain,
        "base_commit": exp.base_commit, "commit": exp.commit_sha, "changed_files": exp.changed_files,
        "slot_seconds": exp.gpu_seconds, "brain_seconds": exp.brain_seconds, "error": exp.error,
        "created_at": exp.created_at, "finished_at": exp.finished_at, "diff": exp.diff or "",
        "incumbent": exp.id in incumbents, "runs": runs, "children": queries.children(conn, exp.id),
        "metric_name": lab.task.metric.name if lab else "metric", "goal": lab.task.metric.goal if lab else "",
    }


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """(css class, text) per line of a unified diff: enough highlighting to read a change at a glance."""
    out = []
    for line in diff.splitlines():
        if line.startswith(("diff --git", "index ", "--- ", "+++ ", "new file", "deleted file")):
            cls = "meta"
        elif line.startswith("@@"):
            cls = "hunk"
        elif line.startswith("+"):
            cls = "add"
        elif line.startswith("-"):
            cls = "del"
        else:
            cls = "ctx"
        out.append((cls, line))
    return out


def fmt_p(value: float | None) -> str:
    if value is None:
        return "–"
    return "< 0.0001" if value < 1e-4 else f"{value:.3g}"


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return "–"
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.1f}s"
    if seconds < 5400:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"
