"""The Brain protocol: turns lab context into a change in a worktree plus the idea behind it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from labmind.library.model import Insight
from labmind.model import Idea, PastExperiment
from labmind.task import Task


@dataclass(frozen=True)
class BrainContext:
    """Everything a brain may know when it proposes one experiment (the 'brief')."""

    task: Task
    task_dir: Path  # the task directory inside the experiment's worktree: edit files here
    experiment_id: int
    line_id: int
    parent: PastExperiment  # the experiment this one starts from (its code is in the worktree)
    incumbent: PastExperiment  # the line's current incumbent
    best: PastExperiment  # the best over the lab
    baseline: PastExperiment
    min_effect: float
    history: tuple[PastExperiment, ...]  # this line's finished experiments, oldest first
    near_misses: tuple[PastExperiment, ...]
    recent_failures: tuple[PastExperiment, ...]
    brief_text: str = ""  # the task's research brief (markdown), if any
    direction: str = ""  # what this line explores, when the director gave it a direction
    #: Why the lab asked for this experiment, when it did: {"kind": "repair", "of": id, "attempt": n,
    #: "log_tail": ...} fixes a crashed parent; {"kind": "combine", "with": id, "diff": ...} merges another
    #: line's win into this line's incumbent. Empty for ordinary proposals.
    directive: dict[str, Any] = field(default_factory=dict)
    #: The experiment's worktree (its top directory) and the repository it belongs to. Git commands on the
    #: worktree go through `labmind.workspace.git.worktree_git(repo_root, worktree, ...)`, never through the
    #: worktree's own `.git` (brains and runs can rewrite it). None outside a lab (tests).
    worktree: Path | None = None
    repo_root: Path | None = None
    #: The most relevant live insights and dead ends from the user's library (other labs), same task family
    #: first. An idea that applies one says so: `Idea.params["applies"] = [id, ...]`.
    insights: tuple[Insight, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON brief handed to external brains."""
        return {
            "task": {
                "name": self.task.name,
                "editable": self.task.task.editable,
                "protected": self.task.task.protected,
                "command": self.task.run.command,
                "brief": self.brief_text,
            },
            "metric": {"name": self.task.metric.name, "goal": self.task.metric.goal},
            "direction": self.direction,
            "directive": self.directive,
            "min_effect": self.min_effect,
            "experiment_id": self.experiment_id,
            "line_id": self.line_id,
            "worktree": str(self.task_dir),
            "parent": self.parent.to_dict(),
            "incumbent": self.incumbent.to_dict(),
            "best": self.best.to_dict(),
            "baseline": self.baseline.to_dict(),
            "history": [p.to_dict() for p in self.history],
            "near_misses": [p.to_dict() for p in self.near_misses],
            "recent_failures": [p.to_dict() for p in self.recent_failures],
            "insights": [brief_insight(i) for i in self.insights],
        }


def brief_insight(insight: Insight) -> dict[str, Any]:
    """An insight as external brains read it (the JSON brief): what it says, its evidence and its record."""
    return {"id": insight.id, "kind": insight.kind.value, "status": insight.status.value, "title": insight.title,
            "body": insight.body[:2000], "task": insight.task, "family": insight.family,
            "effect": insight.effect.text() if insight.effect else None, "applications": insight.applications,
            "hits": insight.hits, "diff_excerpt": insight.diff_excerpt[:1500],
            "knobs": [{"name": k.name, "before": k.before, "after": k.after} for k in insight.knobs],
            "how_to_apply": 'say so in your idea: "applies": [' + str(insight.id) + "]"}


@dataclass(frozen=True)
class LineSummary:
    """One research line as the director sees it."""

    id: int
    name: str
    direction: str
    incumbent: PastExperiment
    n_done: int
    since_improvement: int  # finished experiments since its incumbent last improved
    recent: tuple[PastExperiment, ...]  # its last few finished experiments, oldest first


@dataclass(frozen=True)
class DirectorView:
    """The whole lab, for a brain that directs lines (explore, combine, retire)."""

    task: Task
    brief_text: str
    baseline: PastExperiment
    best: PastExperiment
    min_effect: float
    lines: tuple[LineSummary, ...]
    max_lines: int


@dataclass(frozen=True)
class Decision:
    """A director's decision. explore: open a new line with `direction`; combine: merge the incumbent of
    `other_line_id` into the incumbent of `line_id`; retire: stop extending `line_id`."""

    kind: str  # a DecisionKind: explore | combine | retire
    reason: str
    line_id: int | None = None
    other_line_id: int | None = None
    direction: str = ""


class BrainError(Exception):
    """A proposal step failed (recorded against the experiment; the lab keeps going)."""


class Brain(Protocol):
    """Proposes experiments. `propose` runs in a worker thread and edits files under ctx.task_dir;
    labmind computes the diff itself afterwards. `learn` is called, in the lab's thread, for every
    finished experiment, including on resume for everything already in the store."""

    name: str

    def propose(self, ctx: BrainContext) -> Idea: ...

    def learn(self, result: PastExperiment) -> None: ...

    # Optional abilities (repair, reflect, direct, close, a budget, offers) are the small protocols of
    # `labmind.brains.abilities`, read once when the lab opens.


class IdleBrain:
    """The brain of a session that proposes nothing (`labmind check`): it listens and never needs what a
    real brain would (knobs to search, a model, an agent)."""

    name = "idle"

    def propose(self, ctx: BrainContext) -> Idea:
        raise BrainError("this session proposes no experiments (labmind check); start one with `labmind run`")

    def learn(self, result: PastExperiment) -> None:
        """Nothing to keep."""
