"""The lab's ledger: its store, the experiment rows it has read, and its notes.

Every part of the lab reads and writes experiments through one ledger, so they share one row cache (a row is
re-read after each write to it with `refresh`) and one way of saying what happened (`note`: an event in the
store and a line for whoever watches). The judge's minimum effect is read here too, since brains, the search
policy and the director are all told it.
"""

from __future__ import annotations

from typing import Protocol

from labmind.judge import Judge
from labmind.lab.views import best_experiment
from labmind.model import ExperimentKind
from labmind.store import ExperimentRow, Store
from labmind.task import Task


class Listener(Protocol):
    """Whoever watches the lab (a terminal, a log): told every note as it is made."""

    def event(self, kind: str, message: str) -> None: ...


class Ledger:
    def __init__(self, store: Store, task: Task, listener: Listener) -> None:
        self.store, self.task, self.listener = store, task, listener
        self.rows: dict[int, ExperimentRow] = {r.id: r for r in store.experiments()}
        #: The judge, once the baseline has measured the noise (the referee sets it).
        self.judge: Judge | None = None

    def note(self, kind: str, message: str, *, experiment_id: int | None = None, run_id: int | None = None) -> None:
        self.store.event(kind, message, experiment_id=experiment_id, run_id=run_id)
        self.listener.event(kind, message)

    def refresh(self, experiment_id: int) -> ExperimentRow:
        row = self.store.experiment(experiment_id)
        self.rows[experiment_id] = row
        return row

    def reload(self) -> None:
        """Re-read every row (another process wrote to the store: a person's review)."""
        for row in self.store.experiments():
            self.rows[row.id] = row

    def baseline(self) -> ExperimentRow | None:
        return next((r for r in self.rows.values() if r.kind == ExperimentKind.BASELINE), None)

    def best(self) -> ExperimentRow | None:
        return best_experiment(list(self.rows.values()), self.task)

    def commit_of(self, exp: ExperimentRow) -> str:
        commit = exp.commit_sha or exp.base_commit
        assert commit, f"experiment {exp.id} has no commit"
        return commit

    def min_effect(self) -> float:
        """The minimum effect in the metric's units at the lab's best (what brains are told)."""
        best = self.best()
        if self.judge is None or best is None or best.metric is None:
            return 0.0
        return self.judge.min_effect.in_units(best.metric, self.task.sign)

    def ancestry(self, exp: ExperimentRow) -> list[int]:
        """exp's id, its parent's, and so on up to the baseline."""
        out, row = [], exp
        while True:
            out.append(row.id)
            if row.parent_id is None or row.parent_id not in self.rows:
                return out
            row = self.rows[row.parent_id]

    def descends(self, exp_id: int | None, ancestor_id: int) -> bool:
        """Whether exp `exp_id` is exp `ancestor_id` or built on it."""
        seen: set[int] = set()
        while exp_id is not None and exp_id not in seen:
            if exp_id == ancestor_id:
                return True
            seen.add(exp_id)
            row = self.rows.get(exp_id)
            exp_id = row.parent_id if row else None
        return False
