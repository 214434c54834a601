"""Every number a report shows, computed once from the store.

The markdown, the HTML and the plots only format what `collect` returns, so a number can never differ between
them, and the render test can check the report against the store through this one place.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scipy import stats

from labmind.findings import Finding
from labmind.lab.views import best_experiment
from labmind.library.record import title_family
from labmind.model import ExperimentKind, ExperimentStatus, RunPurpose, RunStatus, not_taken
from labmind.numeric import summarisable
from labmind.observe.knob_analysis import KnobImportance, knob_importance
from labmind.paths import LabPaths
from labmind.store import ExperimentRow, RunRow, Store
from labmind.store.lock import holder_pid
from labmind.task import Task
from labmind.verdicts import RUN_FAILURES, Verdict

#: How many confirmed improvements get their own section (with diff) in the report.
TOP_IMPROVEMENTS = 5


@dataclass(frozen=True)
class Improvement:
    """A confirmed improvement and its effect sizes against its parent and against the baseline."""

    exp: ExperimentRow
    parent: ExperimentRow | None
    delta_parent: float | None
    rel_parent: float | None
    delta_ci: tuple[float, float] | None  # 95% Welch interval of (candidate - parent), from their runs
    delta_baseline: float | None
    rel_baseline: float | None


@dataclass
class Family:
    """What was tried under one idea family (see `families_of`) and how it went."""

    name: str
    tried: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    best_delta: float | None = None  # best metric change vs parent, in the metric's own units
    best_id: int | None = None


@dataclass(frozen=True)
class Cost:
    runs: int
    slot_seconds: float
    slot_seconds_by_purpose: dict[str, float]
    brain_seconds: float
    wall_seconds: float  # first experiment created -> last experiment finished (or now, if running)


@dataclass(frozen=True)
class ReportData:
    lab: str
    task_dir: str
    metric: str
    goal: str
    sign: float
    branch: str
    state: str
    generated_at: float
    min_effect: float | None  # in the metric's units at the baseline (0 for "auto"); None before the baseline
    min_effect_text: str  # as `[noise] min_effect` says it: "any verified gain (min_effect auto)", "1%", "0.02"
    scale: str | None  # the judge's scale (log or linear), chosen with the baseline
    baseline: ExperimentRow | None
    best: ExperimentRow | None  # best confirmed over the lab (None or the baseline when nothing improved)
    best_p_value: float | None
    experiments: list[ExperimentRow]  # every candidate, in id order
    counts: dict[str, int]  # candidates by verdict, plus 'in_progress' and 'failed_proposal' when present
    improvements: list[Improvement]  # every improved experiment, best first
    families: list[Family]
    family_kind: str  # 'knob' or 'title'
    attention: list[tuple[ExperimentRow, list[Finding]]]  # flagged/rejected or carrying flags: (experiment, flags)
    cost: Cost
    #: Knobs labs: how much each knob mattered (most first) and how many experiments that rests on.
    importance: list[KnobImportance] = field(default_factory=list)
    importance_trials: int = 0
    #: The insight library as this lab used it (recorded, applied); None when it has none.
    library: Any = None

    @property
    def improved(self) -> bool:
        return self.best is not None and self.best.kind == ExperimentKind.CANDIDATE

    @property
    def top(self) -> list[Improvement]:
        return self.improvements[:TOP_IMPROVEMENTS]

    def gain(self) -> tuple[float, float | None] | None:
        """(delta, relative) of best vs baseline, or None without both."""
        if not self.improved or self.baseline is None or self.baseline.metric is None or self.best is None:
            return None
        delta = (self.best.metric or 0.0) - self.baseline.metric
        return delta, (delta / abs(self.baseline.metric) if self.baseline.metric else None)


# --------------------------------------------------------------------------------------- statistics


def defining_values(runs: list[RunRow]) -> list[float]:
    """The runs that define an experiment's metric, as the judge uses them: baseline or confirmation runs
    (a screening run is left out because it was selected for looking good), else whatever finished."""
    # Only values the statistics can take: a lab may hold one recorded before labmind bounded metrics.
    done = [r for r in runs if r.status == RunStatus.DONE and summarisable(r.metric)]
    chosen = [r.metric for r in done if r.purpose in (RunPurpose.BASELINE, RunPurpose.CONFIRM)]
    return [float(v) for v in (chosen or [r.metric for r in done]) if v is not None]


def welch_interval(a: list[float], b: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """Confidence interval of mean(a) - mean(b) with Welch's degrees of freedom; None when undefined."""
    if len(a) < 2 or len(b) < 2 or not all(summarisable(v) for v in (*a, *b)):
        return None
    try:
        va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
        diff = statistics.fmean(a) - statistics.fmean(b)
        se = math.sqrt(va + vb)
        if not math.isfinite(se):
            return None
    except (OverflowError, ValueError):
        return None
    if se == 0.0:
        return (diff, diff)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    return (diff - half, diff + half)


