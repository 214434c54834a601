"""Typed views of store rows. Queries return these, never raw tuples."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from labmind.findings import Finding
from labmind.findings import stored as stored_findings
from labmind.model import Idea, PastExperiment


@dataclass(frozen=True)
class LabRow:
    name: str
    task_json: str
    repo_root: str
    task_subdir: str
    base_commit: str
    branch: str
    created_at: float
    baseline_id: int | None
    min_effect: float | None
    noise_sd: float | None
    settings: dict[str, Any]
    scale: str | None = None


@dataclass(frozen=True)
class LineRow:
    id: int
    name: str
    incumbent_id: int | None
    status: str
    created_at: float
    direction: str = ""
    note: str = ""
    verified_id: int | None = None  # the last verified point; incumbent_id may be provisional (verdict kept)


@dataclass(frozen=True)
class ExperimentRow:
    id: int
    line_id: int | None
    parent_id: int | None
    kind: str
    status: str
    brain: str
    idea: Idea
    base_commit: str | None
    commit_sha: str | None
    diff: str | None
    changed_files: list[str]
    verdict: str | None
    reason: str | None
    metric: float | None
    metric_sd: float | None
    ci_low: float | None
    ci_high: float | None
    n_runs: int
    p_value: float | None
    flags: list[Finding]
    near_miss: bool
    slot_seconds: float
    brain_seconds: float
    error: str | None
    created_at: float
    finished_at: float | None
    analysis: str | None = None
    directive: dict[str, Any] = field(default_factory=dict)
    judgement: dict[str, Any] = field(default_factory=dict)

    def past(self, log_tail: str = "") -> PastExperiment:
        return PastExperiment(
            id=self.id,
            line_id=self.line_id or 0,
            parent_id=self.parent_id,
            idea=self.idea,
            verdict=self.verdict or "",
            reason=self.reason or "",
            metric=self.metric,
            metric_sd=self.metric_sd,
            n_runs=self.n_runs,
            log_tail=log_tail,
            analysis=self.analysis or "",
            directive=self.directive.get("kind", ""),
            kind=self.kind,
        )


@dataclass(frozen=True)
class RunRow:
    id: int
    experiment_id: int
    purpose: str
    seed: int
    status: str
    slot: str | None
    token: str | None
    started_at: float | None
    ended_at: float | None
    exit_code: int | None
    outcome: str | None
    metric: float | None
    self_reported: float | None
    holdout: float | None
    secondary: dict[str, float]
    flags: list[Finding]
    log_path: str | None
    log_tail: str | None
    sandbox: str | None
    requeued_from: int | None

    @property
    def seconds(self) -> float:
        if self.started_at is None or self.ended_at is None:
            return 0.0
        return self.ended_at - self.started_at


@dataclass(frozen=True)
class EventRow:
    id: int
    at: float
    kind: str
    experiment_id: int | None
    run_id: int | None
    message: str


def lab_row(r: sqlite3.Row) -> LabRow:
    return LabRow(
        name=r["name"], task_json=r["task_json"], repo_root=r["repo_root"], task_subdir=r["task_subdir"],
        base_commit=r["base_commit"], branch=r["branch"], created_at=r["created_at"],
        baseline_id=r["baseline_id"], min_effect=r["min_effect"], noise_sd=r["noise_sd"],
        settings=json.loads(r["settings_json"]), scale=_get(r, "scale"),
    )


def _get(r: sqlite3.Row, column: str, default: Any = None) -> Any:
    """A column that older schemas lack (a store opened read-only is not migrated)."""
    return r[column] if column in r.keys() else default  # noqa: SIM118 (sqlite3.Row: `in` tests values)


def line_row(r: sqlite3.Row) -> LineRow:
    return LineRow(id=r["id"], name=r["name"], incumbent_id=r["incumbent_id"], status=r["status"],
                   created_at=r["created_at"], direction=_get(r, "direction", ""), note=_get(r, "note", ""),
                   verified_id=_get(r, "verified_id"))


def experiment_row(r: sqlite3.Row) -> ExperimentRow:
    return ExperimentRow(
        id=r["id"], line_id=r["line_id"], parent_id=r["parent_id"], kind=r["kind"], status=r["status"],
        brain=r["brain"], idea=Idea.from_dict(json.loads(r["idea_json"])), base_commit=r["base_commit"],
        commit_sha=r["commit_sha"], diff=r["diff"], changed_files=json.loads(r["changed_files"]),
        verdict=r["verdict"], reason=r["reason"], metric=r["metric"], metric_sd=r["metric_sd"],
        ci_low=r["ci_low"], ci_high=r["ci_high"], n_runs=r["n_runs"], p_value=r["p_value"],
        flags=stored_findings(r["flags"]), near_miss=bool(r["near_miss"]),
        # Schema 4 named it gpu_seconds (a store opened read-only is not migrated).
        slot_seconds=_get(r, "slot_seconds", _get(r, "gpu_seconds", 0.0)),
        brain_seconds=r["brain_seconds"], error=r["error"], created_at=r["created_at"],
        finished_at=r["finished_at"], analysis=_get(r, "analysis"),
        directive=json.loads(_get(r, "directive_json", "{}") or "{}"),
        judgement=json.loads(_get(r, "judgement_json", "{}") or "{}"),
    )


def run_row(r: sqlite3.Row) -> RunRow:
    return RunRow(
        id=r["id"], experiment_id=r["experiment_id"], purpose=r["purpose"], seed=r["seed"], status=r["status"],
        slot=r["slot"], token=r["token"], started_at=r["started_at"], ended_at=r["ended_at"],
        exit_code=r["exit_code"], outcome=r["outcome"], metric=r["metric"], self_reported=r["self_reported"],
        holdout=_get(r, "holdout"),
        secondary=json.loads(r["secondary"]), flags=stored_findings(r["flags"]), log_path=r["log_path"],
        log_tail=r["log_tail"], sandbox=r["sandbox"], requeued_from=r["requeued_from"],
    )


def event_row(r: sqlite3.Row) -> EventRow:
    return EventRow(id=r["id"], at=r["at"], kind=r["kind"], experiment_id=r["experiment_id"],
                    run_id=r["run_id"], message=r["message"])


@dataclass(frozen=True)
class DecisionRow:
    """A director's decision about the lab's lines, with its reason."""

    id: int
    at: float
    kind: str  # explore | combine | retire
    line_id: int | None
    other_line_id: int | None
    experiment_id: int | None
    reason: str
    detail: dict[str, Any]


def decision_row(r: sqlite3.Row) -> DecisionRow:
    return DecisionRow(id=r["id"], at=r["at"], kind=r["kind"], line_id=r["line_id"],
                       other_line_id=r["other_line_id"], experiment_id=r["experiment_id"], reason=r["reason"],
                       detail=json.loads(r["detail_json"] or "{}"))
