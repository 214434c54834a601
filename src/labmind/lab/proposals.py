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
from labmind.guard import Finding, check_change
from labmind.lab.ledger import Ledger
from labmind.lab.views import brain_context
from labmind.model import Idea
from labmind.paths import LabPaths
from labmind.store import ExperimentRow
from labmind.task import Task
from labmind.verdicts import MEANING, Verdict
from labmind.workspace import git as gitops
from labmind.workspace.scope import DigestCaps, scope_violation, to_task_relative, verify_protected


def scope_rule(violation: str) -> str:
    """The rule name behind a scope sentence from workspace.scope (for flags and guard-report)."""
    if "protected file" in violation:
        return "protected"
    if "belongs to labmind" in violation:
        return "labmind_files"
    if "outside the task directory" in violation:
        return "outside_task"
    return "outside_editable"


@dataclass(frozen=True)
class Proposal:
    idea: Idea
    snapshot: gitops.Snapshot
    problem: str | None
    seconds: float
    worktree: Path | None = None  # ready for the screening run
    findings: list[Finding] = field(default_factory=list)  # the guard's scope and static findings


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
            problem = verify_protected(self.task_dir_in(worktree), self.task.task.protected, self.protected_digest,
                                       self.digest_caps)
            findings = self.static_findings(worktree, base, snap) if snap.commit else []
            if snap.commit and self.librarian is not None:
                findings += self.librarian.known_cheats(snap.diff, exp.id)
            if self.auditor is not None and snap.commit and problem is None:
                findings += self.auditor.audit(self.task, idea, snap.diff, experiment_id=exp.id,
                                               line_id=exp.line_id, notes=transcript_tail(self.paths, exp.id))
            # The snapshot left the worktree exactly at the new commit: the screening run can use it
            # as is, which keeps worktree creation off the slot's critical path.
            keep = snap.commit is not None and problem is None
        finally:
            if not keep:
                gitops.remove_worktree(self.repo.root, worktree)
        return Proposal(idea, snap, problem, time.monotonic() - started, worktree if keep else None, findings)

    def static_findings(self, worktree: Path, base: str, snap: gitops.Snapshot) -> list[Finding]:
        """The guard's scope and static rules on what this change introduced (runs in a brain thread)."""
        changed = [rel for p in snap.changed if (rel := to_task_relative(p, self.repo.subdir)) is not None]

        def old_source(rel: str) -> str | None:
            return gitops.file_at(self.repo.root, base, f"{self.repo.subdir}/{rel}" if self.repo.subdir else rel)

        allow = set(self.task.guard.allow)
        if not self.task.metric.evaluate:
            allow.add("metric_print")  # without a trusted evaluator, printing the metric is how runs report
        return check_change(self.task, self.task_dir_in(worktree), old_source, changed, allow=allow)

    def record(self, exp_id: int, p: Proposal, screen_seed: int) -> tuple[Verdict | None, str]:
        """Write the proposal to its experiment and queue its screening run on `screen_seed`; or return the
        verdict it gets before any run and why (the lab records it through the referee)."""
        snap = p.snapshot
        with self.store.transaction():
            self.store.update_experiment(exp_id, idea=p.idea, brain_seconds=p.seconds, commit_sha=snap.commit,
                                         diff=snap.diff, changed_files=snap.changed,
                                         flags=[f.flag_text() for f in p.findings if f.severity == "flag"])
            verdict, reason, rule_flags = self.scope_verdict(p)
            if verdict is None:
                self.store.update_experiment(exp_id, status="testing")
                self.store.add_run(experiment_id=exp_id, purpose="screen", seed=screen_seed)
            elif rule_flags or p.findings:
                # Keep the evidence with a rejected or unchanged experiment too.
                self.store.update_experiment(
                    exp_id, flags=sorted(set(rule_flags) | {f.flag_text() for f in p.findings}))
        self.ledger.refresh(exp_id)
        return verdict, reason

    def scope_verdict(self, p: Proposal) -> tuple[Verdict | None, str, list[str]]:
        """The verdict a proposal gets before any run (no_change or rejected), its reason, and the flags
        that name the broken rule for the record (`labmind guard-report` counts them)."""
        snap = p.snapshot
        if snap.nested_repos:
            reason = (f"adds a git repository at {snap.nested_repos[0]}/ inside the worktree; a change is made of "
                      "files, so it was left out and the experiment is rejected")
            return Verdict.REJECTED, reason, [f"nested_repo: {reason}"]
        if snap.commit is None:
            return Verdict.NO_CHANGE, MEANING[Verdict.NO_CHANGE], []
        if snap.symlinks_out:
            reason = f"adds symlink {snap.symlinks_out[0]} pointing outside the worktree"
            return Verdict.REJECTED, reason, [f"symlink_out: {reason}"]
        violation = scope_violation(snap.changed, self.repo.subdir, self.task.task.editable,
                                    self.task.task.protected)
        if violation:
            return Verdict.REJECTED, violation, [f"{scope_rule(violation)}: {violation}"]
        if p.problem:
            return Verdict.REJECTED, p.problem, [f"protected: {p.problem}"]
        hard = next((f for f in p.findings if f.severity == "reject"), None)
        if hard is not None:
            return Verdict.REJECTED, f"{hard.flag_text()} ({hard.explanation})", [f.flag_text() for f in p.findings]
        return None, "", []



def transcript_tail(paths: LabPaths, exp_id: int, chars: int = 6000) -> str:
    """The end of what the brain saved about this proposal (command output, the LLM loop), for the auditor."""
    texts = [p.read_text(errors="replace") for p in sorted(paths.transcripts.glob(f"exp-{exp_id}.*"))]
    return "\n".join(texts)[-chars:]