# ------------------------------------------------------------------------------------------ families

_SET_NAMES = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")


def is_knobs(exp: ExperimentRow) -> bool:
    return exp.idea.params.get("_brain") == "knobs"


def changed_knobs(exp: ExperimentRow, parent: ExperimentRow | None) -> list[str]:
    """Knob names this experiment changed relative to its parent.

    Knobs ideas carry the complete configuration, so against a knobs parent the change is a plain comparison.
    Against the baseline (which stores no knob values) the title, which names only the changes, is used."""
    params = {k: v for k, v in exp.idea.params.items() if not k.startswith("_")}
    if parent is not None and is_knobs(parent):
        return sorted(k for k, v in params.items() if parent.idea.params.get(k) != v)
    if exp.idea.title.startswith("set "):
        return sorted(set(_SET_NAMES.findall(exp.idea.title)))
    return []


def families_of(exp: ExperimentRow, parent: ExperimentRow | None) -> list[str]:
    """Families an experiment counts under: one per changed knob for knobs ideas, else its title family."""
    if is_knobs(exp):
        return changed_knobs(exp, parent) or ["(no knob changed)"]
    return [title_family(exp)]


def build_families(rows: list[ExperimentRow], by_id: dict[int, ExperimentRow], sign: float) -> list[Family]:
    out: dict[str, Family] = {}
    for exp in rows:
        parent = by_id.get(exp.parent_id or -1)
        delta = None
        if exp.metric is not None and parent is not None and parent.metric is not None:
            delta = exp.metric - parent.metric
        for name in families_of(exp, parent):
            fam = out.setdefault(name, Family(name))
            fam.tried += 1
            verdict = exp.verdict or "in_progress"
            fam.verdicts[verdict] = fam.verdicts.get(verdict, 0) + 1
            # Only trustworthy outcomes can be "best": a flagged or rejected gain is not an effect.
            trusted = exp.verdict not in (Verdict.FLAGGED, Verdict.REJECTED)
            if delta is not None and trusted and (fam.best_delta is None or sign * delta > sign * fam.best_delta):
                fam.best_delta, fam.best_id = delta, exp.id
    return sorted(out.values(), key=lambda f: (-f.tried, f.name))


# -------------------------------------------------------------------------------------------- collect


def _improvement(exp: ExperimentRow, by_id: dict[int, ExperimentRow], baseline: ExperimentRow | None,
                 values: dict[int, list[float]]) -> Improvement:
    parent = by_id.get(exp.parent_id or -1)

    def rel(ref: ExperimentRow | None) -> tuple[float | None, float | None]:
        if ref is None or ref.metric is None or exp.metric is None:
            return None, None
        d = exp.metric - ref.metric
        return d, (d / abs(ref.metric) if ref.metric else None)

    dp, rp = rel(parent)
    db, rb = rel(baseline)
    ci = welch_interval(values.get(exp.id, []), values.get(parent.id, [])) if parent else None
    return Improvement(exp, parent, dp, rp, ci, db, rb)


def _attention(rows: list[ExperimentRow], runs: dict[int, list[RunRow]]
               ) -> list[tuple[ExperimentRow, list[Finding]]]:
    out = []
    for exp in rows:
        flags = list(dict.fromkeys([*exp.flags, *(f for r in runs.get(exp.id, []) for f in r.flags)]))
        if exp.verdict in (Verdict.FLAGGED, Verdict.REJECTED) or flags:
            out.append((exp, flags))
    return out


def _cost(rows: list[ExperimentRow], runs: list[RunRow], running: bool, now: float) -> Cost:
    by_purpose: dict[str, float] = {}
    for r in runs:
        by_purpose[r.purpose] = by_purpose.get(r.purpose, 0.0) + r.seconds
    start = min((e.created_at for e in rows), default=now)
    ends = [e.finished_at for e in rows if e.finished_at is not None]
    end = now if running else max(ends, default=start)
    return Cost(runs=sum(1 for r in runs if r.ended_at is not None), slot_seconds=sum(by_purpose.values()),
                slot_seconds_by_purpose=by_purpose, brain_seconds=sum(e.brain_seconds for e in rows),
                wall_seconds=max(0.0, end - start))


