"""Runs: what the lab asks its executor for one run, and how a run's outcome is recorded.

The scheduler (`Lab`) decides when a run starts and on which slot; this part writes the run's row before
it starts, builds its request (the change as base commit + patch, the run spec, what to bring back), and
records what came back.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from labmind.execute.base import Change, CompileCache, RunOutcome, RunRequest, Slot
from labmind.execute.limits import RunLimits
from labmind.execute.sandbox import default_hidden
from labmind.findings import Finding
from labmind.lab.judging import PROTECTED_FLAG
from labmind.lab.ledger import Ledger
from labmind.lab.overlap import KIND as OVERLAP
from labmind.lab.overlap import overlap_text
from labmind.model import ExperimentKind, RunPurpose, RunStatus
from labmind.paths import LabPaths
from labmind.store import ExperimentRow, RunRow
from labmind.task import Task
from labmind.workspace import git as gitops
from labmind.workspace.scope import DigestCaps, hide_targets

#: Which queued runs start first: a baseline before anything, verifications before screens.
RUN_PRIORITY: dict[str, int] = {RunPurpose.BASELINE: 0, RunPurpose.CONFIRM: 1, RunPurpose.REFERENCE: 2,
                                RunPurpose.SCREEN: 3}


def hidden_paths(paths: LabPaths, repo_root: Path | None = None, task: Task | None = None) -> list[Path]:
    """Hidden from runs, evaluators and brains: the lab's store and logs, the home directory, credentials,
    the repository's git directory (it holds every file ever committed, `[run] hide` data included, and
    its config may hold credentials) and the `[run] hide` files of the user's own checkout."""
    out = default_hidden(paths.root)
    if repo_root is not None:
        try:
            out.append(gitops.common_dir(repo_root))
        except gitops.GitError:
            pass  # not a repository (any more): nothing of it to hide
    if task is not None:
        out += hide_targets(paths.task_dir, task.run.hide)
    return out


