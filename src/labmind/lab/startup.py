"""What a lab does once when a session starts, before its loop: heal what a killed session left, refuse a
lab whose baseline failed, measure the baseline, add lines, and rewrite the git refs of kept work.

Each step reads the store and is idempotent, so running them on every start (fresh or resumed) is safe.
"""

from __future__ import annotations

import time

from labmind.execute.base import Executor
from labmind.lab import promotion
from labmind.lab.ledger import Ledger
from labmind.lab.progress import duration_text
from labmind.model import ExperimentKind, ExperimentStatus, Idea, RunPurpose, RunStatus
from labmind.paths import LabPaths
from labmind.task import Task
from labmind.verdicts import Verdict
from labmind.workspace import git as gitops


class LabError(Exception):
    """The lab cannot go on (e.g. the baseline itself fails); the message says what to do."""


def recover(ledger: Ledger, executor: Executor, paths: LabPaths, repo: gitops.RepoInfo) -> None:
    """Re-queue runs a killed lab left running (exactly once each) and clear stale worktrees."""
    store = ledger.store
    running = store.runs(status=RunStatus.RUNNING)
    killed = executor.kill_leftovers([r.token for r in running if r.token])
    for run in running:
        with store.transaction():
            store.update_run(run.id, status=RunStatus.INTERRUPTED, ended_at=time.time())
            new = store.add_run(experiment_id=run.experiment_id, purpose=run.purpose, seed=run.seed,
                                requeued_from=run.id)
        ledger.note("requeued", f"run {run.id} was interrupted; queued again as run {new}",
                    experiment_id=run.experiment_id, run_id=new)
    if killed:
        ledger.note("cleanup", f"killed {killed} leftover process(es) of interrupted runs")
    if paths.worktrees.exists():
        for child in paths.worktrees.iterdir():
            gitops.remove_worktree(repo.root, child)


def refuse_failed_baseline(ledger: Ledger, paths: LabPaths) -> None:
    base = ledger.baseline()
    if base is not None and base.status == ExperimentStatus.DONE and base.verdict is not None:
        raise LabError(f"this lab's baseline failed ({base.reason}). Its code is the lab's starting commit, so "
                       f"the lab cannot go on: fix the task, commit, and start a new lab with "
                       f"`labmind run --fresh {paths.task_dir}` (or `labmind reset`; the old lab is kept "
                       f"under {paths.root / 'backups'}).")


def ensure_baseline(ledger: Ledger, task: Task, *, n_lines: int, n_slots: int) -> None:
    """A new lab's first experiment: the task's code as committed, run on `baseline_runs` seeds."""
    if ledger.baseline() is not None:
        return
    store = ledger.store
    lab = store.lab()
    assert lab is not None
    with store.transaction():
        exp_id = store.add_experiment(kind=ExperimentKind.BASELINE, line_id=None, parent_id=None, brain="",
                                      base_commit=lab.base_commit, status=ExperimentStatus.TESTING)
        store.update_experiment(exp_id, commit_sha=lab.base_commit,
                                idea=Idea(title="baseline", hypothesis="the task's code as committed"))
        store.update_lab(baseline_id=exp_id)
        for i in range(n_lines):
            store.add_line(f"line-{i + 1}", exp_id)
        for _ in range(task.noise.baseline_runs):
            store.add_run(experiment_id=exp_id, purpose=RunPurpose.BASELINE, seed=store.next_seed())
    ledger.refresh(exp_id)
    runs, timeout = task.noise.baseline_runs, task.run.timeout
    waves = -(-runs // max(1, n_slots))  # before the first run ends, the timeout bounds the wait
    ledger.note("baseline", f"measuring the baseline's noise with {runs} runs (at most "
                            f"{duration_text(waves * timeout)} at the {duration_text(timeout)} timeout on "
                            f"{n_slots} slot(s))", experiment_id=exp_id)


def ensure_lines(ledger: Ledger, wanted: int) -> None:
    """Add lines when a resumed lab is asked for more than it has."""
    lab, lines = ledger.store.lab(), ledger.store.lines()
    if lab is None or lab.baseline_id is None or not lines or wanted <= len(lines):
        return
    for i in range(len(lines), wanted):
        line_id = ledger.store.add_line(f"line-{i + 1}", lab.baseline_id)
        ledger.note("line", f"added line {line_id}, starting from the baseline")


def sync_refs(ledger: Ledger, repo: gitops.RepoInfo) -> None:
    """Git refs for kept work are derived from the store: (re)write them, so a lab killed between a promotion
    and its ref update heals on resume."""
    if ledger.store.lab() is None:
        return
    for row in list(ledger.rows.values()):
        if row.verdict == Verdict.IMPROVED and row.commit_sha:
            kept = promotion.keep(ledger.store, repo.root, row)
            if kept.error:
                ledger.note("warning", kept.error)
