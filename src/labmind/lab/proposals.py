"""Proposals: a brain's change in a worktree, snapshotted by labmind and checked before any run.

`work` runs in a brain thread: a worktree at the parent's commit, the brain's edits, labmind's own snapshot
(commit, diff, changed files), the protected files re-checked, and the guard's scope and static rules, the
library's known cheats and the LLM reviewer on the diff. `record` writes what came of it: a screening run to
queue, or the verdict it gets before any run (no change, rejected) with the broken rule as a flag.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from labmind.brains.base import Brain, BrainContext
from labmind.findings import Finding, merged
from labmind.guard import Pristine, ProposalCheck, Proposed, check_proposal
from labmind.lab.ledger import Ledger
from labmind.lab.views import brain_context
from labmind.model import ExperimentStatus, Idea, RunPurpose
from labmind.paths import LabPaths
from labmind.store import ExperimentRow
from labmind.task import Task
from labmind.verdicts import Verdict
from labmind.workspace import git as gitops
from labmind.workspace.scope import DigestCaps


@dataclass(frozen=True)
class Proposal:
    idea: Idea
    snapshot: gitops.Snapshot
    check: ProposalCheck  # the guard's scope and static decision
    seconds: float
    worktree: Path | None = None  # ready for the screening run
    findings: list[Finding] = field(default_factory=list)  # further flags: guard memory, the LLM auditor


class Proposer:
    def __init__(self, ledger: Ledger, task: Task, paths: LabPaths, repo: gitops.RepoInfo, brain: Brain, *,
                 protected_digest: dict[str, str], digest_caps: DigestCaps, brief_text: str, auditor: Any,
                 librarian: Any) -> None:
        self.ledger, self.store, self.task, self.paths, self.repo = ledger, ledger.store, task, paths, repo
        self.brain, self.brief_text, self.auditor, self.librarian = brain, brief_text, auditor, librarian
        self.protected_digest, self.digest_caps = protected_digest, digest_caps

    def task_dir_in(self, worktree: Path) -> Path:
        return worktree / self.repo.subdir if self.repo.subdir else worktree

    def context(self, exp: ExperimentRow, worktree: Path) -> BrainContext:
        """What the brain may know for this proposal (the brief), the library's insights included."""
        assert exp.line_id is not None and exp.parent_id is not None
        ctx = brain_context(
            self.store, list(self.ledger.rows.values()), self.task, experiment_id=exp.id, line_id=exp.line_id,
            parent_id=exp.parent_id, min_effect=self.ledger.min_effect(),
            task_dir_in_worktree=self.task_dir_in(worktree), brief_text=self.brief_text, directive=exp.directive,
            worktree=worktree, repo_root=self.repo.root)
        return replace(ctx, insights=self.offered_insights(ctx.direction))

    def offered_insights(self, direction: str) -> tuple[Any, ...]:
        """The library's most relevant live insights for a proposal (same family first); none when off."""
        if self.librarian is None:
            return ()
        try:
            return tuple(h.insight for h in self.librarian.relevant(self.brief_text[:4000], direction))
        except sqlite3.Error as exc:
            self.ledger.note("warning", f"could not read the insight library: {exc}")
            return ()

    def work(self, exp: ExperimentRow, ctx: Any, worktree: Path) -> Proposal:
        """Runs in a brain thread: worktree from the parent's commit, brain edits, labmind snapshots."""
        started = time.monotonic()
        base = exp.base_commit
        assert base
        gitops.add_worktree(self.repo.root, worktree, base)
        keep = False
        try:
            idea = self.brain.propose(ctx)
            snap = gitops.snapshot(worktree, base, f"labmind exp {exp.id}: {idea.title}"[:200], root=self.repo.root)
            if snap.commit:
                gitops.pin(self.repo.root, self.task.name, exp.id, snap.commit)
            check = self.check(worktree, base, snap)
            findings: list[Finding] = []
            if snap.commit and self.librarian is not None:
                findings += self.librarian.known_cheats(snap.diff, exp.id)
            if self.auditor is not None and snap.commit and check.tampered is None:
                findings += self.auditor.audit(self.task, idea, snap.diff, experiment_id=exp.id,
                                               line_id=exp.line_id, notes=transcript_tail(self.paths, exp.id))
            # The snapshot left the worktree exactly at the new commit: the screening run can use it
            # as is, which keeps worktree creation off the slot's critical path.
            keep = snap.commit is not None and check.tampered is None
        finally:
            if not keep:
                gitops.remove_worktree(self.repo.root, worktree)
        return Proposal(idea, snap, check, time.monotonic() - started, worktree if keep else None, findings)

    def check(self, worktree: Path, base: str, snap: gitops.Snapshot) -> ProposalCheck:
        """The guard's scope and static decision on this snapshot (runs in a brain thread)."""

        def old_source(rel: str) -> str | None:
            return gitops.file_at(self.repo.root, base, f"{self.repo.subdir}/{rel}" if self.repo.subdir else rel)

        proposed = Proposed(self.task_dir_in(worktree), self.repo.subdir, snap.changed, old_source, snap.nested_repos)
        return check_proposal(self.task, proposed, Pristine(self.protected_digest, self.digest_caps))

    def record(self, exp_id: int, p: Proposal, screen_seed: int) -> tuple[Verdict | None, str]:
        """Write the proposal to its experiment and queue its screening run on `screen_seed`; or return the
        verdict it gets before any run and why (the lab records it through the referee)."""
        snap = p.snapshot
        verdict, reason = p.check.verdict, p.check.reason
        with self.store.transaction():
            # Every finding stays on record, a rejected experiment's too (`labmind guard-report` counts them).
            self.store.update_experiment(exp_id, idea=p.idea, brain_seconds=p.seconds, commit_sha=snap.commit,
                                         diff=snap.diff, changed_files=snap.changed,
                                         flags=merged(p.check.findings, p.findings))
            if verdict is None:
                self.store.update_experiment(exp_id, status=ExperimentStatus.TESTING)
                self.store.add_run(experiment_id=exp_id, purpose=RunPurpose.SCREEN, seed=screen_seed)
        self.ledger.refresh(exp_id)
        return verdict, reason


def transcript_tail(paths: LabPaths, exp_id: int, chars: int = 6000) -> str:
    """The end of what the brain saved about this proposal (command output, the LLM loop), for the auditor."""
    texts = [p.read_text(errors="replace") for p in sorted(paths.transcripts.glob(f"exp-{exp_id}.*"))]
    return "\n".join(texts)[-chars:]