def collect(store: Store, paths: LabPaths) -> ReportData:
    """Read everything a report needs from a (read-only) store in one pass."""
    lab = store.lab()
    if lab is None:
        raise ValueError("the lab was never set up")
    task = Task.model_validate_json(lab.task_json)
    rows = store.experiments()
    runs = store.runs()
    runs_by_exp: dict[int, list[RunRow]] = {}
    for r in runs:
        runs_by_exp.setdefault(r.experiment_id, []).append(r)
    values = {eid: defining_values(rs) for eid, rs in runs_by_exp.items()}
    by_id = {r.id: r for r in rows}
    baseline = next((r for r in rows if r.kind == ExperimentKind.BASELINE), None)
    # Offers no agent took up are records, not experiments (they never count toward --max-experiments either).
    candidates = [r for r in rows if r.kind == ExperimentKind.CANDIDATE and not not_taken(r)]
    best = best_experiment(rows, task)
    improved = [r for r in candidates if r.verdict == Verdict.IMPROVED]
    improvements = sorted((_improvement(r, by_id, baseline, values) for r in improved),
                          key=lambda i: -task.sign * (i.exp.metric or 0.0))
    counts = dict(store.counts_by_verdict())
    in_progress = sum(1 for r in candidates
                      if r.verdict is None and r.status in (ExperimentStatus.PROPOSING, ExperimentStatus.TESTING))
    failed = sum(1 for r in candidates if r.status == ExperimentStatus.FAILED)
    if in_progress:
        counts["in_progress"] = in_progress
    if failed:
        counts["failed_proposal"] = failed
    knob_lab = any(is_knobs(r) for r in candidates)
    importance, importance_trials = knob_importance(candidates, task.sign) if knob_lab else ([], 0)
    pid = holder_pid(paths.lock)
    now = time.time()
    return ReportData(
        lab=lab.name, task_dir=str(paths.task_dir), metric=task.metric.name, goal=task.metric.goal, sign=task.sign,
        branch=lab.branch, state="running" if pid else "stopped", generated_at=now, min_effect=lab.min_effect,
        min_effect_text=task.noise.parsed_min_effect().text(), scale=lab.scale,
        baseline=baseline, best=best, best_p_value=best.p_value if best else None, experiments=candidates,
        counts=counts, improvements=improvements, families=build_families(candidates, by_id, task.sign),
        family_kind="knob" if knob_lab else "title", attention=_attention(candidates, runs_by_exp),
        cost=_cost(rows, runs, bool(pid), now), importance=importance, importance_trials=importance_trials,
        library=_citations(lab.settings, paths.task_dir, candidates),
    )


def _citations(settings: dict[str, Any], task_dir: Path, candidates: list[ExperimentRow]) -> Any:
    from labmind.library.cite import citations  # the library imports this module (idea families)

    return citations(settings, task_dir, candidates)


def running_best(data: ReportData) -> list[tuple[int, float]]:
    """(experiment id, best confirmed metric so far) after each candidate, in id order, starting at the baseline's
    id; the x-axis the dashboard and `labmind log` use.

    An improvement counts from its own id on (its verdict came later, but the id is what the plot shows)."""
    best = data.baseline.metric if data.baseline is not None else None
    out: list[tuple[int, float]] = [] if best is None or data.baseline is None else [(data.baseline.id, best)]
    for exp in data.experiments:
        if exp.verdict == Verdict.IMPROVED and exp.metric is not None and (
                best is None or data.sign * exp.metric > data.sign * best):
            best = exp.metric
        if best is not None:
            out.append((exp.id, best))
    return out


def verdict_of(exp: ExperimentRow) -> str:
    return exp.verdict or ("failed_proposal" if exp.status == ExperimentStatus.FAILED else "in_progress")


def is_failure(verdict: str) -> bool:
    return verdict in RUN_FAILURES or verdict in ("no_change", "failed_proposal")


def as_dict(data: ReportData) -> dict[str, Any]:
    """The headline numbers as plain data (report.json), for scripts and for tests."""
    gain = data.gain()
    b = data.baseline
    return {
        "lab": data.lab, "metric": data.metric, "goal": data.goal, "state": data.state, "branch": data.branch,
        "baseline": None if b is None else {"experiment": b.id, "metric": b.metric, "sd": b.metric_sd,
                                            "n_runs": b.n_runs},
        "best": None if not data.improved or data.best is None else {
            "experiment": data.best.id, "metric": data.best.metric, "ci": [data.best.ci_low, data.best.ci_high],
            "n_runs": data.best.n_runs, "p_value": data.best_p_value,
            "delta": gain[0] if gain else None, "relative": gain[1] if gain else None},
        "min_effect": data.min_effect, "min_effect_text": data.min_effect_text, "scale": data.scale,
        "experiments": len(data.experiments), "verdicts": data.counts,
        "slot_hours": data.cost.slot_seconds / 3600.0, "brain_seconds": data.cost.brain_seconds,
        "wall_seconds": data.cost.wall_seconds,
        "library": data.library.to_dict() if data.library is not None else None,
    }
