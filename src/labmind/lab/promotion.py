"""Promotion: an experiment becomes its line's incumbent (provisionally, for `kept`), and when verified also the
line's verified point and a git ref. The one way it happens, for the lab's referee and for a person's review
(`labmind review --accept`).

Two steps, because they sit on either side of a commit: `promote` writes the store inside the caller's
transaction (the same one as the verdict, so a killed lab never has one without the other), and `keep` writes
the git refs after it (refs are derived from the store: a lab resumes by writing them again).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labmind.store import ExperimentRow, Store, queries
from labmind.task import Task
from labmind.verdicts import Verdict
from labmind.workspace import git as gitops


def promote(store: Store, line_id: int, experiment_id: int, *, verified: bool, move_head: bool = True) -> None:
    """`experiment_id` becomes line `line_id`'s incumbent; `verified`: also its verified point. `move_head`
    False: a claim that its line already builds on (steps kept during its verification) leaves the head where
    it is and only becomes the verified point."""
    if move_head:
        store.set_incumbent(line_id, experiment_id)
    if verified:
        store.update_line(line_id, verified_id=experiment_id)


def is_lab_best(store: Store, experiment_id: int) -> bool:
    """Whether the experiment is the lab's best confirmed one (`queries.best`, the one definition)."""
    lab = store.lab()
    if lab is None:
        return False
    best = queries.best(store.connection, Task.model_validate_json(lab.task_json).sign)
    return best is not None and best["id"] == experiment_id


@dataclass(frozen=True)
class Kept:
    best: bool  # the experiment is the lab's best confirmed one
    error: str | None = None  # why git could not write its ref (the verdict stands: it is in the store)


def keep(store: Store, repo_root: Path, exp: ExperimentRow) -> Kept:
    """After the verdict's commit: a verified (`improved`) experiment's commit is kept as a git ref, and as the
    lab's branch when it is the lab's best."""
    lab = store.lab()
    best = is_lab_best(store, exp.id)
    if lab is not None and exp.verdict == Verdict.IMPROVED and exp.commit_sha:
        try:
            gitops.keep(repo_root, lab.name, exp.id, exp.commit_sha, best=best)
        except gitops.GitError as exc:
            return Kept(best, f"could not record exp {exp.id}'s commit as a git ref: {exc}")
    return Kept(best)
