"""What the lab does with a verdict beyond judging it, for brains that can: repair crashed experiments (as
child experiments), reflect on results (an analysis stored with the experiment and shown to later steps),
and let a director explore, combine and retire lines. Mixed into `Lab`.

Requests to the brain that become experiments (repair, combine) are written to the store first, as
experiments in status `proposing` with a directive, so a killed lab makes them on resume.
"""

from __future__ import annotations

import asyncio
from typing import Any

from labmind.brains.base import Decision, DirectorView, LineSummary
from labmind.lab.views import PROGRESS, best_experiment, failure_tail
from labmind.store import ExperimentRow, Store, StoreError
from labmind.task import Task
from labmind.verdicts import RUN_FAILURES
from labmind.workspace import git as gitops

#: Recent experiments per line the director sees.
DIRECTOR_RECENT = 5
COMBINE_DIFF_CHARS = 16_000


class Steering:
    """The attributes below are set by `Lab.__init__`."""

    store: Store
    task: Task
    rows: dict[int, ExperimentRow]
    brain: Any
    settings: Any
    aux_pool: Any
    tasks: dict[asyncio.Future[Any], tuple[str, int, Any]]
    repo: gitops.RepoInfo
    brief_text: str
    since_director: int
    paths: Any

    # -- after a verdict ---------------------------------------------------------------------------------

    def after_verdict(self, exp: ExperimentRow) -> None:
        """Called once per candidate verdict (in the lab thread)."""
        self.maybe_repair(exp)
        self.start_reflection(exp)
        self.since_director += 1
        self.maybe_direct()

    def repair_depth(self, exp: ExperimentRow) -> int:
        depth, row = 0, exp
        while row.directive.get("kind") == "repair" and row.parent_id in self.rows:
            depth += 1
            row = self.rows[row.parent_id]
        return depth

    def maybe_repair(self, exp: ExperimentRow) -> None:
        if exp.verdict not in RUN_FAILURES or not getattr(self.brain, "can_repair", False) or not exp.commit_sha:
            return
        attempt = self.repair_depth(exp) + 1
        if attempt > self.settings.max_repairs or not self.may_propose():
            return  # resume_repairs asks again in a later session, while repairs are still allowed
        if any(r.parent_id == exp.id and r.directive.get("kind") == "repair" for r in self.rows.values()):
            return
        if exp.line_id is None or self.store.line(exp.line_id).status != "active":
            return
        directive = {"kind": "repair", "of": exp.id, "attempt": attempt,
                     "log_tail": failure_tail(self.store, exp)[-4000:]}
        child = self.store.add_experiment(kind="candidate", line_id=exp.line_id, parent_id=exp.id,
                                          brain=self.brain.name, base_commit=exp.commit_sha, directive=directive)
        self.refresh(child)
        self.note("repair", f"exp {child}: repair {attempt} of {self.settings.max_repairs} for exp {exp.id} "
                            f"({exp.verdict})", experiment_id=child)

    def resume_repairs(self) -> None:
        """Repairs a verdict could not ask for when it came (the session's budget ended, the lab stopped, or
        it was killed between the verdict and the repair): ask now. Idempotent: one repair per failure."""
        for row in sorted(self.rows.values(), key=lambda r: r.id):
            if row.kind == "candidate" and row.status == "done":
                self.maybe_repair(row)

    def pending_directive(self) -> ExperimentRow | None:
        """A requested experiment (repair, combine) not yet handed to the brain."""
        busy = {ident for kind, ident, _ in self.tasks.values() if kind == "proposal"}
        return next((r for r in sorted(self.rows.values(), key=lambda r: r.id)
                     if r.status == "proposing" and r.directive and r.id not in busy), None)

    def brain_spent(self) -> bool:
        """The brain cannot pay for another proposal (its LLM dollar cap is reached): say so once, propose no
        more, rather than fail proposal after proposal at their first call."""
        exhausted = getattr(self.brain, "exhausted", None)
        message = exhausted() if callable(exhausted) else None
        if message and not getattr(self, "_spent_noted", False):
            self._spent_noted = True
            self.note("stop", f"no more proposals: {message}")
        return bool(message)

    def transcript_tail(self, exp_id: int, chars: int = 6000) -> str:
        """The end of what the brain saved about this proposal (command output, the LLM loop), for the auditor."""
        texts = [p.read_text(errors="replace") for p in sorted(self.paths.transcripts.glob(f"exp-{exp_id}.*"))]
        return "\n".join(texts)[-chars:]

    # -- reflection --------------------------------------------------------------------------------------

    def start_reflection(self, exp: ExperimentRow) -> None:
        reflect = getattr(self.brain, "reflect", None)
        if reflect is None or exp.kind != "candidate" or exp.analysis or self.stopping:
            return
        parent = self.rows.get(exp.parent_id or -1)
        past = exp.past(failure_tail(self.store, exp) if exp.verdict in RUN_FAILURES else "")
        fut = asyncio.wrap_future(self.aux_pool.submit(
            reflect, past, exp.diff or "", parent=parent.past() if parent else None, min_effect=self.min_effect()))
        self.tasks[fut] = ("reflect", exp.id, None)

    def resume_reflections(self) -> None:
        for row in sorted(self.rows.values(), key=lambda r: r.id):
            if row.kind == "candidate" and row.verdict and not row.analysis and row.brain == self.brain.name:
                self.start_reflection(row)

    def finish_aux(self, kind: str, ident: int, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            # A failed reflection or review costs the lab nothing but the lesson: say so, carry on.
            self.note("brain_step_failed", f"{kind} failed: {type(exc).__name__}: {str(exc)[:300]}",
                      experiment_id=ident or None)
            return
        if kind == "reflect":
            text = str(fut.result())[:4000].encode("utf-8", errors="replace").decode("utf-8")
            self.store.update_experiment(ident, analysis=text)
            self.refresh(ident)
            self.note("reflect", f"exp {ident}: {text[:300]}", experiment_id=ident)
        elif kind == "direct":
            for decision in fut.result():
                try:
                    self.apply_decision(decision)
                except (StoreError, gitops.GitError, ValueError, KeyError) as exc:
                    self.note("director", f"{decision.kind} not applied: {type(exc).__name__}: {str(exc)[:200]}")

    # -- the director ------------------------------------------------------------------------------------

    def active_lines(self) -> list[Any]:
        return [line for line in self.store.lines() if line.status == "active" and line.incumbent_id is not None]

    def max_lines(self) -> int:
        return 2 * (self.settings.lines or len(self.slots))  # type: ignore[attr-defined]

    def maybe_direct(self) -> None:
        direct = getattr(self.brain, "direct", None)
        active = len(self.active_lines())
        every = self.settings.director_every or 2 * max(active, 1)
        # A lab of several lines keeps its director after retirements leave one: it may still explore.
        several = active >= 2 or (len(self.store.lines()) >= 2 and active < self.max_lines())
        if direct is None or self.since_director < every or not several or self.stopping:
            return
        if any(kind == "direct" for kind, _, _ in self.tasks.values()) or not self.may_propose(count_only=False):
            return
        self.since_director = 0
        fut = asyncio.wrap_future(self.aux_pool.submit(direct, self.director_view()))
        self.tasks[fut] = ("direct", 0, None)
        self.note("director", f"reviewing {len(self.active_lines())} lines")

    def director_view(self) -> DirectorView:
        rows = list(self.rows.values())
        baseline = next(r for r in rows if r.kind == "baseline")
        best = best_experiment(rows, self.task) or baseline
        summaries = []
        for line in self.active_lines():
            done = [r for r in rows if r.line_id == line.id and r.kind == "candidate" and r.verdict]
            since = 0
            for r in done:
                since = 0 if r.verdict in PROGRESS else since + 1
            summaries.append(LineSummary(
                id=line.id, name=line.name, direction=line.direction, incumbent=self.rows[line.incumbent_id].past(),
                n_done=len(done), since_improvement=since, recent=tuple(r.past() for r in done[-DIRECTOR_RECENT:]),
            ))  # fmt: skip
        return DirectorView(task=self.task, brief_text=self.brief_text, baseline=baseline.past(), best=best.past(),
                            min_effect=self.min_effect(), lines=tuple(summaries), max_lines=self.max_lines())

    def apply_decision(self, d: Decision) -> None:
        """Carry out one decision, or say why not; carried-out ones are recorded with their reasons."""
        active = {line.id: line for line in self.active_lines()}
        refused = self.refusal(d, active)
        if refused:
            self.note("director", f"{d.kind} not applied: {refused} (reason given: {d.reason})")
            return
        if d.kind == "retire":
            assert d.line_id is not None
            with self.store.transaction():
                self.store.update_line(d.line_id, status="retired", note=d.reason)
                self.store.add_decision("retire", d.reason, line_id=d.line_id)
            self.note("director", f"retired line {d.line_id}: {d.reason}")
        elif d.kind == "explore":
            best = best_experiment(list(self.rows.values()), self.task)
            assert best is not None
            with self.store.transaction():
                line_id = self.store.add_line(f"line-{len(self.store.lines()) + 1}", best.id, direction=d.direction)
                self.store.add_decision("explore", d.reason, line_id=line_id, detail={"direction": d.direction})
            self.note("director", f"opened line {line_id} from exp {best.id}: {d.direction} ({d.reason})")
        else:
            self.combine(d, active)

    def refusal(self, d: Decision, active: dict[int, Any]) -> str:
        if d.kind == "retire":
            if d.line_id not in active:
                return f"line {d.line_id} is not an active line"
            if len(active) <= 1:
                return "it is the last active line"
            best = best_experiment(list(self.rows.values()), self.task)
            if best is not None and best.kind == "candidate" and active[d.line_id].incumbent_id == best.id:
                return f"line {d.line_id} holds the lab's best (exp {best.id})"
            return ""
        if d.kind == "explore":
            if not d.direction:
                return "no direction was given"
            if len(active) >= self.max_lines():
                return f"the lab already has {len(active)} active lines (at most {self.max_lines()})"
            return ""
        if d.line_id not in active or d.other_line_id not in active or d.line_id == d.other_line_id:
            return "combine needs two different active lines"
        other = self.rows[active[d.other_line_id].incumbent_id]
        mine = self.rows[active[d.line_id].incumbent_id]
        if other.kind != "candidate" or other.verdict not in PROGRESS or not other.commit_sha:
            return f"line {d.other_line_id} has no win to combine"
        if other.id in self.ancestry(mine) or mine.id in self.ancestry(other):
            return (f"exp {other.id} and line {d.line_id}'s incumbent (exp {mine.id}) are on one path: one already "
                    "contains the other")
        done = {(x.line_id, x.detail.get("with")) for x in self.store.decisions() if x.kind == "combine"}
        if (d.line_id, other.id) in done:
            return f"exp {other.id} was already combined into line {d.line_id}"
        if not self.may_propose():
            return "no more experiments may be proposed in this session"
        return ""

    def ancestry(self, exp: ExperimentRow) -> list[int]:
        """exp's id, its parent's, and so on up to the baseline."""
        out, row = [], exp
        while True:
            out.append(row.id)
            if row.parent_id is None or row.parent_id not in self.rows:
                return out
            row = self.rows[row.parent_id]

    def combine(self, d: Decision, active: dict[int, Any]) -> None:
        assert d.line_id is not None and d.other_line_id is not None
        other = self.rows[active[d.other_line_id].incumbent_id]
        mine = self.rows[active[d.line_id].incumbent_id]
        assert other.commit_sha
        # Only what the other line added since the two lines' last common experiment.
        common = next(e for e in self.ancestry(other) if e in self.ancestry(mine))
        path_args = ["--", self.repo.subdir] if self.repo.subdir else []
        diff = gitops.git(self.repo.root, "diff", self.commit_of(self.rows[common]), other.commit_sha, *path_args)
        directive = {"kind": "combine", "with": other.id, "other_line": d.other_line_id,
                     "idea": other.idea.to_dict(), "diff": diff[:COMBINE_DIFF_CHARS]}
        with self.store.transaction():
            child = self.store.add_experiment(kind="candidate", line_id=d.line_id, parent_id=mine.id,
                                              brain=self.brain.name, base_commit=self.commit_of(mine),
                                              directive=directive)
            self.store.add_decision("combine", d.reason, line_id=d.line_id, other_line_id=d.other_line_id,
                                    experiment_id=child, detail={"with": other.id})
        self.refresh(child)
        self.note("director", f"exp {child}: combine line {d.other_line_id}'s win (exp {other.id}) into line "
                              f"{d.line_id}: {d.reason}", experiment_id=child)
