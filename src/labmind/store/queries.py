"""Named, bounded read queries on a lab's store: the one read model behind `labmind status/log/show`, the
dashboard, `labmind export`, reports and the agent verbs.

Written to stay fast on labs with 100,000+ experiments: lists use LIMIT/OFFSET over the primary key or an
existing index, aggregates are single GROUP BY scans, the chart series is downsampled in SQL, and nothing
here loads the whole experiments table into Python. Each query takes a connection (`Store.connection`, or
`connect()` for a short read-only one) and returns typed rows or plain dicts.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from labmind.store.rows import ExperimentRow, LabRow, RunRow, event_row, experiment_row, lab_row, run_row

#: Above this many candidate points the chart is downsampled (min and max per bucket of ids).
CHART_MAX_POINTS = 4000
#: The tree view renders at most this many nodes; bigger labs filter by line.
TREE_MAX_NODES = 2000
#: A detail page lists at most this many children of an experiment.
CHILDREN_MAX = 200

#: List queries never select `diff` or `log_tail`: they can be large and are only shown on detail pages.
_LIST_COLUMNS = (
    "id, line_id, parent_id, kind, status, verdict, reason, metric, metric_sd, ci_low, ci_high, n_runs, p_value, "
    "flags, near_miss, {slot_seconds}, brain, commit_sha, error, created_at, finished_at, "
    "json_extract(idea_json, '$.title') AS title"
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


def list_columns(conn: sqlite3.Connection) -> str:
    """The list columns; a store of schema 4 opened read-only (not migrated) still names `gpu_seconds`."""
    names = {r[1] for r in conn.execute("PRAGMA table_info(experiments)")}
    return _LIST_COLUMNS.format(slot_seconds="slot_seconds" if "slot_seconds" in names
                                else "gpu_seconds AS slot_seconds")


# -- the lab's headline ---------------------------------------------------------------------------------


def lab(conn: sqlite3.Connection) -> LabRow | None:
    row = conn.execute("SELECT * FROM lab WHERE id = 1").fetchone()
    return lab_row(row) if row else None


def baselines(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    # `kind` has no index: one scan finds the baseline rows (a lab has one, or one per reset).
    return conn.execute(f"SELECT {list_columns(conn)} FROM experiments WHERE kind = 'baseline' ORDER BY id").fetchall()


def best(conn: sqlite3.Connection, sign: float, bases: list[sqlite3.Row] | None = None) -> sqlite3.Row | None:
    """The lab's best confirmed experiment: the baseline or an `improved` one with the best metric (`sign`: +1
    when the metric is maximised). The one definition of "best" (CLI, dashboard, report, agents, git refs).
    `bases`: the lab's `baselines`, when the caller has already read them (a scan of the table)."""
    improved = conn.execute(
        f"SELECT {list_columns(conn)} FROM experiments WHERE verdict = 'improved' AND metric IS NOT NULL "
        "ORDER BY metric * ? DESC, id LIMIT 1", (sign,)).fetchone()
    # Baselines first: on a tie the earlier experiment stays best, as in `lab.views.best_experiment`.
    bases = baselines(conn) if bases is None else bases
    measured = [r for r in (*bases, improved) if r is not None and r["metric"] is not None]
    return max(measured, key=lambda r: sign * r["metric"]) if measured else None


