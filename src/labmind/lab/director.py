"""The director: a brain that directs lines explores new ones, combines two lines' wins and retires lines.

The lab asks it every few verdicts (`due` says when, and what it sees); its decisions are checked here and
carried out, or refused with the reason, both recorded. A combination is an experiment the lab requests:
written to the store first (status `proposing`, with its directive), so a killed lab makes it on resume.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labmind.brains.base import Decision, DirectorView, LineSummary
from labmind.lab.ledger import Ledger
from labmind.lab.views import PROGRESS, best_experiment
from labmind.model import DecisionKind, DirectiveKind, ExperimentKind, LineStatus
from labmind.task import Task
from labmind.workspace import git as gitops

#: Recent experiments per line the director sees.
DIRECTOR_RECENT = 5
COMBINE_DIFF_CHARS = 16_000


class Director:
    def __init__(self, ledger: Ledger, task: Task, repo: gitops.RepoInfo, *, brain_name: str, brief_text: str,
                 every: int | None, max_lines: int, may_propose: Callable[[], bool]) -> None:
        self.ledger, self.store, self.rows, self.task, self.repo = ledger, ledger.store, ledger.rows, task, repo
        self.brain_name, self.brief_text = brain_name, brief_text
        self.every = every  # verdicts between two reviews; None: twice the number of active lines
        self.max_lines = max_lines
        self.may_propose = may_propose
        self.since = 0  # candidate verdicts since the director last reviewed the lines

    def active_lines(self) -> list[Any]:
        return [line for line in self.store.lines()
                if line.status == LineStatus.ACTIVE and line.incumbent_id is not None]

    def due(self) -> DirectorView | None:
        """What the director sees, when it is time to ask it (and the count starts again); else None."""
        active = len(self.active_lines())
        every = self.every or 2 * max(active, 1)
        # A lab of several lines keeps its director after retirements leave one: it may still explore.
        several = active >= 2 or (len(self.store.lines()) >= 2 and active < self.max_lines)
        if self.since < every or not several:
            return None
        self.since = 0
        return self.view()

    def view(self) -> DirectorView:
        rows = list(self.rows.values())
        baseline = next(r for r in rows if r.kind == ExperimentKind.BASELINE)
        best = best_experiment(rows, self.task) or baseline
        summaries = []
        for line in self.active_lines():
            done = [r for r in rows if r.line_id == line.id and r.kind == ExperimentKind.CANDIDATE and r.verdict]
            since = 0
            for r in done:
                since = 0 if r.verdict in PROGRESS else since + 1
            summaries.append(LineSummary(
                id=line.id, name=line.name, direction=line.direction, incumbent=self.rows[line.incumbent_id].past(),
                n_done=len(done), since_improvement=since, recent=tuple(r.past() for r in done[-DIRECTOR_RECENT:]),
            ))  # fmt: skip
        return DirectorView(task=self.task, brief_text=self.brief_text, baseline=baseline.past(), best=best.past(),
                            min_effect=self.ledger.min_effect(), lines=tuple(summaries), max_lines=self.max_lines)

    def apply(self, d: Decision) -> None:
        """Carry out one decision, or say why not; carried-out ones are recorded with their reasons."""
        active = {line.id: line for line in self.active_lines()}
        refused = self.refusal(d, active)
        if refused:
            self.ledger.note("director", f"{d.kind} not applied: {refused} (reason given: {d.reason})")
            return
        if d.kind == DecisionKind.RETIRE:
            assert d.line_id is not None
            with self.store.transaction():
                self.store.update_line(d.line_id, status=LineStatus.RETIRED, note=d.reason)
                self.store.add_decision(DecisionKind.RETIRE, d.reason, line_id=d.line_id)
            self.ledger.note("director", f"retired line {d.line_id}: {d.reason}")
        elif d.kind == DecisionKind.EXPLORE:
            best = self.ledger.best()
            assert best is not None
            with self.store.transaction():
                line_id = self.store.add_line(f"line-{len(self.store.lines()) + 1}", best.id, direction=d.direction)
                self.store.add_decision(DecisionKind.EXPLORE, d.reason, line_id=line_id,
                                        detail={"direction": d.direction})
            self.ledger.note("director", f"opened line {line_id} from exp {best.id}: {d.direction} ({d.reason})")
        else:
            self.combine(d, active)

    def refusal(self, d: Decision, active: dict[int, Any]) -> str:
        if d.kind == DecisionKind.RETIRE:
            if d.line_id not in active:
                return f"line {d.line_id} is not an active line"
            if len(active) <= 1:
                return "it is the last active line"
            best = self.ledger.best()
            if best is not None and best.kind == ExperimentKind.CANDIDATE and active[d.line_id].incumbent_id == best.id:
                return f"line {d.line_id} holds the lab's best (exp {best.id})"
            return ""
        if d.kind == DecisionKind.EXPLORE:
            if not d.direction:
                return "no direction was given"
            if len(active) >= self.max_lines:
                return f"the lab already has {len(active)} active lines (at most {self.max_lines})"
            return ""
        if d.line_id not in active or d.other_line_id not in active or d.line_id == d.other_line_id:
            return "combine needs two different active lines"
        other = self.rows[active[d.other_line_id].incumbent_id]
        mine = self.rows[active[d.line_id].incumbent_id]
        if other.kind != ExperimentKind.CANDIDATE or other.verdict not in PROGRESS or not other.commit_sha:
            return f"line {d.other_line_id} has no win to combine"
        if other.id in self.ledger.ancestry(mine) or mine.id in self.ledger.ancestry(other):
            return (f"exp {other.id} and line {d.line_id}'s incumbent (exp {mine.id}) are on one path: one already "
                    "contains the other")
        done = {(x.line_id, x.detail.get("with")) for x in self.store.decisions() if x.kind == DecisionKind.COMBINE}
        if (d.line_id, other.id) in done:
            return f"exp {other.id} was already combined into line {d.line_id}"
        if not self.may_propose():
            return "no more experiments may be proposed in this session"
        return ""

    def combine(self, d: Decision, active: dict[int, Any]) -> None:
        assert d.line_id is not None and d.other_line_id is not None
        other = self.rows[active[d.other_line_id].incumbent_id]
        mine = self.rows[active[d.line_id].incumbent_id]
        assert other.commit_sha
        # Only what the other line added since the two lines' last common experiment.
        common = next(e for e in self.ledger.ancestry(other) if e in self.ledger.ancestry(mine))
        path_args = ["--", self.repo.subdir] if self.repo.subdir else []
        diff = gitops.git(self.repo.root, "diff", self.ledger.commit_of(self.rows[common]), other.commit_sha,
                          *path_args)
        directive = {"kind": DirectiveKind.COMBINE, "with": other.id, "other_line": d.other_line_id,
                     "idea": other.idea.to_dict(), "diff": diff[:COMBINE_DIFF_CHARS]}
        with self.store.transaction():
            child = self.store.add_experiment(kind=ExperimentKind.CANDIDATE, line_id=d.line_id, parent_id=mine.id,
                                              brain=self.brain_name, base_commit=self.ledger.commit_of(mine),
                                              directive=directive)
            self.store.add_decision(DecisionKind.COMBINE, d.reason, line_id=d.line_id, other_line_id=d.other_line_id,
                                    experiment_id=child, detail={"with": other.id})
        self.ledger.refresh(child)
        self.ledger.note("director", f"exp {child}: combine line {d.other_line_id}'s win (exp {other.id}) into line "
                                     f"{d.line_id}: {d.reason}", experiment_id=child)
