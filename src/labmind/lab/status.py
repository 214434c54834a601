"""A lab's state in one plain dict: used by `labmind status`, the live view and scripts (--json)."""

from __future__ import annotations

import json
import time
from typing import Any

from labmind.brains.agent import is_agent_spec, unclaimed_experiments
from labmind.lab.progress import progress
from labmind.lab.views import best_experiment
from labmind.model import experiments_made
from labmind.paths import LabPaths
from labmind.store import ExperimentRow, Store
from labmind.store.lock import holder_pid
from labmind.task import Task


def _spread(row: ExperimentRow | None) -> dict[str, Any]:
    """What a figure needs besides its value (see `labmind.figures`)."""
    if row is None:
        return {"sd": None, "ci": [None, None], "n_runs": 0, "kind": None}
    return {"sd": row.metric_sd, "ci": [row.ci_low, row.ci_high], "n_runs": row.n_runs, "kind": row.kind}


def lab_status(store: Store, paths: LabPaths) -> dict[str, Any]:
    lab = store.lab()
    if lab is None:
        return {"lab": None}
    task = Task.model_validate_json(lab.task_json)
    rows = store.experiments()
    baseline = next((r for r in rows if r.kind == "baseline"), None)
    best = best_experiment(rows, task)
    by_id = {r.id: r for r in rows}
    now = time.time()
    running = []
    for run in store.runs(status="running"):
        exp = by_id.get(run.experiment_id)
        running.append(
            {
                "run": run.id,
                "experiment": run.experiment_id,
                "purpose": run.purpose,
                "slot": run.slot,
                "seconds": round(now - (run.started_at or now), 1),
                "idea": exp.idea.title if exp else "",
            }
        )
    best_out = None
    if best is not None and best.metric is not None:
        delta = rel = None
        if baseline is not None and baseline.metric is not None:
            delta = best.metric - baseline.metric
            rel = delta / abs(baseline.metric) if baseline.metric else None
        best_out = {
            "experiment": best.id,
            "metric": best.metric,
            "sd": best.metric_sd,
            "ci": [best.ci_low, best.ci_high],
            "n_runs": best.n_runs,
            "idea": best.idea.title,
            "delta": delta,
            "relative": rel,
            "p_value": best.p_value,
            "confirmed": best.kind == "candidate",
            "commit": best.commit_sha,
            "branch": lab.branch,
        }
    pid = holder_pid(paths.lock)
    made = experiments_made(rows, unclaimed_experiments(paths, rows)
                            if is_agent_spec(lab.settings.get("brain")) else set())
    session = store.meta("session")
    return {
        "lab": lab.name,
        "task_dir": str(paths.task_dir),
        "metric": {"name": task.metric.name, "goal": task.metric.goal},
        "state": "running" if pid else "stopped",
        "pid": pid,
        "baseline": None
        if baseline is None or baseline.metric is None
        else {
            "experiment": baseline.id,
            "metric": baseline.metric,
            "sd": baseline.metric_sd,
            "n_runs": baseline.n_runs,
            "ci": [baseline.ci_low, baseline.ci_high],
        },
        # The number is the minimum effect in the metric's units at the baseline (0 for "auto"; None before the
        # baseline); the text is what `[noise] min_effect` says, for people ("any verified gain", "1%", "0.02").
        "min_effect": lab.min_effect,
        "min_effect_text": task.noise.parsed_min_effect().text(),
        "scale": lab.scale,
        "best": best_out,
        # Those that count toward --max-experiments: offers no agent has claimed (yet, or ever) do not.
        "experiments": made,
        "max_experiments": lab.settings.get("max_experiments"),
        "progress": progress(rows, made, lab.settings.get("max_experiments"),
                             json.loads(session) if session else None, running=pid is not None, now=now),
        "verdicts": store.counts_by_verdict(),
        "in_progress": sum(1 for r in rows if r.kind == "candidate" and r.status in ("proposing", "testing")),
        "failed_proposals": sum(1 for r in rows if r.status == "failed"),
        "lines": [
            {
                "id": line.id,
                "name": line.name,
                "status": line.status,
                "incumbent": line.incumbent_id,
                "metric": by_id[line.incumbent_id].metric if line.incumbent_id in by_id else None,
                **_spread(by_id.get(line.incumbent_id or -1)),
                "direction": line.direction,
                "note": line.note,
            }
            for line in store.lines()
        ],
        "running": running,
        "slot_hours": round(store.gpu_seconds() / 3600.0, 4),
        "llm": store.llm_totals()["total"],
        "decisions": [{"id": d.id, "kind": d.kind, "line": d.line_id, "other_line": d.other_line_id,
                       "experiment": d.experiment_id, "reason": d.reason} for d in store.decisions()],
    }