def verdict_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Candidates by verdict, in verdict order. From the verdict index alone (covering), minus the baselines'
    own verdicts, instead of a `kind = 'candidate'` filter that would visit every row."""
    counts = {r[0]: r[1] for r in conn.execute("SELECT verdict, COUNT(*) FROM experiments GROUP BY verdict")}
    for b in conn.execute("SELECT verdict FROM experiments WHERE kind = 'baseline'"):
        counts[b[0]] -= 1
    return {v: n for v, n in sorted((v, n) for v, n in counts.items() if v is not None) if n > 0}


def candidates(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT COUNT(*) FROM experiments WHERE kind = 'candidate'").fetchone()
    return int(row[0])


def not_taken(conn: sqlite3.Connection, marker: str) -> int:
    """Candidates that failed as offers no one took up (their error says `marker`): records, not experiments."""
    return int(conn.execute("SELECT COUNT(*) FROM experiments WHERE status = 'failed' AND kind = 'candidate' "
                            "AND instr(COALESCE(error, ''), ?) > 0", (marker,)).fetchone()[0])


def with_status(conn: sqlite3.Connection, *statuses: str, candidates: bool = False) -> int:
    """How many experiments are in one of `statuses` (from the status index); `candidates`: baselines left out."""
    marks = ", ".join("?" * len(statuses))
    kind = " AND kind = 'candidate'" if candidates else ""
    return int(conn.execute(f"SELECT COUNT(*) FROM experiments WHERE status IN ({marks}){kind}", statuses
                            ).fetchone()[0])


def judged(conn: sqlite3.Connection, since: float | None = None) -> int:
    """Candidates with a verdict; `since`: only those finished at or after that time."""
    sql = "SELECT COUNT(*) FROM experiments WHERE verdict IS NOT NULL AND kind = 'candidate'"
    if since is None:
        return int(conn.execute(sql).fetchone()[0])
    return int(conn.execute(sql + " AND COALESCE(finished_at, 0) >= ?", (since,)).fetchone()[0])


def slot_seconds(conn: sqlite3.Connection) -> float:
    row = conn.execute("SELECT COALESCE(SUM(ended_at - started_at), 0) FROM runs WHERE ended_at IS NOT NULL").fetchone()
    return float(row[0])


def running(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Runs going now, with their experiment's idea title."""
    return conn.execute(
        "SELECT runs.id, runs.experiment_id, runs.purpose, runs.slot, runs.started_at, "
        "json_extract(e.idea_json, '$.title') AS title FROM runs JOIN experiments e ON e.id = runs.experiment_id "
        "WHERE runs.status = 'running' ORDER BY runs.id").fetchall()


