"""Helpers for brain tests: tasks, past experiments and brain contexts built from plain data."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from labmind.brains.base import BrainContext
from labmind.model import Idea, PastExperiment
from labmind.task.model import Task


def make_task(editable: list[str] | None = None, **sections: Any) -> Task:
    data: dict[str, Any] = {
        "task": {"name": "toy", "editable": editable or ["train.py"], "protected": ["prepare.py"]},
        "run": {"command": "python train.py"},
        "metric": {"name": "loss", "goal": "minimize"},
    }
    data.update(sections)
    return Task.model_validate(data)


def past(
    exp_id: int,
    *,
    parent_id: int | None = 0,
    title: str = "baseline",
    params: dict[str, Any] | None = None,
    verdict: str = "not_improved",
    metric: float | None = 1.0,
) -> PastExperiment:
    return PastExperiment(
        id=exp_id, line_id=0, parent_id=parent_id, idea=Idea(title=title, params=params or {}),
        verdict=verdict, reason="because", metric=metric, metric_sd=0.01, n_runs=1,
    )  # fmt: skip


BASELINE = past(0, parent_id=None)


def make_ctx(
    task: Task,
    task_dir: Path,
    *,
    experiment_id: int = 1,
    parent: PastExperiment = BASELINE,
    history: tuple[PastExperiment, ...] = (),
    worktree: Path | None = None,
) -> BrainContext:
    return BrainContext(
        task=task, task_dir=task_dir, experiment_id=experiment_id, line_id=0, parent=parent,
        incumbent=parent, best=parent, baseline=BASELINE, min_effect=0.01, history=history,
        near_misses=(), recent_failures=(), brief_text="Make loss small.", worktree=worktree,
    )  # fmt: skip


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return out.stdout
