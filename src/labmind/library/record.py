"""The lab's librarian: writes insights from confirmed verdicts and dead ends, retrieves them for brains, and
keeps each insight's record of applications.

Born only from evidence: an `improved` verdict (verified on fresh seeds, no integrity flag) gives an insight;
a family of ideas whose last DEAD_END_TRIES finished tries all failed, none ever kept, gives a dead end.
`kept` (provisional), `flagged`, `rejected`, `inconclusive` and unconfirmed experiments never give insights.
Everything here is code, no LLM: the knobs brain's insights say which settings moved where and by how much.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from dataclasses import dataclass
from typing import Any

from labmind.guard.findings import Finding
from labmind.library.guard_memory import examples, known_cheats
from labmind.library.model import Effect, Insight, Kind, KnobChange, Provenance
from labmind.library.store import Hit, Library, LibraryError
from labmind.model import ExperimentKind
from labmind.store import ExperimentRow
from labmind.verdicts import RUN_FAILURES, Verdict

#: A family of ideas is a dead end after this many finished failures with no success.
DEAD_END_TRIES = 4
#: Failures that count towards a dead end: the idea ran and did not help, or could not run.
FAILED = RUN_FAILURES | {Verdict.NOT_IMPROVED, Verdict.INCONCLUSIVE}
#: Outcomes that say nothing about an insight it applied (the change was not measured as itself).
NOT_EVIDENCE = {Verdict.FLAGGED, Verdict.REJECTED, Verdict.NO_CHANGE, Verdict.KEPT}
DIFF_EXCERPT = 3000
#: How many insights a brain is offered per proposal.
OFFERED = 6

_WORD = re.compile(r"[a-z0-9][a-z0-9_\-]*")


def title_family(exp: ExperimentRow, words: int = 2) -> str:
    """A non-knobs idea's family: `params["family"]` when the brain gave one, else the first two words of the
    title, lowercased, without punctuation ("Add RMSNorm before attention" -> "add rmsnorm")."""
    given = exp.idea.params.get("family")
    if isinstance(given, str) and given.strip():
        return given.strip().lower()
    found = _WORD.findall(exp.idea.title.lower())
    return " ".join(found[:words]) or "(untitled)"


@dataclass(frozen=True)
class LabIdentity:
    """Who writes: the lab's task name and directory (the provenance every insight of this lab carries)."""

    task: str
    lab_dir: str
    family: str
    tags: tuple[str, ...]
    metric: str
    goal: str


def _is_knobs(exp: ExperimentRow) -> bool:
    return exp.idea.params.get("_brain") == "knobs"


def knob_values(exp: ExperimentRow) -> dict[str, Any]:
    return {k: v for k, v in exp.idea.params.items() if not k.startswith("_") and k not in ("applies", "family")}


def applied_ids(exp: ExperimentRow) -> list[int]:
    """The insights an experiment's idea says it applies (`params["applies"]`, ints or "#12" strings)."""
    raw = exp.idea.params.get("applies") or []
    if not isinstance(raw, list | tuple):
        raw = [raw]
    out: list[int] = []
    for item in raw:
        text = str(item).lstrip("#").strip()
        if text.isdigit() and int(text) not in out:
            out.append(int(text))
    return out


def parse_applies(raw: object, offered: set[int]) -> list[int]:
    """The insight ids an idea says it applies, kept only when the lab offered them (no invented ids)."""
    items = raw if isinstance(raw, list) else [raw] if raw is not None else []
    out: list[int] = []
    for item in items:
        text = str(item).strip().lstrip("#")
        if text.isdigit() and int(text) in offered and int(text) not in out:
            out.append(int(text))
    return out


