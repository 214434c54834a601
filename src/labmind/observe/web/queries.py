"""Read-only SQL for the dashboard, written to stay fast on labs with 100,000+ experiments.

Every query is bounded: lists use LIMIT/OFFSET over the primary key or an existing index, aggregates are
single GROUP BY scans, and the chart series is downsampled in SQL. Nothing here loads the whole
experiments table into Python (which `lab_status` does, fine for the CLI but not for a web page).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from labmind.paths import LabPaths
from labmind.store.lock import holder_pid
from labmind.store.rows import (
    ExperimentRow,
    LabRow,
    RunRow,
    event_row,
    experiment_row,
    lab_row,
    line_row,
    run_row,
)
from labmind.task import Task

#: Above this many candidate points the chart is downsampled (min and max per bucket of ids).
CHART_MAX_POINTS = 4000
#: The tree view renders at most this many nodes; bigger labs filter by line.
TREE_MAX_NODES = 2000

# The list pages never select `diff` or `log_tail`: they can be large and are only shown on detail pages.
_LIST_COLUMNS = (
    "id, line_id, parent_id, kind, status, verdict, reason, metric, metric_sd, ci_low, ci_high, n_runs, p_value, "
    "flags, near_miss, gpu_seconds, created_at, finished_at, error, json_extract(idea_json, '$.title') AS title"
)


@contextmanager
def connect(db: Path) -> Iterator[sqlite3.Connection]:
    """A fresh read-only connection: `mode=ro` can never write, and WAL lets the lab write meanwhile."""
    # Quoted: a task directory named with `#` or `?` would otherwise end the path and start a fragment or query.
    conn = sqlite3.connect(f"file:{quote(str(db))}?mode=ro", uri=True, isolation_level=None, timeout=5,
                           check_same_thread=False)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()


@dataclass(frozen=True)
class LabInfo:
    lab: LabRow
    task: Task


def lab_info(conn: sqlite3.Connection) -> LabInfo | None:
    row = conn.execute("SELECT * FROM lab WHERE id = 1").fetchone()
    if row is None:
        return None
    lab = lab_row(row)
    return LabInfo(lab=lab, task=Task.model_validate_json(lab.task_json))


def _metric_block(r: sqlite3.Row | None) -> dict[str, Any] | None:
    if r is None or r["metric"] is None:
        return None
    return {"experiment": r["id"], "metric": r["metric"], "sd": r["metric_sd"], "ci": [r["ci_low"], r["ci_high"]],
            "n_runs": r["n_runs"], "p_value": r["p_value"], "idea": r["title"] or ""}


def overview(conn: sqlite3.Connection, paths: LabPaths) -> dict[str, Any]:
    """What `labmind status` shows, computed with bounded queries."""
    info = lab_info(conn)
    if info is None:
        return {"lab": None}
    sign = info.task.sign
    # `kind` has no index, so one scan finds the baseline rows; everything else uses indexes. In particular
    # verdict counts come from the verdict index alone (covering), minus the baselines' own verdicts,
    # instead of a `kind = 'candidate'` filter that would visit every row.
    baselines = conn.execute(f"SELECT {_LIST_COLUMNS} FROM experiments WHERE kind = 'baseline' ORDER BY id").fetchall()
    baseline = baselines[0] if baselines else None
    improved = conn.execute(
        f"SELECT {_LIST_COLUMNS} FROM experiments WHERE verdict = 'improved' AND metric IS NOT NULL "
        "ORDER BY metric * ? DESC, id LIMIT 1", (sign,)).fetchone()
    # The best confirmed experiment: the baseline or an `improved` one (same rule as lab.views.best_experiment).
    measured = [r for r in (improved, *baselines) if r is not None and r["metric"] is not None]
    best = max(measured, key=lambda r: sign * r["metric"]) if measured else None
    best_out = _metric_block(best)
    base_out = _metric_block(baseline)
    if best_out and base_out:
        best_out["delta"] = best_out["metric"] - base_out["metric"]
        best_out["relative"] = best_out["delta"] / abs(base_out["metric"]) if base_out["metric"] else None
    if best_out:
        best_out["confirmed"] = best["kind"] == "candidate"
    counts = {r[0]: r[1] for r in conn.execute("SELECT verdict, COUNT(*) FROM experiments GROUP BY verdict")}
    for b in baselines:
        counts[b["verdict"]] -= 1
    verdicts = dict(sorted(((v, n) for v, n in counts.items() if v is not None and n > 0), key=lambda vn: -vn[1]))
    n_candidates = sum(counts.values())
    in_progress = conn.execute("SELECT COUNT(*) FROM experiments WHERE kind = 'candidate' "
                               "AND status IN ('proposing', 'testing')").fetchone()[0]
    slot_seconds = conn.execute("SELECT COALESCE(SUM(ended_at - started_at), 0) FROM runs "
                                "WHERE ended_at IS NOT NULL").fetchone()[0]
    now = time.time()
    running = [
        {"run": r["id"], "experiment": r["experiment_id"], "purpose": r["purpose"], "slot": r["slot"],
         "seconds": round(now - (r["started_at"] or now), 1), "idea": r["title"] or ""}
        for r in conn.execute(
            "SELECT runs.id, runs.experiment_id, runs.purpose, runs.slot, runs.started_at, "
            "json_extract(e.idea_json, '$.title') AS title FROM runs JOIN experiments e ON e.id = runs.experiment_id "
            "WHERE runs.status = 'running' ORDER BY runs.id")
    ]
    last_event = conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
    pid = holder_pid(paths.lock)
    return {
        "lab": info.lab.name,
        "task_dir": str(paths.task_dir),
        "metric": {"name": info.task.metric.name, "goal": info.task.metric.goal},
        "state": "running" if pid else "stopped",
        "pid": pid,
        "baseline": base_out,
        "min_effect": info.lab.min_effect,
        "min_effect_text": info.task.noise.parsed_min_effect().text(),
        "scale": info.lab.scale,
        "noise_sd": info.lab.noise_sd,
        "best": best_out,
        "experiments": n_candidates,
        "verdicts": verdicts,
        "in_progress": in_progress,
        "lines": lines(conn),
        "running": running,
        "slot_hours": round(float(slot_seconds) / 3600.0, 4),
        "last_event": last_event,
    }


def lines(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    # Per-line counts from the (line_id, id) and verdict indexes; correlated subqueries would visit rows.
    sizes = dict(conn.execute("SELECT line_id, COUNT(*) FROM experiments WHERE line_id IS NOT NULL GROUP BY line_id"
                              ).fetchall())
    wins = dict(conn.execute("SELECT line_id, COUNT(*) FROM experiments WHERE verdict = 'improved' GROUP BY line_id"
                             ).fetchall())
    out = []
    for r in conn.execute(
        "SELECT l.*, e.metric AS inc_metric, e.metric_sd AS inc_sd, e.ci_low AS inc_low, e.ci_high AS inc_high, "
        "e.n_runs AS inc_runs, e.kind AS inc_kind, json_extract(e.idea_json, '$.title') AS inc_title "
        "FROM lines l LEFT JOIN experiments e ON e.id = l.incumbent_id ORDER BY l.id"
    ):
        line = line_row(r)
        out.append({"id": line.id, "name": line.name, "status": line.status, "incumbent": line.incumbent_id,
                    "metric": r["inc_metric"], "sd": r["inc_sd"], "ci": [r["inc_low"], r["inc_high"]],
                    "n_runs": r["inc_runs"] or 0, "kind": r["inc_kind"], "idea": r["inc_title"] or "",
                    "experiments": sizes.get(line.id, 0),
                    "improved": wins.get(line.id, 0)})
    return out


def line_names(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [{"id": r["id"], "name": r["name"]} for r in conn.execute("SELECT id, name FROM lines ORDER BY id")]


def incumbent_ids(conn: sqlite3.Connection) -> set[int]:
    return {r[0] for r in conn.execute("SELECT incumbent_id FROM lines WHERE incumbent_id IS NOT NULL")}


def _list_row(r: sqlite3.Row, incumbents: set[int]) -> dict[str, Any]:
    return {"id": r["id"], "line": r["line_id"], "parent": r["parent_id"], "kind": r["kind"], "status": r["status"],
            "verdict": r["verdict"], "reason": r["reason"], "metric": r["metric"], "sd": r["metric_sd"],
            "ci": [r["ci_low"], r["ci_high"]], "n_runs": r["n_runs"], "p_value": r["p_value"],
            "flags": json.loads(r["flags"]), "near_miss": bool(r["near_miss"]), "slot_seconds": r["gpu_seconds"],
            "created_at": r["created_at"], "finished_at": r["finished_at"], "error": r["error"],
            "idea": r["title"] or "", "incumbent": r["id"] in incumbents}


def experiments_page(conn: sqlite3.Connection, *, limit: int, offset: int, verdict: str | None = None,
                     line: int | None = None, newest_first: bool = True) -> dict[str, Any]:
    """One page of experiments. `verdict` and `line` use the existing verdict and (line_id, id) indexes."""
    where, params = _filters(verdict, line)
    total = conn.execute(f"SELECT COUNT(*) FROM experiments{where}", params).fetchone()[0]
    order = "DESC" if newest_first else "ASC"
    rows = conn.execute(f"SELECT {_LIST_COLUMNS} FROM experiments{where} ORDER BY id {order} LIMIT ? OFFSET ?",
                        [*params, limit, offset]).fetchall()
    incumbents = incumbent_ids(conn)
    return {"total": total, "limit": limit, "offset": offset,
            "experiments": [_list_row(r, incumbents) for r in rows]}


def _filters(verdict: str | None, line: int | None) -> tuple[str, list[Any]]:
    where, params = [], []
    if verdict == "baseline":
        where.append("kind = 'baseline'")
    elif verdict == "pending":
        where.append("verdict IS NULL AND kind = 'candidate'")
    elif verdict:
        where.append("verdict = ?")
        params.append(verdict)
    if line is not None:
        where.append("line_id = ?")
        params.append(line)
    return (" WHERE " + " AND ".join(where) if where else ""), params


def experiment(conn: sqlite3.Connection, experiment_id: int) -> ExperimentRow | None:
    row = conn.execute("SELECT * FROM experiments WHERE id = ?", (experiment_id,)).fetchone()
    return experiment_row(row) if row else None


def runs_of(conn: sqlite3.Connection, experiment_id: int) -> list[RunRow]:
    return [run_row(r) for r in conn.execute("SELECT * FROM runs WHERE experiment_id = ? ORDER BY id",
                                             (experiment_id,))]


def run(conn: sqlite3.Connection, run_id: int) -> RunRow | None:
    row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    return run_row(row) if row else None


def children(conn: sqlite3.Connection, experiment_id: int) -> list[dict[str, Any]]:
    # No index on parent_id: a child list is one scan, acceptable on a detail page (see docs/dashboard.md).
    return [{"id": r["id"], "verdict": r["verdict"], "metric": r["metric"], "idea": r["title"] or ""}
            for r in conn.execute(f"SELECT {_LIST_COLUMNS} FROM experiments WHERE parent_id = ? ORDER BY id LIMIT 200",
                                  (experiment_id,))]


def events(conn: sqlite3.Connection, *, after_id: int = 0, limit: int = 200) -> list[dict[str, Any]]:
    return [event_row(r).__dict__ for r in conn.execute(
        "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))]


def recent_events(conn: sqlite3.Connection, limit: int = 30) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM events ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return [event_row(r).__dict__ for r in reversed(rows)]


def chart(conn: sqlite3.Connection, max_points: int = CHART_MAX_POINTS) -> dict[str, Any]:
    """Points of the progress chart: every candidate with a metric, or a min/max-per-bucket sample above
    `max_points`. Improved and flagged experiments are always included, and the running best is exact
    because it only changes at `improved` experiments."""
    info = lab_info(conn)
    if info is None:
        return {"points": [], "best": [], "total": 0}
    sign = info.task.sign
    total, lo, hi = conn.execute("SELECT COUNT(*), MIN(id), MAX(id) FROM experiments "
                                 "WHERE kind = 'candidate' AND metric IS NOT NULL").fetchone()
    baseline = conn.execute("SELECT id, metric, metric_sd, n_runs FROM experiments WHERE kind = 'baseline' "
                            "ORDER BY id LIMIT 1").fetchone()
    steps: list[list[float]] = []
    current = baseline["metric"] if baseline and baseline["metric"] is not None else None
    if current is not None:
        steps.append([baseline["id"], current])
    for r in conn.execute("SELECT id, metric FROM experiments WHERE verdict = 'improved' AND metric IS NOT NULL "
                          "ORDER BY id"):
        if current is None or sign * (r["metric"] - current) > 0:
            current = r["metric"]
            steps.append([r["id"], current])
    base = "SELECT id, metric, verdict, json_extract(idea_json, '$.title') AS title FROM experiments"
    cond = "kind = 'candidate' AND metric IS NOT NULL"
    if total <= max_points:
        rows = conn.execute(f"{base} WHERE {cond} ORDER BY id").fetchall()
        sampled = False
    else:
        # SQLite returns the bare columns of the row holding MIN()/MAX(), so each bucket keeps its extremes.
        width = max(1, (hi - lo + 1) // (max_points // 2) + 1)
        keep: dict[int, sqlite3.Row] = {}
        for agg in ("MIN", "MAX"):
            for r in conn.execute(f"SELECT id, {agg}(metric) AS metric, verdict, NULL AS title FROM experiments "
                                  f"WHERE {cond} GROUP BY id / ?", (width,)):
                keep[r["id"]] = r
        # Improved and flagged points matter most: keep them all while they are few, and always keep the
        # ones that set a new best, so the labelled steps of the chart sit on real points.
        special = conn.execute(f"SELECT COUNT(*) FROM experiments WHERE verdict IN ('improved', 'flagged') "
                               f"AND {cond}").fetchone()[0]
        if special <= max_points // 4:
            extra = f"{base} WHERE {cond} AND verdict IN ('improved', 'flagged')"
            params: tuple[Any, ...] = ()
        else:
            step_ids = [int(s[0]) for s in steps]
            extra = f"{base} WHERE id IN (SELECT value FROM json_each(?)) AND {cond}"
            params = (json.dumps(step_ids),)
        for r in conn.execute(extra, params):
            keep[r["id"]] = r
        rows = [keep[k] for k in sorted(keep)]
        sampled = True
    return {
        "metric": info.task.metric.name,
        "goal": info.task.metric.goal,
        "total": total,
        "sampled": sampled,
        "points": [[r["id"], r["metric"], r["verdict"] or "pending"] for r in rows],
        "labels": {str(r["id"]): r["title"] or "" for r in rows if r["verdict"] == "improved"},
        "best": steps,
        "baseline": None if baseline is None or baseline["metric"] is None else {
            "metric": baseline["metric"], "sd": baseline["metric_sd"] or 0.0, "n_runs": baseline["n_runs"]},
        "max_id": hi or 0,
    }


def tree(conn: sqlite3.Connection, line: int | None = None, limit: int = TREE_MAX_NODES) -> dict[str, Any]:
    """Experiments in depth-first order with their depth, for an indented tree; capped at `limit` nodes."""
    where, params = _filters(None, line)
    total = conn.execute(f"SELECT COUNT(*) FROM experiments{where}", params).fetchone()[0]
    rows = conn.execute(f"SELECT {_LIST_COLUMNS} FROM experiments{where} ORDER BY id LIMIT ?",
                        [*params, limit]).fetchall()
    if line is not None:
        # A line's tree hangs off the baseline: show it as the root (a separate query keeps the index in use).
        rows = conn.execute(f"SELECT {_LIST_COLUMNS} FROM experiments WHERE kind = 'baseline'").fetchall() + rows
    incumbents = incumbent_ids(conn)
    nodes = {r["id"]: _list_row(r, incumbents) for r in rows}
    kids: dict[int | None, list[int]] = {}
    for node in nodes.values():
        parent = node["parent"] if node["parent"] in nodes else None
        kids.setdefault(parent, []).append(node["id"])
    ordered: list[dict[str, Any]] = []
    # Iterative DFS: real labs grow long chains, far deeper than Python's recursion limit.
    stack = [(i, 0) for i in reversed(kids.get(None, []))]
    while stack:
        node_id, depth = stack.pop()
        node = nodes[node_id]
        node["depth"] = depth
        node["children"] = len(kids.get(node_id, []))
        ordered.append(node)
        stack.extend((c, depth + 1) for c in reversed(kids.get(node_id, [])))
    return {"total": total, "shown": len(ordered), "nodes": ordered}


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
