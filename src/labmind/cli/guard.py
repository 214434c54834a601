"""`labmind review` (a person's decision on a flagged experiment) and `labmind guard-report`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from labmind.cli.common import JsonOpt, TaskDirArg, console, fail, print_json, read_store, safe
from labmind.lab.review import ReviewError, apply_review, check_reviewable, post_review
from labmind.model import ExperimentKind, not_taken
from labmind.paths import LabPaths
from labmind.store import LabLock, LabLocked, Store, StoreError
from labmind.verdicts import Verdict


def review(
    exp: int = typer.Argument(..., help="A flagged experiment (see `labmind log`)."),
    task_dir: Path = TaskDirArg,
    accept: bool = typer.Option(False, "--accept", help="The gain is real: promote it."),
    reject: bool = typer.Option(False, "--reject", help="The gain is not to be trusted: reject it."),
    note: str = typer.Option("", help="Why; kept with the decision."),
) -> None:
    """Record a person's decision on a flagged experiment."""
    if accept == reject:
        fail("give exactly one of --accept or --reject")
    decision = "accept" if accept else "reject"
    paths = LabPaths(task_dir.resolve())
    with read_store(task_dir) as (store, _):
        try:
            check_reviewable(store, exp)
        except (ReviewError, StoreError) as exc:
            fail(str(exc))
    lock = LabLock(paths.lock)
    try:
        lock.acquire()
    except LabLocked:
        post_review(paths, exp, decision, note)
        console.print(f"the lab is running: it will apply this review within a second (see `labmind show {exp}`).")
        return
    try:
        writer = Store.open(paths.db)
        try:
            console.print(apply_review(writer, paths, exp, decision, note))
        except (ReviewError, StoreError) as exc:
            fail(str(exc))
        finally:
            writer.close()
    finally:
        lock.release()


def guard_figures(store: Store) -> dict[str, Any]:
    # Offers no agent took up are records, not experiments: nothing of theirs was ever checked.
    candidates = [r for r in store.experiments() if r.kind == ExperimentKind.CANDIDATE and not not_taken(r)]
    checked = [r for r in candidates if r.commit_sha]
    flags_by_rule: Counter[str] = Counter()
    rejections_by_rule: Counter[str] = Counter()
    for row in candidates:
        # By the structured rule name: rewording a finding's message never changes these counts.
        rules = {f.rule for f in row.flags}
        for run in store.runs_of(row.id):
            rules |= {f.rule for f in run.flags}
        if row.verdict == Verdict.REJECTED and "by a person" in (row.reason or ""):
            flags_by_rule.update(rules)  # the guard flagged it; a person made the rejection
            rejections_by_rule.update({"person"})
        elif row.verdict == Verdict.REJECTED:
            rejections_by_rule.update(rules or {"other"})
        else:
            flags_by_rule.update(rules)
    reviews = store.reviews()
    return {
        "experiments": len(candidates),
        "checked": len(checked),
        "flagged": sum(1 for r in candidates if r.verdict == Verdict.FLAGGED),
        "rejected": sum(1 for r in candidates if r.verdict == Verdict.REJECTED),
        "flags_by_rule": dict(sorted(flags_by_rule.items())),
        "rejections_by_rule": dict(sorted(rejections_by_rule.items())),
        "awaiting_review": [r.id for r in candidates if r.verdict == Verdict.FLAGGED],
        "person_reviews": {"accepted": sum(1 for r in reviews if r["decision"] == "accept"),
                           "rejected": sum(1 for r in reviews if r["decision"] == "reject")},
        "audit": audit_status(store),
    }


def audit_status(store: Store) -> str:
    """Whether the LLM auditor (DESIGN §6, layer 6) is on, with which model, and what it found."""
    lab = store.lab()
    model = (lab.settings.get("review_model") if lab else None) or None
    if not model:
        return "off: no review model configured (`labmind run --review-model SPEC` turns it on)"
    calls = store.llm_totals()["by_role"].get("audit", {}).get("calls", 0)
    flagged = sum(1 for r in store.experiments() if any(f.rule == "audit" for f in r.flags))
    failed = sum(1 for r in store.experiments() if any(f.rule == "audit_failed" for f in r.flags))
    return f"on ({model}): {calls} review call(s), {flagged} experiment(s) flagged, {failed} unreviewable"


def guard_report(task_dir: Path = TaskDirArg, json_out: bool = JsonOpt) -> None:
    """The guard's figures: experiments checked, flags and rejections by rule, reviews."""
    with read_store(task_dir) as (store, _):
        data = guard_figures(store)
    if json_out:
        print_json(data)
        return
    console.print(f"[bold]guard[/]: {data['checked']} of {data['experiments']} experiments checked; "
                  f"{data['flagged']} flagged, {data['rejected']} rejected")
    table = Table("rule", "flagged (experiments)", "rejected (experiments)", header_style="bold")
    for rule in sorted(set(data["flags_by_rule"]) | set(data["rejections_by_rule"])):
        table.add_row(safe(rule), str(data["flags_by_rule"].get(rule, 0)),
                      str(data["rejections_by_rule"].get(rule, 0)))
    if table.row_count:
        console.print(table)
    waiting = data["awaiting_review"]
    console.print(f"awaiting a person's review: {', '.join(map(str, waiting)) or 'none'}"
                  + (" (`labmind review EXP --accept|--reject`)" if waiting else ""))
    reviews = data["person_reviews"]
    console.print(f"reviews by people: {reviews['accepted']} accepted, {reviews['rejected']} rejected")
    console.print(f"LLM audit: {data['audit']}")
