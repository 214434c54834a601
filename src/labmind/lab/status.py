"""A lab's state in one plain dict: the one status behind `labmind status`, the live view, the dashboard's
overview, `labmind agent status` and scripts (--json).

Built only from the store's named, bounded queries (`labmind.store.queries`), so the dashboard can show it for
a lab of 100,000 experiments. Experiments appear in the shapes of `labmind.store.records`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from labmind.brains.agent import is_agent_spec, unclaimed_experiments
from labmind.lab.progress import progress_of
from labmind.model import NOT_TAKEN, ExperimentKind, ExperimentStatus
from labmind.paths import LabPaths
from labmind.store import LabRow, Store
from labmind.store import queries as q
from labmind.store.lock import holder_pid
from labmind.store.records import figure_json
from labmind.store.rows import experiment_row
from labmind.task import Task


def experiments_made(conn: sqlite3.Connection, paths: LabPaths, lab: LabRow) -> int:
    """Candidates that count toward --max-experiments: offers no agent has claimed (yet, or ever) do not."""
    unclaimed: set[int] = set()
    if is_agent_spec(lab.settings.get("brain")):
        proposing = [experiment_row(r) for r in conn.execute(
            "SELECT * FROM experiments WHERE status = 'proposing' AND kind = 'candidate'")]
        unclaimed = unclaimed_experiments(paths, proposing)
    return q.candidates(conn) - q.not_taken(conn, NOT_TAKEN) - len(unclaimed)


def best_figure(conn: sqlite3.Connection, task: Task, lab: LabRow, bases: list[sqlite3.Row]
                ) -> dict[str, Any] | None:
    """The lab's best confirmed experiment (`queries.best`) with its gain over the baseline (`bases`: the lab's
    baselines, read once by the caller: each read scans the experiments table)."""
    best = q.best(conn, task.sign, bases)
    out = figure_json(best)
    if out is None or best is None:
        return None
    base = figure_json(next(iter(bases), None))
    delta = rel = None
    if base is not None:
        delta = out["metric"] - base["metric"]
        rel = delta / abs(base["metric"]) if base["metric"] else None
    return {**out, "delta": delta, "relative": rel, "confirmed": best["kind"] == ExperimentKind.CANDIDATE,
            "commit": best["commit_sha"], "branch": lab.branch}


def lines(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    sizes, wins = q.line_sizes(conn)
    return [{"id": r["id"], "name": r["name"], "status": r["status"], "incumbent": r["incumbent_id"],
             "metric": r["inc_metric"], "sd": r["inc_sd"], "ci": [r["inc_low"], r["inc_high"]],
             "n_runs": r["inc_runs"] or 0, "kind": r["inc_kind"], "idea": r["inc_title"] or "",
             "direction": r["direction"] if "direction" in r.keys() else "",  # noqa: SIM118 (sqlite3.Row)
             "note": r["note"] if "note" in r.keys() else "",  # noqa: SIM118
             "experiments": sizes.get(r["id"], 0), "improved": wins.get(r["id"], 0)}
            for r in q.lines(conn)]


def lab_status(store: Store, paths: LabPaths) -> dict[str, Any]:
    lab = store.lab()
    if lab is None:
        return {"lab": None}
    conn = store.connection
    task = Task.model_validate_json(lab.task_json)
    now = time.time()
    pid = holder_pid(paths.lock)
    made = experiments_made(conn, paths, lab)
    session = store.meta("session")
    session_info = json.loads(session) if session else None
    started = float(session_info.get("started_at") or now) if session_info else None
    bases = q.baselines(conn)  # read once: the baseline figure and "best" both need them
    return {
        "lab": lab.name,
        "task_dir": str(paths.task_dir),
        "metric": {"name": task.metric.name, "goal": task.metric.goal},
        "state": "running" if pid else "stopped",
        "pid": pid,
        "baseline": figure_json(next(iter(bases), None)),
        # The number is the minimum effect in the metric's units at the baseline (0 for "auto"; None before the
        # baseline); the text is what `[noise] min_effect` says, for people ("any verified gain", "1%", "0.02").
        "min_effect": lab.min_effect,
        "min_effect_text": task.noise.parsed_min_effect().text(),
        "scale": lab.scale,
        "noise_sd": lab.noise_sd,
        "best": best_figure(conn, task, lab, bases),
        # Those that count toward --max-experiments: offers no agent has claimed (yet, or ever) do not.
        "experiments": made,
        "max_experiments": lab.settings.get("max_experiments"),
        "progress": progress_of(made, q.judged(conn), lab.settings.get("max_experiments"), session_info,
                                running=pid is not None, now=now,
                                judged_in_session=q.judged(conn, since=started) if started is not None else 0),
        "verdicts": q.verdict_counts(conn),
        "in_progress": q.with_status(conn, ExperimentStatus.PROPOSING, ExperimentStatus.TESTING, candidates=True),
        "failed_proposals": q.with_status(conn, ExperimentStatus.FAILED),
        "lines": lines(conn),
        "running": [{"run": r["id"], "experiment": r["experiment_id"], "purpose": r["purpose"], "slot": r["slot"],
                     "seconds": round(now - (r["started_at"] or now), 1), "idea": r["title"] or ""}
                    for r in q.running(conn)],
        "slot_hours": round(q.slot_seconds(conn) / 3600.0, 4),
        "llm": store.llm_totals()["total"],
        "decisions": [{"id": d.id, "kind": d.kind, "line": d.line_id, "other_line": d.other_line_id,
                       "experiment": d.experiment_id, "reason": d.reason} for d in store.decisions()],
        "last_event": q.last_event(conn),
    }
