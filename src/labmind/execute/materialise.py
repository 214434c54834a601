"""A run request made real on one host: worktrees of the change, the run in them, the checks after.

Both executors end here: the local one with the user's repository, a ray worker with its cached copy of it
(see ray_worker.py). The sequence is the same everywhere, so a run behaves alike wherever it happens:

1. the change (base commit + patch) is checked out in a worktree of its own, and in a second, pristine one
   when the task has a trusted evaluator (only the declared artifacts are copied in);
2. the run goes through `PreparedRunner` (sandbox, scrubbed environment, limits, evaluation);
3. the protected files are digested again, the declared artifacts copied to `bring_back` when asked, and
   both worktrees removed whatever happened.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path

from labmind.execute.base import Change, RunOutcome, RunRequest, RunSpec, Slot
from labmind.execute.prepared import PreparedRunner, copy_artifacts
from labmind.workspace import git as gitops
from labmind.workspace.scope import hide_targets, protected_files, verify_protected


class Checkouts:
    """Worktrees of one git repository, made from Changes. `repo` is the user's repository on the lab host
    or a worker's cached copy; `directory` is where the worktrees go."""

    def __init__(self, repo: Path, directory: Path, made: dict[tuple[str, str], str] | None = None) -> None:
        self.repo, self.directory = repo, directory
        self._adopted: dict[str, Path] = {}
        #: (base, tree) -> a commit made in `repo` from the patch; may be shared by several Checkouts of one repo.
        self._made: dict[tuple[str, str], str] = {} if made is None else made
        self._lock = threading.Lock()

    def adopt(self, commit: str, worktree: Path) -> None:
        """A worktree already at `commit` that the next run of it may use as is."""
        with self._lock:
            old = self._adopted.pop(commit, None)
            self._adopted[commit] = worktree
        if old is not None:
            gitops.remove_worktree(self.repo, old)

    def make(self, change: Change, name: str, *, adopt: bool = False) -> Path:
        """A worktree holding exactly the change's tree (an adopted one when `adopt` and there is one)."""
        if adopt:
            with self._lock:
                ready = self._adopted.pop(change.commit, None)
            if ready is not None:
                return ready
        path = self.directory / name
        gitops.add_worktree(self.repo, path, self.commit_for(change))
        return path

    def commit_for(self, change: Change) -> str:
        """The change's commit when this repository has it with the expected tree, else one made here from
        base + patch (checked to give the same tree, and remembered)."""
        if gitops.has_commit(self.repo, change.commit) and gitops.tree_of(self.repo, change.commit) == change.tree:
            return change.commit
        key = (change.base, change.tree)
        with self._lock:
            made = self._made.get(key)
        if made is None:
            made = gitops.commit_patch(self.repo, change.base, change.patch, change.tree)
            with self._lock:
                self._made[key] = made
        return made

    def remove(self, worktree: Path) -> None:
        gitops.remove_worktree(self.repo, worktree)

    def clear(self) -> None:
        """Forget adopted worktrees (their files go with the directory's cleanup)."""
        with self._lock:
            self._adopted.clear()


async def run_request(request: RunRequest, slot: Slot, runner: PreparedRunner, checkouts: Checkouts, *,
                      hidden: tuple[Path, ...] | None = None, log_path: Path | None = None) -> RunOutcome:
    """Materialise `request` with `checkouts`, run it on `slot` and check it. `hidden` and `log_path` replace
    the request's lab-host ones where the run happens elsewhere (a worker)."""
    log = log_path or request.log_path
    worktrees: list[Path] = []
    try:
        root = await asyncio.to_thread(checkouts.make, request.change, f"run-{request.run_id}", adopt=True)
        worktrees.append(root)
        task_dir = root / request.subdir if request.subdir else root
        spec = RunSpec(
            run_id=request.run_id, command=request.command, workdir=task_dir, writable=root, log_path=log,
            timeout_s=request.timeout_s, metric=request.metric, secondary=request.secondary,
            # Protected files are bound read-only inside the sandbox, and digested again afterwards.
            protected=tuple(protected_files(task_dir, list(request.protected))),
            hidden=request.hidden if hidden is None else hidden,
            run_hidden=tuple(hide_targets(task_dir, list(request.hide))),
            evaluate=request.evaluate, holdout=request.holdout, env=dict(request.env), token=request.token,
            limits=request.limits, cache=request.cache)
        if request.evaluate or request.holdout:
            pristine = await asyncio.to_thread(checkouts.make, request.change, f"eval-{request.run_id}")
            worktrees.append(pristine)
            spec = replace(spec, eval_workdir=pristine / request.subdir if request.subdir else pristine,
                           eval_writable=pristine, artifacts=request.artifacts)
        outcome = await runner.run(spec, slot)
        problem = await asyncio.to_thread(verify_protected, task_dir, list(request.protected),
                                          request.protected_digest, request.digest_caps)
        if request.bring_back is not None and request.artifacts:
            await asyncio.to_thread(copy_artifacts, task_dir, request.artifacts, request.bring_back)
        return replace(outcome, tampered=problem)
    finally:
        for worktree in worktrees:
            await asyncio.shield(asyncio.to_thread(checkouts.remove, worktree))
