"""Layers 1 and 2 of the guard on a proposed change, before anything runs: scope, then the static rules.

    check = check_proposal(task, Proposed(task_dir, subdir, changed, old_source, nested_repos), pristine)
    check.verdict   # Verdict.REJECTED, Verdict.NO_CHANGE, or None (it may run)
    check.reason    # why, in one sentence
    check.findings  # what goes on the experiment's record

The lab calls it on each snapshot, and `labmind agent submit` on the worktree before handing the change in, so
an agent is told exactly what the lab would decide. Which rule broke is structured from the start (a
Finding's rule), never read back out of a sentence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from labmind.findings import Finding
from labmind.guard.rules import check_change
from labmind.task.model import Task
from labmind.verdicts import MEANING, Verdict
from labmind.workspace.scope import DigestCaps, scope_breach, to_task_relative, verify_protected

#: Rejections are reported in this order: what escapes the worktree first, then what the change may not touch,
#: then the static rules.
_ESCAPES = ("symlink_out",)


@dataclass(frozen=True)
class Proposed:
    """A change as the guard looks at it: the task directory after it, and what it changed."""

    task_dir: Path  # the task directory in the changed worktree
    subdir: str  # the task directory relative to the repository root ("" at the root)
    changed: list[str]  # repository-relative paths the change adds, modifies or deletes
    #: The parent's text of a task-relative path (None when it did not exist there).
    old_source: Callable[[str], str | None]
    #: Directories (repository-relative) holding a git repository of their own: never part of a change.
    nested_repos: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Pristine:
    """The protected files' digest taken when the lab was created, and how much a re-check may read."""

    digest: dict[str, str]
    caps: DigestCaps = field(default_factory=DigestCaps)


@dataclass(frozen=True)
class ProposalCheck:
    verdict: Verdict | None = None  # REJECTED or NO_CHANGE; None: the change may run
    reason: str = ""
    findings: tuple[Finding, ...] = ()  # scope and static findings, rejections and flags alike
    #: Why the protected files are not as digested (None when they are, or when not checked).
    tampered: str | None = None


def allowed_rules(task: Task) -> set[str]:
    """Static rules this task does not check: `[guard] allow`, and printing the metric when there is no trusted
    evaluator (then printing it is how runs report)."""
    allow = set(task.guard.allow)
    if not task.metric.evaluate:
        allow.add("metric_print")
    return allow


def check_proposal(task: Task, change: Proposed, pristine: Pristine | None = None) -> ProposalCheck:
    """The guard's decision on a change before any run: rejected, unchanged, or free to run, with findings."""
    if change.nested_repos:
        where = change.nested_repos[0]
        reason = (f"adds a git repository at {where}/ inside the worktree; a change is made of files, so it was "
                  "left out and the experiment is rejected")
        nested = Finding("nested_repo", path=where, evidence=reason, family="scope", severity="reject")
        return ProposalCheck(Verdict.REJECTED, reason, (nested, *_static(task, change)))
    if not change.changed:
        return ProposalCheck(Verdict.NO_CHANGE, MEANING[Verdict.NO_CHANGE])
    static = _static(task, change)
    tampered = (verify_protected(change.task_dir, task.task.protected, pristine.digest, pristine.caps)
                if pristine is not None else None)
    hard = [f for f in static if f.severity == "reject"]
    escape = next((f for f in hard if f.rule in _ESCAPES), None)
    if escape is not None:
        return ProposalCheck(Verdict.REJECTED, _rejection(escape), static, tampered)
    breach = scope_breach(change.changed, change.subdir, task.task.editable, task.task.protected)
    if breach is not None:
        found = Finding(breach.rule, path=breach.path, evidence=breach.message, family="scope", severity="reject")
        return ProposalCheck(Verdict.REJECTED, breach.message, (found, *static), tampered)
    if tampered is not None:
        found = Finding("protected", evidence=tampered, family="scope", severity="reject")
        return ProposalCheck(Verdict.REJECTED, tampered, (found, *static), tampered)
    if hard:
        return ProposalCheck(Verdict.REJECTED, _rejection(hard[0]), static)
    return ProposalCheck(None, "", static)


def _static(task: Task, change: Proposed) -> tuple[Finding, ...]:
    """The scope and static rules of rules.toml on what the change introduced (task-relative paths only: a path
    outside the task directory is the scope check's to reject)."""
    changed = [rel for p in change.changed if (rel := to_task_relative(p, change.subdir)) is not None]
    if not changed:
        return ()
    return tuple(check_change(task, change.task_dir, change.old_source, changed, allow=allowed_rules(task)))


def _rejection(finding: Finding) -> str:
    return f"{finding.text()} ({finding.explanation})" if finding.explanation else finding.text()
