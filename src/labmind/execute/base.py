"""What the lab asks an executor for and what it gets back. Executors (local, ray) share these types."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from labmind.execute.limits import RunLimits

RunStatus = Literal["ok", "crashed", "timed_out", "no_metric", "bad_metric"]


@dataclass(frozen=True)
class Slot:
    """An execution place: a set of GPU indices (empty for a CPU slot)."""

    index: int
    gpus: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        return f"gpu{','.join(map(str, self.gpus))}" if self.gpus else f"cpu{self.index}"


@dataclass(frozen=True)
class RunSpec:
    """One execution of one experiment with one seed."""

    run_id: int
    command: str
    workdir: Path  # the task directory inside the experiment's worktree; the run's cwd
    writable: Path  # the experiment's worktree root; the only host path the run may write
    log_path: Path
    timeout_s: float
    metric: str
    secondary: tuple[str, ...] = ()
    #: Protected files (absolute paths inside the worktree), read-only inside the sandbox.
    protected: tuple[Path, ...] = ()
    #: Paths hidden from the run (e.g. the lab's own store), replaced by empty mounts in the sandbox.
    hidden: tuple[Path, ...] = ()
    #: Paths hidden from the run command only, not from the trusted evaluators (evaluation data).
    run_hidden: tuple[Path, ...] = ()
    #: Trusted evaluator command, run after a successful run; when set, the metric comes only from it.
    evaluate: str | None = None
    #: Where the evaluator runs: a fresh checkout of the experiment's commit (task dir, worktree root)
    #: into which only the `artifacts` the run produced are copied, so nothing else the run wrote (a
    #: module shadowing one the evaluator imports, say) can reach it. None: the run's own workdir.
    eval_workdir: Path | None = None
    eval_writable: Path | None = None
    artifacts: tuple[str, ...] = ()  # globs relative to workdir
    #: Held-out evaluator, run after the trusted evaluation on the same pristine checkout; its output goes
    #: to a separate log (`<log>.holdout`) that never reaches a brain.
    holdout: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # task-declared variables and the seed
    token: str = ""  # marks every process of this run (LABMIND_RUN_TOKEN) so none can outlive it
    #: Resource limits of the run and of its evaluations (None: no limits; the lab always sets them).
    limits: RunLimits | None = None


@dataclass(frozen=True)
class RunOutcome:
    status: RunStatus
    exit_code: int | None
    metric: float | None
    secondary: dict[str, float]
    flags: tuple[str, ...]  # e.g. "metric_repeated", "self_reported_mismatch"
    log_tail: str
    started_at: float
    ended_at: float
    sandbox: str  # "bwrap" or "none"
    #: What the candidate's own output said the metric was, when a trusted evaluator was used.
    self_reported: float | None = None
    holdout: float | None = None  # the held-out evaluator's value (None: not asked for, or it failed)

    @property
    def seconds(self) -> float:
        return self.ended_at - self.started_at


class Executor(Protocol):
    """Runs RunSpecs on slots. The lab never runs two runs on one slot at a time."""

    @property
    def slots(self) -> list[Slot]: ...

    @property
    def sandbox_name(self) -> str: ...

    async def run(self, spec: RunSpec, slot: Slot) -> RunOutcome: ...

    def kill_leftovers(self, tokens: list[str]) -> int:
        """Kill processes of earlier (interrupted) runs still alive; return how many were killed."""
        ...
