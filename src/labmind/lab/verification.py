"""Verification: a line's provisional head against its last verified point, on seeds fresh to the head.

The referee's second stage (README "How a gain is judged", step 3 and 4), composed into the `Referee`: it
starts verifications when they are due, adds their looks, ends them with a claim, a revert or a bisection of
the stack, and verifies every unverified head when the lab stops proposing. Verdicts go through the referee.
"""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any

from labmind.findings import Finding, merged, rules_of
from labmind.guard.candidate import Clock, Measurement, check_candidate
from labmind.guard.holding import allow_hint, holding
from labmind.judge.fdr import level as fdr_level
from labmind.model import ExperimentKind, LineStatus, RunPurpose, RunStatus
from labmind.store import ExperimentRow, RunRow
from labmind.verdicts import Verdict

if TYPE_CHECKING:
    from labmind.lab.judging import Referee

#: Purposes whose runs were not chosen for looking good: they may stand for an experiment's value.
UNSELECTED = (RunPurpose.BASELINE, RunPurpose.REFERENCE, RunPurpose.CONFIRM)


class Verifier:
    def __init__(self, referee: Referee) -> None:
        self.referee = referee
        self.ledger, self.store, self.task, self.rows = referee.ledger, referee.store, referee.task, referee.rows

    def past_steps(self) -> list[float]:
        """The lab's verified steps (each verified experiment against the point it was verified against), in
        'higher is better' units."""
        steps = []
        for row in self.rows.values():
            anchor = self.rows.get(int(row.judgement.get("verify", {}).get("anchor", row.parent_id or -1)))
            if row.verdict == Verdict.IMPROVED and anchor and row.metric is not None and anchor.metric is not None:
                steps.append(self.task.sign * (row.metric - anchor.metric))
        return steps

    # -- verification --------------------------------------------------------------------------------

    def since_verified(self, line_id: int, verified_id: int | None) -> int:
        """Candidate verdicts on the line since its verified point was set (or since the last verification)."""
        since = 0
        for row in sorted(self.rows.values(), key=lambda r: r.id):
            if row.line_id != line_id or row.kind != ExperimentKind.CANDIDATE or not row.verdict:
                continue
            since += 1
            if row.id == verified_id or row.judgement.get("verify", {}).get("state") in ("undecided", "claim", "fail"):
                since = 0
        return since

    def maybe_verify(self, line_id: int, *, closing: bool = False) -> None:
        """Start verifying the line's provisional head when it is due."""
        if self.referee.judge is None:
            return
        line = self.store.line(line_id)
        head_id, anchor_id = line.incumbent_id, line.verified_id
        if head_id is None or anchor_id is None or head_id == anchor_id:
            return
        head = self.referee.refresh(head_id)
        if head.verdict != Verdict.KEPT:
            return
        state = head.judgement.get("verify", {})
        if state.get("state") == "running":
            return
        if closing:
            if state.get("closing"):
                return  # verified once already at a close, undecided: not again in this lab
        elif state.get("state") == "undecided" or self.since_verified(line_id, anchor_id) < self.referee.verify_every:
            return
        elif (left := self.referee.host.experiments_left()) is not None and left < self.referee.verify_every:
            # The close verifies every head within fewer experiments than a period: a verification now would
            # spend runs on a claim the close makes anyway (and makes against a nearer anchor, at more cost).
            return
        every = self.referee.verify_every
        why = "the lab stops proposing" if closing else f"{every} experiments since its last verification"
        self.start_verification(head_id, anchor_id, closing=closing, why=why)

    def start_verification(self, exp_id: int, anchor_id: int, *, closing: bool, why: str) -> None:
        exp = self.rows[exp_id]
        noise = self.referee.noise()
        # Unpaired until the lab has measured its seed correlation (verifications on the anchor's own seeds
        # measure it as they go); paired from then on where it pays.
        paired = noise.paired
        tests, claims = self.claim_record()
        alpha_j = fdr_level(self.task.noise.alpha, tests + 1, claims)
        # The first look has two fresh seeds, so a claim never rests on one run (a lucky run, a variance that
        # cannot collapse); each later look adds one, up to confirm_seeds.
        # At the close a verification may look twice as long: what it cannot verify then stays unclaimed.
        seeds = self.task.noise.confirm_seeds * (2 if closing else 1)
        record = {"state": "running", "anchor": anchor_id, "paired": paired, "level": alpha_j, "test": tests + 1,
                  "looks": seeds - 1, "seeds": [], "closing": closing}
        self.store.update_experiment(exp_id, judgement={**exp.judgement, "verify": record})
        self.referee.refresh(exp_id)
        self.ledger.note("verify", f"exp {exp_id}: verifying it against exp {anchor_id} on fresh seeds ({why}; claim "
                                 f"test {tests + 1} at level {alpha_j:.3g}, {'paired' if paired else 'unpaired'})",
                       experiment_id=exp_id)
        self.add_look(exp_id)
        self.add_look(exp_id)

    def add_look(self, head_id: int) -> None:
        """One more seed for a verification. First the seeds the anchor already has unselected runs on and the
        head has never run on: fresh for the head, paired with the anchor at no cost to it. Then new seeds,
        where the anchor runs too when the design is paired (or it has fewer runs than the head)."""
        head = self.rows[head_id]
        record = dict(head.judgement["verify"])
        anchor_id = int(record["anchor"])
        used = {r.seed for r in self.store.runs_of(head_id)} | set(record["seeds"])
        free = [s for s in sorted(self.referee.values_by_seed(anchor_id, UNSELECTED)) if s not in used]
        seed = free[0] if free else self.store.next_seed()
        record["seeds"] = [*record["seeds"], seed]
        with self.store.transaction():
            self.store.update_experiment(head_id, judgement={**head.judgement, "verify": record})
            if free:
                self.store.add_run(experiment_id=head_id, purpose=RunPurpose.CONFIRM, seed=seed)
            else:
                # ABBA: the anchor first on odd looks, second on even ones, so slow drift cancels.
                order = [anchor_id, head_id] if len(record["seeds"]) % 2 else [head_id, anchor_id]
                anchor_runs = len(self.referee.values_by_seed(anchor_id, UNSELECTED))
                fresh = len([r for r in self.store.runs_of(head_id) if r.purpose == RunPurpose.CONFIRM])
                for exp_id in order:
                    if exp_id == head_id or record["paired"] or anchor_runs <= fresh:
                        self.store.add_run(experiment_id=exp_id, purpose=RunPurpose.CONFIRM, seed=seed)
        self.referee.refresh(head_id)

    def claim_record(self) -> tuple[int, int]:
        """(claim tests started in this lab, claims made), for the false-claim control. Tests are numbered in the
        order they start, so two verifications running at once never share a level."""
        tests = claims = 0
        for row in self.rows.values():
            record = row.judgement.get("verify", {})
            tests = max(tests, int(record.get("test", 0)))
            claims += record.get("state") == "claim"
        return tests, claims

    def step_verifications(self, exp_id: int) -> None:
        """Verifications this experiment takes part in (as head or anchor) take their next step."""
        for row in list(self.rows.values()):
            record = row.judgement.get("verify", {})
            if record.get("state") == "running" and exp_id in (row.id, record.get("anchor")):
                self.step_verification(self.referee.refresh(row.id))

    def step_verification(self, head: ExperimentRow) -> None:
        judge = self.referee.judge
        assert judge is not None
        record = head.judgement["verify"]
        anchor_id, seeds = int(record["anchor"]), list(record["seeds"])
        # Every fresh-seed run of the head counts, an earlier undecided verification's too: they were all drawn
        # after it was kept, so none was chosen for looking good.
        mine = [r for r in self.store.runs_of(head.id) if r.purpose == RunPurpose.CONFIRM]
        theirs = [r for r in self.store.runs_of(anchor_id) if r.purpose in UNSELECTED]
        if any(r.status in (RunStatus.QUEUED, RunStatus.RUNNING) for r in mine + theirs):
            return
        failed = next((r for r in mine if r.status == RunStatus.DONE and r.outcome != "ok"), None)
        if failed is not None:
            failure = self.referee.failure(failed)
            self.end_verification(head, "fail", failure.verdict, f"verification: {failure.reason}", None)
            return
        cand = {r.seed: float(r.metric) for r in mine if r.outcome == "ok" and r.metric is not None}
        if record["paired"]:
            ref = {r.seed: float(r.metric) for r in theirs if r.outcome == "ok" and r.metric is not None
                   and r.seed in cand}
            if not ref:
                ref = self.referee.values_by_seed(anchor_id, UNSELECTED)
        else:
            ref = self.referee.values_by_seed(anchor_id, UNSELECTED) or self.referee.values_by_seed(anchor_id)
        anchor = self.rows[anchor_id]
        ref_level = anchor.metric if anchor.metric is not None else statistics.fmean(ref.values())
        result = judge.verify(cand, ref, self.referee.noise(), level=float(record["level"]), look=len(seeds) - 1,
                              looks=int(record["looks"]), paired=bool(record["paired"]), ref_level=ref_level,
                              cand_id=head.id, ref_id=anchor_id, gate_values=self.gate_values(mine, cand))
        if result.result == "more":
            self.ledger.note("verify", f"exp {head.id}: {result.reason}", experiment_id=head.id)
            self.add_look(head.id)
            return
        comp = result.comparison
        low, high = comp.ci
        numbers = {"effect": comp.effect, "low": low if math.isfinite(low) else None,
                   "high": high if math.isfinite(high) else None, "p_improve": comp.p_improve,
                   "p_value": result.p_value, "n_cand": comp.n_cand, "n_ref": comp.n_ref, "paired": comp.paired,
                   "scale": judge.scale.value}
        if result.result == "claim":
            # The guard's findings only matter to a claim (the verification test itself takes none).
            flags = merged(head.flags, self.check_verified(head, anchor_id, cand, ref))
            held = holding(self.task, flags)
            if held:
                rules = len(rules_of(held))
                self.end_verification(head, "claim", Verdict.FLAGGED,
                                      f"{result.reason}, but {rules} integrity check(s) hold it for a person's "
                                      f"review (`labmind show`){allow_hint(held)}", numbers,
                                      values=list(cand.values()), flags=flags)
            else:
                self.end_verification(head, "claim", Verdict.IMPROVED, result.reason, numbers,
                                      values=list(cand.values()))
            return
        if result.result == "undecided" and head.verdict == Verdict.KEPT:
            # Neither shown better nor shown not better: the line keeps building on its head (a resumed lab too),
            # and a later, larger stack is verified again. Nothing is claimed.
            self.store.update_experiment(head.id, judgement={**head.judgement, "verify": {
                **record, "state": "undecided", **numbers}})
            self.referee.refresh(head.id)
            later = ("it stays provisional, unclaimed" if record.get("closing")
                     else "its line keeps building on it and verifies a later head again")
            self.ledger.note("verify", f"exp {head.id}: {result.reason}; {later}", experiment_id=head.id)
            return
        verdict = Verdict.NOT_IMPROVED if comp.effect <= 0 else Verdict.INCONCLUSIVE
        self.end_verification(head, result.result, verdict, result.reason, numbers)

    def gate_values(self, runs: list[RunRow], cand: dict[int, float]) -> list[float]:
        """The task gate's secondary value of each run behind `cand` (the speedrun's val_loss)."""
        gate = self.task.metric.parsed_gate()
        return [] if gate is None else [float(r.secondary[gate[0]]) for r in runs if r.seed in cand
                                        and r.outcome == "ok" and r.secondary.get(gate[0]) is not None]

    def check_verified(self, head: ExperimentRow, anchor_id: int, cand: dict[int, float],
                       ref: dict[int, float]) -> list[Finding]:
        """The guard's candidate checks (layers 4 and 5) on a head's fresh-seed runs against its anchor."""
        if not cand or not ref:
            return []
        values = tuple(cand.values())
        base = self.rows.get(self.store.lab().baseline_id or -1)  # type: ignore[union-attr]
        confirms = [r for r in self.store.runs_of(head.id) if r.purpose == RunPurpose.CONFIRM and r.seed in cand]
        theirs = [r for r in self.referee.ok_runs(anchor_id) if r.purpose in UNSELECTED]
        return check_candidate(self.task, Measurement(
            values, tuple(Clock(r.secondary.get(self.task.metric.self_time or ""), r.seconds) for r in confirms),
            gain=self.task.sign * (statistics.fmean(values) - statistics.fmean(ref.values())),
            past_steps=tuple(self.past_steps()), baseline_sd=(base.metric_sd if base else None) or 0.0,
            holdout=(tuple((r.metric, r.holdout) for r in confirms), tuple((r.metric, r.holdout) for r in theirs))))

    def stack(self, head: ExperimentRow, anchor_id: int) -> list[int]:
        """The provisional steps from the anchor up to the head (the head included), oldest first."""
        out, row = [], head
        while row.id != anchor_id and row.verdict == Verdict.KEPT:
            out.append(row.id)
            if row.parent_id is None or row.parent_id not in self.rows:
                break
            row = self.rows[row.parent_id]
        return out[::-1]

    def end_verification(self, head: ExperimentRow, state: str, verdict: Verdict, reason: str,
                         numbers: dict[str, Any] | None, *, values: list[float] | None = None,
                         flags: list[Finding] | None = None) -> None:
        record = {**head.judgement["verify"], "state": state, **(numbers or {})}
        anchor_id = int(record["anchor"])
        steps = [s for s in self.stack(head, anchor_id) if s != head.id]
        if steps:
            reason += f"; it includes the provisional step(s) {', '.join(f'exp {s}' for s in steps)}"
        line_id = head.line_id or 0
        self.store.update_experiment(head.id, judgement={**head.judgement, "verify": record})
        self.referee.finish(head.id, verdict, reason, values=values, flags=flags, verified=verdict == Verdict.IMPROVED,
                    p_value=(numbers or {}).get("p_value"))
        if verdict == Verdict.IMPROVED:
            for step in steps:
                self.store.update_experiment(step, reason=f"{self.rows[step].reason}; verified as part of exp "
                                                          f"{head.id}'s stack")
                self.referee.refresh(step)
            return
        # The line may have kept steps on top of the head while it was verified: they carry its change too.
        # (A candidate flagged at screening never moved its line.)
        on_stack = head.verdict == Verdict.KEPT and self.ledger.descends(self.store.line(line_id).incumbent_id, head.id)
        if steps and on_stack and verdict != Verdict.FLAGGED:
            self.bisect(line_id, head.id, anchor_id, steps, closing=bool(record.get("closing")))
            return
        for step in steps:
            self.revert(step, head.id, anchor_id)
        if on_stack:
            self.referee.rebase(line_id, f"exp {head.id} was not verified" if verdict != Verdict.FLAGGED
                                else f"exp {head.id} is held for a person's review")

    def revert(self, step: int, head_id: int, anchor_id: int) -> None:
        """A provisional step below a head that was not verified goes with it."""
        self.referee.finish(step, Verdict.INCONCLUSIVE, f"{self.rows[step].reason}; reverted: the stack it belongs "
                                                        f"to (up to exp {head_id}) was not verified against exp "
                                                        f"{anchor_id}", quiet=True)

    def bisect(self, line_id: int, failed_id: int, anchor_id: int, steps: list[int], *, closing: bool) -> None:
        """A stack failed its verification: find the step(s) responsible rather than drop every step. The line
        goes back to the middle of the stack below the failed head, which is verified against the same anchor
        next; the steps above the middle go with the head. A middle that fails bisects again (its own stack is
        shorter); one that verifies is claimed and kept; with no step left the line is back at the anchor. A
        binary search for the longest part of the stack that verifies, one verification per halving."""
        middle = steps[len(steps) // 2]
        for step in steps[len(steps) // 2 + 1:]:
            self.revert(step, failed_id, anchor_id)
        self.store.set_incumbent(line_id, middle)
        self.ledger.note("rebase", f"line {line_id} goes back to exp {middle}, the middle of the stack whose head "
                                 f"(exp {failed_id}) was not verified, to find the step(s) responsible")
        self.referee.supersede(line_id)
        self.start_verification(middle, anchor_id, closing=closing,
                                why=f"bisecting the stack of exp {failed_id}, which was not verified")

    def close_lines(self) -> None:
        """The lab stops proposing: verify every line's unverified head, so that what it found is claimed or
        reverted before it reports."""
        for line in self.store.lines():
            if line.status == LineStatus.ACTIVE:
                self.maybe_verify(line.id, closing=True)

    def verifying(self) -> bool:
        return any(r.judgement.get("verify", {}).get("state") == "running" for r in self.rows.values())

