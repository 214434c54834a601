"""A person's decision on a flagged experiment (`labmind review EXP --accept|--reject`).

The store has one writer. When the lab is running, the decision is handed to it through a file in
`.labmind/inbox/`, and the lab applies it; otherwise `labmind review` takes the lab's lock and applies
it itself. Both paths use `apply_review`.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path

from labmind.lab import promotion
from labmind.paths import LabPaths
from labmind.store import ExperimentRow, Store
from labmind.task import Task
from labmind.verdicts import Verdict


class ReviewError(Exception):
    pass


def check_reviewable(store: Store, experiment_id: int) -> None:
    exp = store.experiment(experiment_id)
    if exp.verdict != Verdict.FLAGGED:
        raise ReviewError(f"experiment {experiment_id} is {exp.verdict or exp.status}, not flagged: only flagged "
                          "experiments wait for a person's review")


DECISIONS = ("accept", "reject")


def apply_review(store: Store, paths: LabPaths, experiment_id: int, decision: str, note: str) -> str:
    """Record the decision and act on it; returns a sentence saying what happened. A rejected cheat is also kept
    as a guard example in the lab's insight library (guard memory)."""
    message = decide(store, paths, experiment_id, decision, note)
    if decision == "reject":
        message += remember_cheat_in_library(store, paths, store.experiment(experiment_id), note)
    return message


def decide(store: Store, paths: LabPaths, experiment_id: int, decision: str, note: str) -> str:
    """The decision itself, in one transaction of the lab's store."""
    if decision not in DECISIONS:
        raise ReviewError(f"unknown review decision {decision!r}; expected accept or reject")
    check_reviewable(store, experiment_id)
    lab = store.lab()
    assert lab is not None
    task = Task.model_validate_json(lab.task_json)
    exp = store.experiment(experiment_id)
    with store.transaction():
        store.add_review(experiment_id, decision, note)
        if decision == "reject":
            # Flags stay in their own field; reasons reach brains, so they carry no evidence.
            store.update_experiment(experiment_id, verdict=Verdict.REJECTED.value,
                                    reason=f"rejected by a person after review{': ' + note if note else ''}")
            return f"experiment {experiment_id} is now rejected"
        # Flagged after verification: accepting makes the claim. Flagged at screening (one run): accepting lets
        # its line build on it, and it is verified on fresh seeds like any other provisional step.
        verified = exp.judgement.get("verify", {}).get("state") == "claim"
        verdict = Verdict.IMPROVED if verified else Verdict.KEPT
        store.update_experiment(experiment_id, verdict=verdict.value,
                                reason=f"accepted by a person after review{': ' + note if note else ''}; "
                                       f"its flags stay on record. {exp.reason}")
        line = store.line(exp.line_id or 0)
        incumbent = store.experiment(line.incumbent_id) if line.incumbent_id else None
        promoted = exp.metric is not None and (
            incumbent is None or incumbent.metric is None or task.better(exp.metric, incumbent.metric))
        if promoted:
            promotion.promote(store, line.id, experiment_id, verified=verified)
    message = f"experiment {experiment_id} is accepted as {verdict.value}"
    if promoted and exp.commit_sha:
        kept = promotion.keep(store, Path(lab.repo_root), store.experiment(experiment_id))
        message += (f" and is line {line.id}'s {'incumbent' if verified else 'provisional incumbent'}"
                    + (f" (lab best, branch {lab.branch})" if kept.best else ""))
        if kept.error:
            message += f"; {kept.error}"
    elif not promoted:
        message += f"; line {line.id}'s incumbent stays experiment {line.incumbent_id}, which is better"
    return message


def inbox(paths: LabPaths) -> Path:
    return paths.root / "inbox"


def post_review(paths: LabPaths, experiment_id: int, decision: str, note: str) -> Path:
    """Hand a decision to the running lab."""
    folder = inbox(paths)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"review-{experiment_id}-{uuid.uuid4().hex[:8]}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"experiment": experiment_id, "decision": decision, "note": note, "at": time.time()}))
    tmp.rename(path)  # atomic: the lab never reads half a file
    return path


def remember_cheat_in_library(store: Store, paths: LabPaths, exp: ExperimentRow, note: str) -> str:
    """A confirmed cheat becomes a guard example in the lab's library (guard memory); a library that cannot be
    written leaves the rejection as it is. Returns what to add to the review's message."""
    from labmind.library import Library, LibraryError
    from labmind.library.cite import library_of
    from labmind.library.guard_memory import remember_cheat

    lab = store.lab()
    path = library_of(lab.settings if lab else {})
    if lab is None or path is None:
        return ""
    task = Task.model_validate_json(lab.task_json)
    try:
        with Library(path) as library:
            example = remember_cheat(library, exp, lab=lab.name, lab_dir=str(paths.task_dir),
                                     family=task.task.family or task.name, note=note)
    except (LibraryError, OSError, sqlite3.Error) as exc:
        return f" (it could not be kept as a guard example in the library: {exc})"
    return f"; kept as guard example #{example.id} in the library, checked against every later change"


def take_posted(paths: LabPaths) -> list[tuple[Path, dict]]:
    folder = inbox(paths)
    if not folder.exists():
        return []
    out = []
    for path in sorted(folder.glob("review-*.json")):
        try:
            out.append((path, json.loads(path.read_text())))
        except (OSError, json.JSONDecodeError):
            continue
    return out
