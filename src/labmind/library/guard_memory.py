"""Guard memory: a cheat a person confirmed (`labmind review EXP --reject`) becomes a guard example in the
library, and every later experiment in every lab of the user is checked against it.

The static check (`known_cheat`) flags a change that introduces a line a confirmed cheat introduced (compared
with whitespace collapsed; only lines long enough to mean something, so `return x` never matches). The LLM
auditor, when it is on, reads the examples with the task's rules. Both can only flag, never promote.
"""

from __future__ import annotations

import re
import sqlite3

from labmind.findings import rules_of
from labmind.guard.findings import Finding, clip, normalized
from labmind.library.model import Insight, Kind, Provenance, Status
from labmind.library.store import Library, LibraryError
from labmind.store import ExperimentRow

RULE = "known_cheat"
#: A line must be at least this long (whitespace collapsed) and hold two words to count as a cheat's signature.
MIN_LINE = 20
_WORDS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HUNK_FILE = re.compile(r"^\+\+\+ b/(.+)$")


def added_lines(diff: str) -> list[tuple[str, str]]:
    """(file, normalized line) for every added line of a unified diff that is long enough to be a signature."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in diff.splitlines():
        m = _HUNK_FILE.match(raw)
        if m:
            current = m.group(1)
            continue
        if raw.startswith("+") and not raw.startswith("+++"):
            line = normalized(raw[1:])
            if len(line) >= MIN_LINE and len(_WORDS.findall(line)) >= 2 and not line.startswith("#"):
                out.append((current, line))
    return out


def remember_cheat(library: Library, exp: ExperimentRow, *, lab: str, lab_dir: str, family: str,
                   note: str) -> Insight:
    """Record a rejected-after-review experiment as a guard example (validated: a person confirmed it)."""
    rules = rules_of(exp.flags)
    diff = exp.diff or ""
    example = Insight(
        key=f"{lab_dir}#guard{exp.id}", kind=Kind.GUARD,
        title=f"cheat confirmed by a person: {exp.idea.title}"[:300],
        body="\n".join(p for p in [f"Flags: {', '.join(rules) or 'none'}",
                                   f"Person's reason: {note}" if note else "", f"Idea: {exp.idea.hypothesis}",
                                   *(f"- {f.text()}" for f in exp.flags[:10])] if p),
        task=lab, family=family, tags=("guard", *rules), diff_excerpt=diff[:3000],
        provenance=Provenance(lab=lab, lab_dir=lab_dir, experiments=(exp.id,), commit=exp.commit_sha, brain=exp.brain),
        status=Status.VALIDATED, status_reason=f"rejected by a person after review{': ' + note if note else ''}")
    return library.record(example)[0]


def examples(library: Library) -> list[Insight]:
    """Every live guard example, whatever its lab or family (a cheat in one task is a cheat in any)."""
    return [i for i in library.all(kind=Kind.GUARD) if i.status != Status.RETRACTED]


def known_cheats(diff: str, guards: list[Insight], *, lab_dir: str, experiment_id: int | None = None) -> list[Finding]:
    """`known_cheat` findings: lines this diff adds that a confirmed cheat added too (one finding per line)."""
    mine = added_lines(diff)
    if not mine or not guards:
        return []
    signatures: dict[str, Insight] = {}
    for guard in guards:
        if guard.provenance.lab_dir == lab_dir and experiment_id in guard.provenance.experiments:
            continue  # the example itself
        for _, line in added_lines(guard.diff_excerpt):
            signatures.setdefault(line, guard)
    findings, seen = [], set()
    for path, line in mine:
        guard = signatures.get(line)
        if guard is None or line in seen:
            continue
        seen.add(line)
        findings.append(Finding(
            RULE, family="static", severity="flag", path=path, line=None, evidence=clip(line),
            explanation=(f"the same line as a cheat a person rejected (guard example #{guard.id}, from "
                         f"{guard.task} exp {', '.join(map(str, guard.provenance.experiments))})")))
    return findings


def auditor_notes(library: Library, limit: int = 8) -> str:
    """The guard examples as the LLM auditor reads them (appended to the task's brief)."""
    try:
        items = examples(library)[-limit:]
    except (LibraryError, sqlite3.Error):
        return ""
    if not items:
        return ""
    parts = ["Cheats a person confirmed in this user's labs (flag changes that do the same):"]
    for g in items:
        lines = "; ".join(line for _, line in added_lines(g.diff_excerpt)[:3])
        parts.append(f"- {g.title} ({g.task}): {g.body.splitlines()[0] if g.body else ''}"
                     + (f"; it added: {lines}" if lines else ""))
    return "\n".join(parts)