class Librarian:
    def __init__(self, library: Library, who: LabIdentity) -> None:
        self.library, self.who = library, who

    # -- writing -------------------------------------------------------------------------------------------

    def on_verdict(self, exp: ExperimentRow, rows: dict[int, ExperimentRow]) -> list[Insight]:
        """Called for every candidate verdict; returns the insights newly recorded (for the lab's events)."""
        out: list[Insight] = []
        verdict = exp.verdict
        if verdict is None or exp.kind != ExperimentKind.CANDIDATE:
            return out
        if verdict not in NOT_EVIDENCE:
            for insight_id in applied_ids(exp):
                self.library.apply(insight_id, lab_dir=self.who.lab_dir, experiment_id=exp.id, verdict=verdict,
                                   hit=verdict == Verdict.IMPROVED)
        if verdict == Verdict.IMPROVED and not exp.flags:
            # Steps verified as part of this stack stay `kept`: their applications are settled by this claim.
            anchor = int(exp.judgement.get("verify", {}).get("anchor", exp.parent_id or 0))
            for step in self.stack(exp, anchor, rows)[:-1]:
                for insight_id in applied_ids(step):
                    self.library.apply(insight_id, lab_dir=self.who.lab_dir, experiment_id=step.id,
                                       verdict=f"kept, verified in exp {exp.id}'s stack", hit=True)
            insight, new = self.library.record(self.improvement(exp, rows))
            if new:
                out.append(insight)
        elif verdict in FAILED and not _is_knobs(exp):
            dead = self.dead_end(title_family(exp), rows)
            if dead is not None:
                insight, new = self.library.record(dead)
                if new:
                    out.append(insight)
        return out

    def stack(self, head: ExperimentRow, anchor_id: int | None, rows: dict[int, ExperimentRow]) -> list[ExperimentRow]:
        """The experiments from (not including) the anchor up to the head, oldest first."""
        out, row = [], head
        while row is not None and row.id != anchor_id and row.kind == ExperimentKind.CANDIDATE:
            out.append(row)
            row = rows.get(row.parent_id or -1)  # type: ignore[assignment]
        return out[::-1]

    def improvement(self, exp: ExperimentRow, rows: dict[int, ExperimentRow]) -> Insight:
        record = exp.judgement.get("verify", {})
        anchor_id = int(record.get("anchor", exp.parent_id or 0))
        anchor = rows.get(anchor_id)
        steps = self.stack(exp, anchor_id, rows) or [exp]
        effect = None
        if record.get("effect") is not None:
            effect = Effect(value=float(record["effect"]), low=record.get("low"), high=record.get("high"),
                            scale=str(record.get("scale", "linear")), metric=self.who.metric, goal=self.who.goal,
                            n_cand=int(record.get("n_cand", exp.n_runs)), n_ref=int(record.get("n_ref", 0)),
                            p_value=record.get("p_value"), before=anchor.metric if anchor else None, after=exp.metric)
        knobs: tuple[KnobChange, ...] = ()
        if _is_knobs(exp):
            before = knob_values(anchor) if anchor is not None and _is_knobs(anchor) else \
                dict(steps[0].idea.params.get("_parent") or {})
            after = knob_values(exp)
            knobs = tuple(KnobChange(n, before.get(n), v) for n, v in sorted(after.items())
                          if n in before and before[n] != v)
        if knobs:
            moves = ", ".join(_move_text(k) for k in knobs)
            moved = (f": {self.who.metric} {anchor.metric:.4g} → {exp.metric:.4g}"
                     if anchor is not None and anchor.metric is not None and exp.metric is not None else "")
            title = moves + moved
            body = (f"The knobs brain moved {moves} from the line's verified point (exp {anchor_id}). "
                    f"Verdict: {exp.reason or ''}")
            tags = ("knobs", *(k.name.lower() for k in knobs))
        else:
            title = exp.idea.title + (f" ({len(steps)} steps)" if len(steps) > 1 else "")
            parts = [exp.idea.hypothesis, exp.idea.rationale]
            parts += [f"Step: {s.idea.title}" for s in steps[:-1]]
            parts += [f"Analysis: {exp.analysis}" if exp.analysis else "", f"Verdict: {exp.reason or ''}"]
            body = "\n".join(p for p in parts if p)
            tags = (title_family(exp),)
        diff = "\n".join(s.diff or "" for s in steps)
        return Insight(
            key=f"{self.who.lab_dir}#exp{exp.id}", kind=Kind.INSIGHT, title=title[:300], body=body, task=self.who.task,
            family=self.who.family, tags=tuple(dict.fromkeys((*self.who.tags, *tags))),
            provenance=Provenance(lab=self.who.task, lab_dir=self.who.lab_dir,
                                  experiments=tuple(s.id for s in steps), commit=exp.commit_sha, brain=exp.brain),
            effect=effect, diff_excerpt=diff[:DIFF_EXCERPT], knobs=knobs)

    def dead_end(self, family: str, rows: dict[int, ExperimentRow]) -> Insight | None:
        """A dead end when the family's finished tries hold DEAD_END_TRIES failures and no success."""
        tries = [r for r in rows.values() if r.kind == ExperimentKind.CANDIDATE and r.verdict and not _is_knobs(r)
                 and title_family(r) == family]
        failed = [r for r in tries if r.verdict in FAILED]
        if any(r.verdict in (Verdict.IMPROVED, Verdict.KEPT) for r in tries) or len(failed) < DEAD_END_TRIES:
            return None
        counts = Counter(str(r.verdict) for r in failed)
        shown = ", ".join(f"{n} {v}" for v, n in counts.most_common())
        body = "\n".join([f"Every one of {len(failed)} tries of '{family}' failed ({shown}); none was kept:",
                          *(f"- exp {r.id} {r.verdict}: {r.idea.title} — {(r.reason or '')[:200]}" for r in failed)])
        return Insight(
            key=f"{self.who.lab_dir}#dead:{family}", kind=Kind.DEAD_END,
            title=f"dead end: {family} ({len(failed)} tries, none better)", body=body, task=self.who.task,
            family=self.who.family, tags=tuple(dict.fromkeys((*self.who.tags, family, "dead-end"))),
            provenance=Provenance(lab=self.who.task, lab_dir=self.who.lab_dir,
                                  experiments=tuple(r.id for r in failed), brain=failed[-1].brain),
            diff_excerpt="\n".join(r.diff or "" for r in failed[:3])[:DIFF_EXCERPT], evidence=dict(counts))

    # -- reading -------------------------------------------------------------------------------------------

    def known_cheats(self, diff: str, experiment_id: int) -> list[Finding]:
        """Guard memory: lines of this change that a cheat a person confirmed also added (flags, never verdicts).
        A library that cannot be read checks nothing."""
        try:
            guards = examples(self.library)
        except (LibraryError, sqlite3.Error):
            return []
        return known_cheats(diff, guards, lab_dir=self.who.lab_dir, experiment_id=experiment_id)

    def relevant(self, *texts: str, limit: int = OFFERED) -> list[Hit]:
        """Insights for a proposal of this lab: same family first, then by text (BM25), never retracted.
        This lab's own insights are left out: its history already tells the brain about them."""
        query = " ".join([self.who.task, self.who.family.replace("/", " "), self.who.metric, *self.who.tags, *texts])
        hits = self.library.search(query, family=self.who.family, limit=limit + 20)
        return [h for h in hits if h.insight.provenance.lab_dir != self.who.lab_dir][:limit]


def _move_text(k: KnobChange) -> str:
    factor = f" (×{k.factor:.3g})" if k.factor is not None and k.direction != "same" else ""
    return f"{k.name} {_short(k.before)} → {_short(k.after)}{factor}"


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def insight_lines(hits: list[Hit] | tuple[Insight, ...], *, width: int = 400) -> list[str]:
    """One line per insight as brains read them (prompts, briefs): id, kind, status, effect, hit rate."""
    out = []
    for item in hits:
        ins = item.insight if isinstance(item, Hit) else item
        record = f"applied {ins.applications}×, improved {ins.hits}×" if ins.applications else "not applied yet"
        what = "DEAD END" if ins.kind == Kind.DEAD_END else "insight"
        out.append(f"#{ins.id} [{what}, {ins.status.value}, from {ins.task} ({ins.family}); {record}] "
                   f"{ins.title}"[:width])
    return out
