"""The lab's nouns: an experiment's idea, a finished experiment as brains read it, and the kinds and statuses
that experiments, runs and lines move through.

Every part uses these words (the store writes them, the lab moves experiments through them, brains, the agent
tools, the CLI and the dashboard read them), so they live at the bottom, beside `verdicts`. The enums are
StrEnums: a member equals the string the store holds (`ExperimentStatus.DONE == "done"`), so rows read back as
plain strings compare with them directly and JSON writes them as those strings. Like verdicts, the values are a
contract with existing stores and other tools: never rename one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class ExperimentKind(StrEnum):
    BASELINE = "baseline"  # the task's code as it is: the lab's noise and the first incumbent
    CANDIDATE = "candidate"  # a proposed change


class ExperimentStatus(StrEnum):
    PROPOSING = "proposing"  # a brain is making the change
    TESTING = "testing"  # its runs are queued, running or being judged
    DONE = "done"  # it has a verdict
    FAILED = "failed"  # the proposal step failed (the brain's error is recorded); no verdict


class RunPurpose(StrEnum):
    BASELINE = "baseline"  # a run of the baseline: the lab's noise
    SCREEN = "screen"  # a candidate's first run, on the line's screening seed
    REFERENCE = "reference"  # the incumbent re-run on a seed a comparison needs
    CONFIRM = "confirm"  # a fresh-seed run that verifies a claim


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    INTERRUPTED = "interrupted"  # labmind stopped while it ran; re-queued once on resume


#: How a finished run ended (the store's `runs.outcome`) is "ok" or one of `verdicts.RUN_FAILURES`, which are
#: also the verdicts of candidates whose run ended so; executors type it as `execute.base.RunStatus`.


class LineStatus(StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"  # the director (or a person) stopped extending it


class DecisionKind(StrEnum):
    """What a director decides about the lab's lines."""

    EXPLORE = "explore"  # open a new line with a direction
    COMBINE = "combine"  # merge another line's incumbent into this line's
    RETIRE = "retire"  # stop extending a line


class DirectiveKind(StrEnum):
    """Why the lab asked a brain for an experiment, when it did."""

    REPAIR = "repair"  # fix a crashed parent
    COMBINE = "combine"  # merge another line's win


@dataclass(frozen=True)
class Idea:
    """What a proposal tries and why. `params` holds machine-readable settings (e.g. knob values)."""

    title: str
    hypothesis: str = ""
    rationale: str = ""
    expected_effect: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Idea:
        known = {k: data[k] for k in ("hypothesis", "rationale", "expected_effect", "params") if k in data}
        return cls(title=str(data.get("title", "")), **known)


@dataclass(frozen=True)
class PastExperiment:
    """One finished experiment as brains see it: what was tried, what happened and why."""

    id: int
    line_id: int
    parent_id: int | None
    idea: Idea
    verdict: str
    reason: str  # the human sentence of why this verdict
    metric: float | None  # mean over its runs (None when no run gave a metric)
    metric_sd: float | None
    n_runs: int
    log_tail: str = ""  # for failures: the end of the failing run's log
    analysis: str = ""  # the brain's reflection on this result, when it made one
    directive: str = ""  # a DirectiveKind when the lab asked for this experiment
    kind: str = ExperimentKind.CANDIDATE  # a baseline's spread is shown as an sd, a candidate's as a 95% CI

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["idea"] = self.idea.to_dict()
        return d


#: How a failed proposal that no one ever started says so (an agent offer nobody claimed): it does not count
#: toward `--max-experiments`, nor as a brain failure.
NOT_TAKEN = "not taken up"


def counts_toward_limit(status: str, error: str | None, *, unclaimed: bool = False) -> bool:
    """Whether a candidate experiment counts toward `--max-experiments`: from the moment work on it starts (for
    the agent brain, its claim), not from the moment it is offered."""
    return not unclaimed and not (status == ExperimentStatus.FAILED and NOT_TAKEN in (error or ""))


def not_taken(row: Any) -> bool:
    """An offer no one took up (withdrawn unclaimed): a record, not an experiment of its line."""
    return row.kind == ExperimentKind.CANDIDATE and not counts_toward_limit(row.status, row.error)


def experiments_made(rows: Any, unclaimed: set[int] | frozenset[int] = frozenset()) -> int:
    """How many of `rows` (experiment rows) count toward `--max-experiments`; `unclaimed`: ids on offer to
    agents and not claimed yet."""
    return sum(1 for r in rows if r.kind == ExperimentKind.CANDIDATE
               and counts_toward_limit(r.status, r.error, unclaimed=r.id in unclaimed))
