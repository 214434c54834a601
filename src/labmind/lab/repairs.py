"""Repairs: a crashed experiment of a brain that can repair gets a child experiment that fixes it.

The request is written to the store first (status `proposing`, directive `repair`), so a killed lab makes it
on resume; `resume` asks again for failures whose repair could not be requested when their verdict came.
"""

from __future__ import annotations

from collections.abc import Callable

from labmind.lab.ledger import Ledger
from labmind.lab.views import failure_tail
from labmind.model import DirectiveKind, ExperimentKind, ExperimentStatus, LineStatus
from labmind.store import ExperimentRow
from labmind.verdicts import RUN_FAILURES


class Repairs:
    def __init__(self, ledger: Ledger, *, brain_name: str, max_repairs: int, may_propose: Callable[[], bool]) -> None:
        self.ledger, self.store, self.rows = ledger, ledger.store, ledger.rows
        self.brain_name, self.max_repairs, self.may_propose = brain_name, max_repairs, may_propose

    def depth(self, exp: ExperimentRow) -> int:
        """How many repairs deep `exp` is (0 for an experiment that is no repair)."""
        depth, row = 0, exp
        while row.directive.get("kind") == DirectiveKind.REPAIR and row.parent_id in self.rows:
            depth += 1
            row = self.rows[row.parent_id]
        return depth

    def maybe_repair(self, exp: ExperimentRow) -> None:
        if exp.verdict not in RUN_FAILURES or not exp.commit_sha:
            return
        attempt = self.depth(exp) + 1
        if attempt > self.max_repairs or not self.may_propose():
            return  # `resume` asks again in a later session, while repairs are still allowed
        if any(r.parent_id == exp.id and r.directive.get("kind") == DirectiveKind.REPAIR for r in self.rows.values()):
            return
        if exp.line_id is None or self.store.line(exp.line_id).status != LineStatus.ACTIVE:
            return
        directive = {"kind": DirectiveKind.REPAIR, "of": exp.id, "attempt": attempt,
                     "log_tail": failure_tail(self.store, exp)[-4000:]}
        child = self.store.add_experiment(kind=ExperimentKind.CANDIDATE, line_id=exp.line_id, parent_id=exp.id,
                                          brain=self.brain_name, base_commit=exp.commit_sha, directive=directive)
        self.ledger.refresh(child)
        self.ledger.note("repair", f"exp {child}: repair {attempt} of {self.max_repairs} for exp {exp.id} "
                                   f"({exp.verdict})", experiment_id=child)

    def resume(self) -> None:
        """Repairs a verdict could not ask for when it came (the session's budget ended, the lab stopped, or
        it was killed between the verdict and the repair): ask now. Idempotent: one repair per failure."""
        for row in sorted(self.rows.values(), key=lambda r: r.id):
            if row.kind == ExperimentKind.CANDIDATE and row.status == ExperimentStatus.DONE:
                self.maybe_repair(row)
