"""Read-side views the lab builds from the store: brain contexts and the search policy's view."""

from __future__ import annotations

from pathlib import Path

from labmind.brains.base import BrainContext
from labmind.model import ExperimentKind, ExperimentStatus, LineStatus, PastExperiment, not_taken
from labmind.search.base import LineView, SearchView
from labmind.store import ExperimentRow, Store
from labmind.task import Task
from labmind.verdicts import RUN_FAILURES, Verdict

#: Verdicts that moved a line forward: verified, or kept provisionally (the line builds on it).
PROGRESS = frozenset({Verdict.IMPROVED, Verdict.KEPT})

#: How much history a brain sees (most recent first when trimming).
HISTORY_LIMIT = 50
FAILURE_LIMIT = 3


def failure_tail(store: Store, exp: ExperimentRow) -> str:
    for run in reversed(store.runs_of(exp.id)):
        if run.outcome and run.outcome != "ok":
            return run.log_tail or ""
    return ""


def best_experiment(rows: list[ExperimentRow], task: Task) -> ExperimentRow | None:
    """The best confirmed experiment over the lab: the baseline or an `improved` one (on a tie, the earlier).
    `labmind.store.queries.best` is the same rule in SQL, for readers that must not load every row; this one
    serves the lab's row cache and the report, which hold the rows already."""
    confirmed = [r for r in rows if r.metric is not None
                 and (r.kind == ExperimentKind.BASELINE or r.verdict == Verdict.IMPROVED)]
    if not confirmed:
        return None
    return max(confirmed, key=lambda r: task.sign * (r.metric or 0.0))


def children_count(rows: list[ExperimentRow]) -> dict[int, int]:
    out: dict[int, int] = {}
    for r in rows:
        if r.parent_id is not None:
            out[r.parent_id] = out.get(r.parent_id, 0) + 1
    return out


def search_view(store: Store, rows: list[ExperimentRow], task: Task, min_effect: float) -> SearchView:
    by_id = {r.id: r for r in rows}
    kids = children_count(rows)
    lines = []
    for line in store.lines():
        if line.status != LineStatus.ACTIVE or line.incumbent_id is None:
            continue
        mine = [r for r in rows if r.line_id == line.id and r.kind == ExperimentKind.CANDIDATE and not not_taken(r)]
        done = [r for r in mine if r.status in (ExperimentStatus.DONE, ExperimentStatus.FAILED)]
        recent: list[tuple[float, float]] = []
        since = 0
        for r in done:
            gain = 0.0
            parent = by_id.get(r.parent_id or -1)
            if r.verdict in PROGRESS and parent and parent.metric is not None and r.metric is not None:
                gain = max(0.0, task.sign * (r.metric - parent.metric)) / max(min_effect, 1e-12)
            recent.append((gain, r.slot_seconds))
            since = 0 if r.verdict in PROGRESS else since + 1
        near = sorted(
            (r for r in done if r.near_miss and kids.get(r.id, 0) == 0 and r.metric is not None),
            key=lambda r: -task.sign * (r.metric or 0.0),
        )
        lines.append(LineView(
            id=line.id, incumbent_id=line.incumbent_id, in_flight=len(mine) - len(done), n_done=len(done),
            recent=tuple(recent[-16:]), since_improvement=since, near_misses=tuple(r.id for r in near),
        ))
    return SearchView(lines=tuple(lines))


def brain_context(store: Store, rows: list[ExperimentRow], task: Task, *, experiment_id: int, line_id: int,
                  parent_id: int, min_effect: float, task_dir_in_worktree, brief_text: str,
                  directive: dict | None = None, worktree: Path | None = None,
                  repo_root: Path | None = None) -> BrainContext:
    by_id = {r.id: r for r in rows}
    baseline = next(r for r in rows if r.kind == ExperimentKind.BASELINE)
    line = store.line(line_id)
    incumbent = by_id.get(line.incumbent_id or baseline.id, baseline)
    best = best_experiment(rows, task) or baseline
    finished = [r for r in rows if r.kind == ExperimentKind.CANDIDATE and r.verdict is not None]
    history = [r.past() for r in finished if r.line_id == line_id][-HISTORY_LIMIT:]
    near = [r.past() for r in finished if r.near_miss and r.line_id == line_id][-10:]
    failures: list[PastExperiment] = [
        r.past(failure_tail(store, r)) for r in finished[::-1] if r.verdict in RUN_FAILURES
    ][:FAILURE_LIMIT]
    return BrainContext(
        task=task, task_dir=task_dir_in_worktree, experiment_id=experiment_id, line_id=line_id,
        parent=by_id[parent_id].past(), incumbent=incumbent.past(), best=best.past(), baseline=baseline.past(),
        min_effect=min_effect, history=tuple(history), near_misses=tuple(near),
        recent_failures=tuple(failures), brief_text=brief_text, direction=line.direction,
        directive=directive or {}, worktree=worktree, repo_root=repo_root,
    )
