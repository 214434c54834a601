"""Turning the store's named queries into what the pages and the API show: the lab's status, pages of
experiments, the chart, the tree, experiment detail, diff lines and number formats.

Every experiment is shaped by `labmind.store.records` and the status is `labmind.lab.status.lab_status`,
the same as in the CLI; this module only adds what a page needs around them (pages, depths, log links)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from labmind.findings import Finding
from labmind.lab.status import lab_status
from labmind.observe.web.deps import safe_log_path
from labmind.paths import LabPaths
from labmind.store import LabRow, Store
from labmind.store import queries as q
from labmind.store.records import experiment_json, listed_json, run_json
from labmind.store.records import meaning as verdict_meaning
from labmind.store.rows import ExperimentRow
from labmind.task import Task

#: Lines of a run's log shown inline; the full log is a download.
LOG_TAIL_LINES = 60


def meaning(verdict: str | None) -> str:
    return verdict_meaning(verdict) or ""


@dataclass(frozen=True)
class LabInfo:
    lab: LabRow
    task: Task


def lab_info(conn: sqlite3.Connection) -> LabInfo | None:
    lab = q.lab(conn)
    if lab is None:
        return None
    return LabInfo(lab=lab, task=Task.model_validate_json(lab.task_json))


def overview(conn: sqlite3.Connection, paths: LabPaths) -> dict[str, Any]:
    """What `labmind status --json` says (the one status), on the request's read-only connection."""
    return lab_status(Store.reading(conn, paths.db), paths)


def _listed(r: sqlite3.Row, incumbents: set[int]) -> dict[str, Any]:
    return {**listed_json(r), "incumbent": r["id"] in incumbents}


def experiments_page(conn: sqlite3.Connection, *, limit: int, offset: int, verdict: str | None = None,
                     line: int | None = None, newest_first: bool = True) -> dict[str, Any]:
    total, rows = q.experiments_page(conn, limit=limit, offset=offset, verdict=verdict, line=line,
                                     newest_first=newest_first)
    incumbents = q.incumbent_ids(conn)
    return {"total": total, "limit": limit, "offset": offset, "experiments": [_listed(r, incumbents) for r in rows]}


def tree(conn: sqlite3.Connection, line: int | None = None) -> dict[str, Any]:
    total, ordered = q.tree(conn, line)
    incumbents = q.incumbent_ids(conn)
    nodes = [{**_listed(r, incumbents), "depth": depth, "children": kids} for r, depth, kids in ordered]
    return {"total": total, "shown": len(nodes), "nodes": nodes}


def chart(conn: sqlite3.Connection, max_points: int = q.CHART_MAX_POINTS) -> dict[str, Any]:
    info = lab_info(conn)
    if info is None:
        return {"points": [], "best": [], "total": 0}
    return {"metric": info.task.metric.name, "goal": info.task.metric.goal,
            **q.chart(conn, info.task.sign, max_points)}


def experiment_detail(conn: sqlite3.Connection, paths: LabPaths, exp: ExperimentRow) -> dict[str, Any]:
    lab = lab_info(conn)
    runs = []
    for r in q.runs_of(conn, exp.id):
        runs.append({
            # The log is a download link (checked to lie inside the lab), never a path on this machine.
            **{k: v for k, v in run_json(r).items() if k != "log"},
            "log_tail": "\n".join((r.log_tail or "").splitlines()[-LOG_TAIL_LINES:]),
            "log_url": f"/api/runs/{r.id}/log" if safe_log_path(paths, r) else None,
        })
    return {
        **experiment_json(exp), "meaning": meaning(exp.verdict), "base_commit": exp.base_commit,
        "diff": exp.diff or "", "incumbent": exp.id in q.incumbent_ids(conn), "runs": runs,
        "children": [{"id": r["id"], "verdict": r["verdict"], "metric": r["metric"], "idea": r["title"] or ""}
                     for r in q.children(conn, exp.id)],
        "metric_name": lab.task.metric.name if lab else "metric", "goal": lab.task.metric.goal if lab else "",
    }


def applications(conn: sqlite3.Connection, library: Any) -> list[dict[str, Any]]:
    """This lab's experiments whose idea applied library insights, with their verdicts (newest first)."""
    from labmind.library import LibraryError

    out: list[dict[str, Any]] = []
    rows = conn.execute("SELECT id, verdict, idea_json FROM experiments WHERE idea_json LIKE '%\"applies\"%' "
                        "ORDER BY id DESC LIMIT 200").fetchall()
    for r in rows:
        params = (json.loads(r["idea_json"] or "{}") or {}).get("params") or {}
        for iid in params.get("applies") or []:
            try:
                ins = library.get(int(iid))
            except (LibraryError, ValueError, TypeError):
                ins = None
            out.append({"experiment": r["id"], "verdict": r["verdict"], "insight_id": iid, "insight": ins})
    return out


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


def flag_text(flag: dict[str, Any]) -> str:
    """A flag of the API's JSON (`{rule, path, line, evidence}`) as one line of text."""
    return Finding.from_json(flag).text()


def flag_detail(flag: dict[str, Any]) -> str:
    """What a flag says after its rule."""
    return Finding.from_json(flag).detail()
