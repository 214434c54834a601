"""One experiment, one JSON shape: what `labmind log/show --json`, the dashboard, `labmind status`, the agent
verbs and `labmind export` all say about an experiment.

The shape (every key, wherever an experiment is shown):

    id, kind, line, parent, status, verdict, meaning, reason, error,
    metric, sd, ci: [low, high], n_runs, p_value,     # the figure: mean, runs' sd, 95% CI of the mean, runs
    flags, near_miss, idea: {title, ...}, brain, commit, slot_seconds, created_at, finished_at

Full rows add `changed_files`, `brain_seconds`, `analysis`, `directive` and `judgement`; list rows (a page of
the dashboard, a tree) carry only the idea's title. `flags` are the guard's findings, `{rule, path, line, evidence}`. A
*figure* is the smaller block status uses for the baseline, the best and a line's incumbent. `export` writes
the same record flattened into table columns (`flat`): `ci` as `ci_low`/`ci_high`, the idea as `idea_*`.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from labmind.findings import findings_json
from labmind.findings import stored as stored_findings
from labmind.store import ExperimentRow, RunRow
from labmind.verdicts import MEANING, Verdict


def meaning(verdict: str | None) -> str | None:
    """The verdict's sentence (DESIGN.md), or None for an experiment without a verdict yet."""
    return MEANING[Verdict(verdict)] if verdict in {v.value for v in Verdict} else None


def _record(*, id: int, kind: str, line: int | None, parent: int | None, status: str, verdict: str | None,
            reason: str | None, error: str | None, metric: float | None, sd: float | None, ci_low: float | None,
            ci_high: float | None, n_runs: int, p_value: float | None, flags: Any, near_miss: bool,
            idea: dict[str, Any], brain: str, commit: str | None, slot_seconds: float, created_at: float,
            finished_at: float | None) -> dict[str, Any]:
    return {
        "id": id, "kind": kind, "line": line, "parent": parent, "status": status, "verdict": verdict,
        "meaning": meaning(verdict), "reason": reason, "error": error,
        "metric": metric, "sd": sd, "ci": [ci_low, ci_high], "n_runs": n_runs, "p_value": p_value,
        "flags": flags, "near_miss": near_miss, "idea": idea, "brain": brain, "commit": commit,
        "slot_seconds": slot_seconds, "created_at": created_at, "finished_at": finished_at,
    }


def experiment_json(exp: ExperimentRow) -> dict[str, Any]:
    """A whole experiment (from `Store.experiment(s)` or `queries.experiment`)."""
    return {
        **_record(id=exp.id, kind=exp.kind, line=exp.line_id, parent=exp.parent_id, status=exp.status,
                  verdict=exp.verdict, reason=exp.reason, error=exp.error, metric=exp.metric, sd=exp.metric_sd,
                  ci_low=exp.ci_low, ci_high=exp.ci_high, n_runs=exp.n_runs, p_value=exp.p_value,
                  flags=findings_json(exp.flags),
                  near_miss=exp.near_miss, idea=exp.idea.to_dict(), brain=exp.brain, commit=exp.commit_sha,
                  slot_seconds=exp.slot_seconds, created_at=exp.created_at, finished_at=exp.finished_at),
        "changed_files": exp.changed_files, "brain_seconds": exp.brain_seconds, "analysis": exp.analysis,
        # A combination's directive carries the other line's diff: shown by `labmind diff`, not here.
        "directive": {k: v for k, v in exp.directive.items() if k != "diff"},
        "judgement": exp.judgement,
    }


def run_json(run: RunRow) -> dict[str, Any]:
    """One run of an experiment, as `labmind show --json` and the dashboard's detail list it."""
    return {"id": run.id, "purpose": run.purpose, "seed": run.seed, "status": run.status, "outcome": run.outcome,
            "slot": run.slot, "metric": run.metric, "self_reported": run.self_reported, "holdout": run.holdout,
            "secondary": run.secondary, "flags": findings_json(run.flags), "exit_code": run.exit_code,
            "seconds": round(run.seconds, 3), "started_at": run.started_at, "log": run.log_path,
            "sandbox": run.sandbox, "requeued_from": run.requeued_from}


def listed_json(r: sqlite3.Row) -> dict[str, Any]:
    """An experiment from a list query (`queries.list_columns`): the same keys, the idea's title only."""
    return _record(id=r["id"], kind=r["kind"], line=r["line_id"], parent=r["parent_id"], status=r["status"],
                   verdict=r["verdict"], reason=r["reason"], error=r["error"], metric=r["metric"],
                   sd=r["metric_sd"], ci_low=r["ci_low"], ci_high=r["ci_high"], n_runs=r["n_runs"],
                   p_value=r["p_value"], flags=findings_json(stored_findings(r["flags"])),
                   near_miss=bool(r["near_miss"]),
                   idea={"title": r["title"] or ""}, brain=r["brain"], commit=r["commit_sha"],
                   slot_seconds=r["slot_seconds"], created_at=r["created_at"], finished_at=r["finished_at"])


def figure_json(r: sqlite3.Row | None) -> dict[str, Any] | None:
    """The figure of a measured experiment (a list row), as status shows the baseline and the best: None when it
    has no metric."""
    if r is None or r["metric"] is None:
        return None
    return {"experiment": r["id"], "metric": r["metric"], "sd": r["metric_sd"], "ci": [r["ci_low"], r["ci_high"]],
            "n_runs": r["n_runs"], "p_value": r["p_value"], "idea": r["title"] or ""}


#: The columns of `flat`, in order (`labmind export`'s experiment columns; docs/report.md).
FLAT_COLUMNS = [
    "id", "kind", "line", "parent", "status", "verdict", "reason", "metric", "sd", "ci_low", "ci_high", "n_runs",
    "p_value", "flags", "near_miss", "brain", "idea_title", "idea_hypothesis", "idea_params", "changed_files",
    "commit", "slot_seconds", "brain_seconds", "error", "created_at", "finished_at",
]


def flat(record: dict[str, Any]) -> dict[str, Any]:
    """A whole experiment's record as one table row (`labmind export`): `ci` as `ci_low`/`ci_high` and the idea
    as `idea_*` columns; lists and dicts stay as they are (a CSV writes them as JSON text)."""
    idea = record["idea"]
    row = {**record, "ci_low": record["ci"][0], "ci_high": record["ci"][1], "idea_title": idea["title"],
           "idea_hypothesis": idea.get("hypothesis", ""), "idea_params": idea.get("params", {})}
    return {column: row[column] for column in FLAT_COLUMNS}
