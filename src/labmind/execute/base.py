"""What the lab asks an executor for and what it gets back. Executors (local, ray) share these types.

The lab hands an executor a `RunRequest`: a change (base commit + patch), the run's settings and what to
bring back. The executor materialises the change where the run happens (a worktree on this host, or on a
cluster worker), runs it there as a `RunSpec` (a prepared directory) and returns a `RunOutcome`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from labmind.execute.limits import RunLimits
from labmind.workspace.digests import DigestCaps

RunStatus = Literal["ok", "crashed", "timed_out", "no_metric", "bad_metric"]


@dataclass(frozen=True)
class Slot:
    """An execution place: a set of GPU indices (empty for a CPU slot)."""

    index: int
    gpus: tuple[int, ...] = ()
    #: A cluster slot: how many GPUs each run gets there; which ones the cluster picks when the run starts.
    cluster_gpus: int | None = None

    @property
    def label(self) -> str:
        if self.cluster_gpus is not None:
            return f"ray{self.index}"
        return f"gpu{','.join(map(str, self.gpus))}" if self.gpus else f"cpu{self.index}"

    @property
    def gpu_count(self) -> int:
        return self.cluster_gpus if self.cluster_gpus is not None else len(self.gpus)


@dataclass(frozen=True)
class Change:
    """The code of a run: commit `base` plus `patch` (a binary git diff), which must give the tree `tree`.
    `commit` is the experiment's commit on the lab host; an executor whose repository has it may check it
    out directly, any other applies the patch to `base` and checks the tree."""

    base: str
    patch: bytes
    commit: str
    tree: str


@dataclass(frozen=True)
class CompileCache:
    """`[run] compile_cache`: the variables naming compiler caches and the lab's cache folder (on the host
    the run happens on). A `writer` run (the baseline's: the task's own code) uses the folder itself; any
    other run a private copy, gone with the run, so nothing it writes reaches a later run."""

    variables: tuple[str, ...]
    folder: Path
    writer: bool


@dataclass(frozen=True)
class RunRequest:
    """One run as the lab asks for it: where the code comes from and what to do with it, with no path of a
    checkout in it (the executor makes those, on whatever host the run happens)."""

    run_id: int
    change: Change
    subdir: str  # the task directory inside the repository ("" for its root)
    command: str
    timeout_s: float
    metric: str
    log_path: Path  # on the lab host; remote executors bring the log back to it
    secondary: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # task-declared variables and the seed
    token: str = ""
    limits: RunLimits | None = None
    evaluate: str | None = None  # trusted evaluator, run in a pristine checkout of the change
    holdout: str | None = None
    artifacts: tuple[str, ...] = ()  # globs (task-relative) the evaluators read, copied to their checkout
    #: Task-relative globs: read-only in the sandbox and digested after the run against `protected_digest`.
    protected: tuple[str, ...] = ()
    protected_digest: dict[str, str] = field(default_factory=dict)
    digest_caps: DigestCaps = field(default_factory=DigestCaps)
    hide: tuple[str, ...] = ()  # `[run] hide` globs: hidden from the run command, not from evaluators
    #: Lab-host paths hidden from runs (the lab's store, credentials); a remote worker hides its own.
    hidden: tuple[Path, ...] = ()
    #: Where the run's declared artifacts are copied afterwards, on the lab host (None: they are dropped
    #: with the run's checkout once the evaluators have read them).
    bring_back: Path | None = None
    cache: CompileCache | None = None


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
    cache: CompileCache | None = None  # the run command's compiler caches (not the evaluators')
    #: Host paths besides `writable` the run command may write (its compiler caches' folder).
    extra_writable: tuple[Path, ...] = ()


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
    #: What was wrong with the protected files after the run (None: intact, or not checked).
    tampered: str | None = None
    #: Where it ran, for people (a cluster node and its GPUs); empty for the lab host.
    where: str = ""

    @property
    def seconds(self) -> float:
        return self.ended_at - self.started_at


class SlotLost(Exception):
    """A run's slot went away mid-run (its cluster worker or node died): not the run's doing, so the lab
    re-queues it, once."""


class Executor(Protocol):
    """Runs RunRequests on slots. The lab never runs two runs on one slot at a time."""

    @property
    def slots(self) -> list[Slot]: ...

    @property
    def sandbox_name(self) -> str: ...

    @property
    def limits_mechanism(self) -> str:
        """How memory and process limits are enforced where runs happen, for people."""
        ...

    async def run(self, request: RunRequest, slot: Slot) -> RunOutcome: ...

    def adopt(self, commit: str, worktree: Path) -> bool:
        """Take over a lab-host checkout of `commit` (a proposal's worktree) for its next run, saving a
        checkout; False when it is of no use here (the caller removes it)."""
        ...

    def kill_leftovers(self, tokens: list[str]) -> int:
        """Kill processes of earlier (interrupted) runs still alive; return how many were killed."""
        ...

    def unavailable(self) -> str | None:
        """Why no run can start now (a cluster without GPU workers, say), or None; the lab waits meanwhile."""
        ...

    def close(self) -> None:
        """Let go of what the executor holds (cluster connections); runs in flight are already cancelled."""
        ...