def lines(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Every line with its incumbent's figure (`inc_*`) and idea title (`inc_title`)."""
    return conn.execute(
        "SELECT l.*, e.metric AS inc_metric, e.metric_sd AS inc_sd, e.ci_low AS inc_low, e.ci_high AS inc_high, "
        "e.n_runs AS inc_runs, e.kind AS inc_kind, json_extract(e.idea_json, '$.title') AS inc_title "
        "FROM lines l LEFT JOIN experiments e ON e.id = l.incumbent_id ORDER BY l.id").fetchall()


def line_sizes(conn: sqlite3.Connection) -> tuple[dict[int, int], dict[int, int]]:
    """Per line: experiments, and `improved` ones. From the (line_id, id) and verdict indexes; correlated
    subqueries would visit rows."""
    sizes = dict(conn.execute("SELECT line_id, COUNT(*) FROM experiments WHERE line_id IS NOT NULL GROUP BY line_id"
                              ).fetchall())
    wins = dict(conn.execute("SELECT line_id, COUNT(*) FROM experiments WHERE verdict = 'improved' GROUP BY line_id"
                             ).fetchall())
    return sizes, wins


def line_names(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [{"id": r["id"], "name": r["name"]} for r in conn.execute("SELECT id, name FROM lines ORDER BY id")]


def incumbent_ids(conn: sqlite3.Connection) -> set[int]:
    return {r[0] for r in conn.execute("SELECT incumbent_id FROM lines WHERE incumbent_id IS NOT NULL")}


def last_event(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])


# -- experiments ----------------------------------------------------------------------------------------


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


def experiments_page(conn: sqlite3.Connection, *, limit: int, offset: int, verdict: str | None = None,
                     line: int | None = None, newest_first: bool = True) -> tuple[int, list[sqlite3.Row]]:
    """The total that matches and one page of list rows. `verdict` ("baseline", "pending" or a verdict) and
    `line` use the existing verdict and (line_id, id) indexes."""
    where, params = _filters(verdict, line)
    total = conn.execute(f"SELECT COUNT(*) FROM experiments{where}", params).fetchone()[0]
    order = "DESC" if newest_first else "ASC"
    rows = conn.execute(f"SELECT {list_columns(conn)} FROM experiments{where} ORDER BY id {order} LIMIT ? OFFSET ?",
                        [*params, limit, offset]).fetchall()
    return total, rows


def experiments_after(conn: sqlite3.Connection, after_id: int, limit: int) -> list[ExperimentRow]:
    """Whole experiments with ids above `after_id`, oldest first: keyset pages for reading a whole lab (export)
    without holding it, each page as cheap as the first."""
    return [experiment_row(r) for r in conn.execute("SELECT * FROM experiments WHERE id > ? ORDER BY id LIMIT ?",
                                                    (after_id, limit))]


def experiment(conn: sqlite3.Connection, experiment_id: int) -> ExperimentRow | None:
    row = conn.execute("SELECT * FROM experiments WHERE id = ?", (experiment_id,)).fetchone()
    return experiment_row(row) if row else None


def runs_of(conn: sqlite3.Connection, experiment_id: int) -> list[RunRow]:
    return [run_row(r) for r in conn.execute("SELECT * FROM runs WHERE experiment_id = ? ORDER BY id",
                                             (experiment_id,))]


def run(conn: sqlite3.Connection, run_id: int) -> RunRow | None:
    row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    return run_row(row) if row else None


def children(conn: sqlite3.Connection, experiment_id: int, limit: int = CHILDREN_MAX) -> list[sqlite3.Row]:
    # No index on parent_id: a child list is one scan, acceptable on a detail page (see docs/dashboard.md).
    return conn.execute(f"SELECT {list_columns(conn)} FROM experiments WHERE parent_id = ? ORDER BY id LIMIT ?",
                        (experiment_id, limit)).fetchall()


def events(conn: sqlite3.Connection, *, after_id: int = 0, limit: int = 200) -> list[dict[str, Any]]:
    return [event_row(r).__dict__ for r in conn.execute(
        "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))]


def recent_events(conn: sqlite3.Connection, limit: int = 30) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM events ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return [event_row(r).__dict__ for r in reversed(rows)]


# -- chart and tree -------------------------------------------------------------------------------------


def chart(conn: sqlite3.Connection, sign: float, max_points: int = CHART_MAX_POINTS) -> dict[str, Any]:
    """Points of the progress chart: every candidate with a metric, or a min/max-per-bucket sample above
    `max_points`. Improved and flagged experiments are always included, and the running best is exact
    because it only changes at `improved` experiments."""
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
        "total": total,
        "sampled": sampled,
        "points": [[r["id"], r["metric"], r["verdict"] or "pending"] for r in rows],
        "labels": {str(r["id"]): r["title"] or "" for r in rows if r["verdict"] == "improved"},
        "best": steps,
        "baseline": None if baseline is None or baseline["metric"] is None else {
            "metric": baseline["metric"], "sd": baseline["metric_sd"] or 0.0, "n_runs": baseline["n_runs"]},
        "max_id": hi or 0,
    }


def tree(conn: sqlite3.Connection, line: int | None = None,
         limit: int = TREE_MAX_NODES) -> tuple[int, list[tuple[sqlite3.Row, int, int]]]:
    """The total that matches and up to `limit` experiments in depth-first order, each with its depth and its
    number of children shown, for an indented tree. A line's tree hangs off the baseline, shown as its root."""
    where, params = _filters(None, line)
    columns = list_columns(conn)
    total = conn.execute(f"SELECT COUNT(*) FROM experiments{where}", params).fetchone()[0]
    rows = conn.execute(f"SELECT {columns} FROM experiments{where} ORDER BY id LIMIT ?", [*params, limit]).fetchall()
    if line is not None:
        # A separate query for the root keeps the (line_id, id) index in use above.
        rows = conn.execute(f"SELECT {columns} FROM experiments WHERE kind = 'baseline'").fetchall() + rows
    nodes = {r["id"]: r for r in rows}
    kids: dict[int | None, list[int]] = {}
    for r in rows:
        parent = r["parent_id"] if r["parent_id"] in nodes else None
        kids.setdefault(parent, []).append(r["id"])
    ordered: list[tuple[sqlite3.Row, int, int]] = []
    # Iterative DFS: real labs grow long chains, far deeper than Python's recursion limit.
    stack = [(i, 0) for i in reversed(kids.get(None, []))]
    while stack:
        node_id, depth = stack.pop()
        ordered.append((nodes[node_id], depth, len(kids.get(node_id, []))))
        stack.extend((c, depth + 1) for c in reversed(kids.get(node_id, [])))
    return total, ordered