class Runs:
    def __init__(self, ledger: Ledger, task: Task, paths: LabPaths, repo: gitops.RepoInfo, *,
                 protected_digest: dict[str, str], digest_caps: DigestCaps, limits: RunLimits, n_slots: int) -> None:
        self.ledger, self.store, self.task, self.paths, self.repo = ledger, ledger.store, task, paths, repo
        self.limits, self.n_slots = limits, n_slots
        self.protected_digest, self.digest_caps = protected_digest, digest_caps
        self.changes: dict[str, Change] = {}  # commit -> the change runs of it are shipped as

    def env(self, seed: int) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in self.task.run.env:
            name, eq, value = item.partition("=")
            if eq:
                env[name] = value
            elif name in os.environ:
                env[name] = os.environ[name]
        env[self.task.noise.seed_env] = str(seed)
        env["LABMIND_SEED"] = str(seed)
        return env

    def start(self, run: RunRow, slot: Slot, token: str, sandbox: str) -> RunRequest:
        """Mark the run running on `slot` (in `sandbox`) and build its request (its change is filled in by
        `change_of`, off the event loop: it needs git)."""
        exp = self.ledger.rows[run.experiment_id]
        log = self.paths.run_log(exp.id, run.id)
        self.store.update_run(run.id, status=RunStatus.RUNNING, slot=slot.label, token=token, started_at=time.time(),
                              log_path=str(log), sandbox=sandbox)
        metric = self.task.metric
        return RunRequest(
            run_id=run.id, change=Change(base="", patch=b"", commit=self.ledger.commit_of(exp), tree=""),
            subdir=self.repo.subdir, command=self.task.run.command, timeout_s=self.task.run.timeout,
            metric=metric.name, log_path=log,
            secondary=tuple(metric.secondary) + ((metric.self_time,) if metric.self_time else ()),
            env=self.env(run.seed), token=token, limits=self.limits, evaluate=metric.evaluate,
            # Runs that define a metric (baseline, verification) are also scored on held-out data.
            holdout=metric.holdout if run.purpose in (RunPurpose.BASELINE, RunPurpose.CONFIRM) else None,
            artifacts=tuple(self.task.run.artifacts), protected=tuple(self.task.task.protected),
            protected_digest=self.protected_digest, digest_caps=self.digest_caps, hide=tuple(self.task.run.hide),
            hidden=tuple(hidden_paths(self.paths, self.repo.root, self.task)), cache=self.cache(run, exp))

    def cache(self, run: RunRow, exp: ExperimentRow) -> CompileCache | None:
        """The run's compiler caches (`[run] compile_cache`): only the baseline's own runs write the lab's."""
        if not self.task.run.compile_cache:
            return None
        writer = exp.kind == ExperimentKind.BASELINE and run.purpose == RunPurpose.BASELINE
        return CompileCache(tuple(self.task.run.compile_cache), self.paths.compile_cache, writer)

    def change_of(self, commit: str) -> Change:
        """The change runs of `commit` are shipped as: the lab's starting commit (which every executor can
        have, a ray worker from the bundle it caches) plus the patch from it, and the tree it must give."""
        if commit not in self.changes:
            base = self.repo.head  # the lab's starting commit
            self.changes[commit] = Change(base=base, patch=gitops.binary_diff(self.repo.root, base, commit),
                                          commit=commit, tree=gitops.tree_of(self.repo.root, commit))
        return self.changes[commit]

    def requeue_lost(self, run_id: int, exp_id: int, why: str) -> bool:
        """Re-queue a run whose slot was lost mid-run (a dead cluster node), exactly once: a re-queued run
        that loses its slot again is recorded as crashed (False)."""
        run = self.store.run(run_id)
        if run.requeued_from is not None and any(f.rule == "slot_lost"
                                                 for f in self.store.run(run.requeued_from).flags):
            return False
        with self.store.transaction():
            self.store.update_run(run_id, status=RunStatus.INTERRUPTED, ended_at=time.time(),
                                  flags=[Finding("slot_lost", evidence=why, family="run")])
            new = self.store.add_run(experiment_id=exp_id, purpose=run.purpose, seed=run.seed, requeued_from=run_id)
        self.ledger.note("requeued", f"run {run_id} lost its slot ({why}); queued again as run {new}",
                         experiment_id=exp_id, run_id=new)
        return True

    def record(self, run_id: int, exp_id: int, outcome: RunOutcome, slot: Slot, alongside: list[int]) -> None:
        """What came back from a run: its row, the experiment's slot-seconds, and what the lab says of it."""
        problem = outcome.tampered
        flags = [Finding(rule, family="run") for rule in outcome.flags]
        if problem:
            flags.append(Finding(PROTECTED_FLAG, evidence=f"{problem} during the run", family="run", severity="reject"))
        self.store.update_run(run_id, status=RunStatus.DONE, outcome=outcome.status, exit_code=outcome.exit_code,
                              metric=outcome.metric, secondary=outcome.secondary, flags=flags,
                              log_tail=outcome.log_tail, started_at=outcome.started_at,
                              ended_at=outcome.ended_at, self_reported=outcome.self_reported, holdout=outcome.holdout,
                              sandbox=outcome.sandbox)
        slot_s = outcome.seconds * max(1, slot.gpu_count)
        exp = self.ledger.rows[exp_id]
        self.store.update_experiment(exp_id, slot_seconds=exp.slot_seconds + slot_s)
        self.ledger.refresh(exp_id)
        shown = f"{self.task.metric.name}={outcome.metric:.6g}" if outcome.metric is not None else outcome.status
        self.store.event(OVERLAP, overlap_text(run_id, alongside), experiment_id=exp_id, run_id=run_id)
        self.estimate_baseline(run_id, outcome)
        others = f"; ran alongside run(s) {', '.join(map(str, alongside))}" if alongside else ""
        where = f" on {outcome.where}" if outcome.where else ""
        self.ledger.note("run_done", f"run {run_id} of exp {exp_id}: {shown} in {outcome.seconds:.1f}s{where}{others}",
                         experiment_id=exp_id, run_id=run_id)

    def estimate_baseline(self, run_id: int, outcome: RunOutcome) -> None:
        """After the first baseline run, say how long the rest of the baseline will take (a GPU task's baseline
        can take many minutes, and nothing else shows before it ends)."""
        run = self.store.run(run_id)
        if run.purpose != RunPurpose.BASELINE or outcome.status != "ok":
            return
        left = [r for r in self.store.runs_of(run.experiment_id) if r.status in (RunStatus.QUEUED, RunStatus.RUNNING)]
        if not left or len(self.store.runs_of(run.experiment_id)) - len(left) != 1:
            return
        waves = -(-len(left) // max(1, self.n_slots))
        self.ledger.note("estimate", f"the first baseline run took {outcome.seconds:.0f}s; the other {len(left)} take "
                                     f"about {waves * outcome.seconds:.0f}s more ({self.n_slots} slot(s), "
                                     f"timeout {self.task.run.timeout:g}s each)", experiment_id=run.experiment_id)
