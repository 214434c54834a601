"""The judge: screening decisions that let a line build, and verifications that make claims.

Screening is a ratchet with better manners: one run on the lab's screening seed, compared with the line's
incumbent on the same seed (so whatever the seed fixes cancels), kept when it is better by the minimum
effect. A kept experiment is *provisional*: its line builds on it, but nothing is claimed. Claims come
from verification: the line's head against its last verified point on fresh seeds, added sequentially,
tested one-sided at a level set by the lab's false-claim control (`fdr`). Every decision comes with a
sentence saying why, the effect with its CI, and the runs behind it.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

from labmind.findings import Finding, rules_of
from labmind.judge.compare import Comparison, compare
from labmind.judge.gate import meets
from labmind.judge.noise import Noise
from labmind.judge.robust import OUTLIER_K
from labmind.judge.stats import mean_beyond
from labmind.scale import MinEffect, Scale, effect_with_ci_text, from_scale, to_scale
from labmind.task import Task

#: A verification stops as a failure when the probability that the candidate is better falls below this.
FUTILE = 0.05

_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt, "==": operator.eq,
        "!=": operator.ne}


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6g}"


@dataclass(frozen=True)
class Screen:
    action: str  # keep | drop | rerun | flag
    reason: str
    effect: float | None  # 'better' units on the scale
    near_miss: bool = False


@dataclass(frozen=True)
class Verification:
    result: str  # claim | more | fail | undecided
    reason: str
    comparison: Comparison
    p_value: float


class Judge:
    def __init__(self, task: Task, scale: Scale, min_effect: MinEffect) -> None:
        self.task, self.scale, self.min_effect = task, scale, min_effect
        self.metric = task.metric.name
        self.sign = task.sign

    # -- helpers ---------------------------------------------------------------------------------------

    def scaled(self, value: float) -> float:
        return to_scale(self.scale, value)

    def effect_text(self, effect: float) -> str:
        return effect_with_ci_text(self.scale, effect, self.sign)

    def ci_text(self, comp: Comparison) -> str:
        low, high = comp.ci
        return effect_with_ci_text(self.scale, comp.effect, self.sign, low, high)

    def min_on_scale(self, reference: float) -> float:
        return self.min_effect.on_scale(self.scale, reference, self.sign)

    def constraint_violation(self, secondary: dict[str, float]) -> str | None:
        for name, op, bound in self.task.metric.parsed_constraints():
            value = secondary.get(name)
            if value is None:
                return f"constraint {name} {op} {bound:g} cannot be checked: the run reported no {name}"
            if not _OPS[op](value, bound):
                return f"violates constraint {name} {op} {bound:g} (got {value:g})"
        return None

    def gate_miss(self, secondary: dict[str, float]) -> str | None:
        """Why one run misses the task's gate (its target), or None when it meets it or there is no gate."""
        gate = self.task.metric.parsed_gate()
        if gate is None:
            return None
        name, op, bound = gate
        value = secondary.get(name)
        met = meets(value, op, bound)
        if met is None:
            return f"the run reported no {name}, so its target {name} {op} {bound:g} cannot be checked"
        if not met:
            return f"missed the target: {name} {value:g}, needed {op} {bound:g}"
        return None

    def gate_test(self, values: list[float]) -> tuple[bool, float, str]:
        """The claim gate over a candidate's fresh-seed runs: (passed, p, sentence)."""
        gate = self.task.metric.parsed_gate()
        assert gate is not None
        name, op, bound = gate
        level = self.task.metric.gate_level
        p = mean_beyond(values, op, bound)
        mean = sum(values) / len(values) if values else math.nan
        said = f"gate {name} {op} {bound:g}: mean {fmt(mean)} over {len(values)} run(s), one-sided t-test p={p:.3g}"
        return p < level, p, f"{said} {'<' if p < level else '≥'} {level:g}"

    # -- screening -------------------------------------------------------------------------------------

    def screen(self, values: list[tuple[int, float]], reference: dict[int, float], secondary: dict[str, float],
               noise: Noise, flags: list[Finding], stall_below: float | None = None, reruns_pay: bool = True
               ) -> Screen:
        """`values`: the candidate's screening runs (seed, metric) in order; `reference`: the incumbent's
        metric by seed, covering those seeds. The latest run decides; an earlier one is only there because it
        looked like a stall (a re-run uses the same seed). `stall_below`: an effect below it is far outside
        what the lab's screens show. `reruns_pay`: False once the lab's re-runs keep reproducing what they
        re-ran (bad ideas, not stalls): then only `stall_below` calls for one."""
        seed, value = values[-1]
        violation = self.constraint_violation(secondary) or self.gate_miss(secondary)
        if violation:
            return Screen("drop", f"{self.metric} {fmt(value)}, but it {violation}", None)
        ref = reference[seed]
        effect = self.sign * (self.scaled(value) - self.scaled(ref))
        needed = self.min_on_scale(ref)
        versus = (f"{self.metric} {fmt(value)} vs the incumbent's {fmt(ref)} on the same seed ({seed}): "
                  f"{self.effect_text(effect)}")
        if len(values) > 1:
            versus += f" (a first run, {fmt(values[0][1])}, looked like a stall and was re-run)"
        if effect > needed:
            if flags:
                rules = len(rules_of(flags))
                return Screen("flag", f"{versus}, but {rules} integrity check(s) hold it for a person's review "
                                      "(`labmind show`)", effect)
            return Screen("keep", f"{versus}: kept provisionally; its line builds on it, and it is claimed only "
                                  "once verified on fresh seeds", effect)
        seen_stalls = reruns_pay and noise.outliers > 0 and noise.sd > 0 and effect < -OUTLIER_K * noise.sd
        off_scale = stall_below is not None and effect < stall_below
        if (seen_stalls or off_scale) and len(values) == 1:
            why = (f"far outside the lab's noise (sd {noise.sd:.3g}) in a lab that has seen stalls" if seen_stalls
                   else "far below every other screening result of the lab")
            return Screen("rerun", f"{versus}: {why}; re-running it once on the same seed", effect)
        why = "not better" if effect <= 0 else f"better by less than the minimum effect ({self.min_effect.text()})"
        if math.isinf(needed):
            why = (f"the minimum effect {self.min_effect.text()} cannot be reached from an incumbent at {fmt(ref)}: "
                   "set [noise] min_effect to a percentage or \"auto\"")
        close = effect > 0 or (noise.sd > 0 and effect > -0.5 * noise.sd)
        return Screen("drop", f"{versus}: {why}", effect, near_miss=close)

    # -- verification ----------------------------------------------------------------------------------

    def verify(self, cand: dict[int, float], ref: dict[int, float], noise: Noise, *, level: float, look: int,
               looks: int, paired: bool, ref_level: float, cand_id: int, ref_id: int,
               gate_values: list[float] | None = None) -> Verification:
        """Look `look` of at most `looks` at a claim that exp `cand_id` beats exp `ref_id`; values are metric
        values by seed (the candidate's on fresh seeds only). With a task gate, `gate_values` are the gated
        secondary's values of the same runs, and a claim needs the gate's t-test too."""
        c = {s: self.scaled(v) for s, v in cand.items()}
        r = {s: self.scaled(v) for s, v in ref.items()}
        comp = compare(c, r, noise, sign=self.sign, paired=paired)
        needed = self.min_on_scale(ref_level)
        p = comp.p_value(needed)
        # Spending across looks (a union bound): the first look, which decides most claims (large stacks), spends
        # half of the level; the later looks share the other half.
        per_look = level if looks == 1 else (level / 2 if look == 1 else level / (2 * (looks - 1)))
        design = "paired on the same fresh seeds" if comp.paired else "fresh seeds, unpaired"
        runs = f"{comp.n_cand} run(s) of exp {cand_id} vs {comp.n_ref} of exp {ref_id} ({design})"
        said = f"{self.ci_text(comp)}, P(better) {comp.p_improve:.3f}, p={p:.3g}; {runs}"
        if comp.outliers:
            shown = ", ".join(fmt(from_scale(self.scale, v)) for v in comp.outliers[:4])
            said += f"; outliers left out: {shown}"
        if not comp.agreed and look < looks:
            return Verification("more", f"{said}: the runs disagree; adding runs", comp, p)
        if p <= per_look and comp.effect > needed:
            if self.task.metric.gate is None:
                return Verification("claim", f"verified on fresh seeds: {said} ≤ this look's level {per_look:.3g}",
                                    comp, p)
            passed, _, gate_said = self.gate_test(gate_values or [])
            if passed:
                return Verification("claim", f"verified on fresh seeds: {said} ≤ this look's level {per_look:.3g}; "
                                             f"{gate_said}", comp, p)
            if look < looks:
                return Verification("more", f"{said}, but {gate_said}: adding runs", comp, p)
            return Verification("undecided", f"not verified: {said}, but {gate_said} after {looks} look(s)", comp, p)
        if comp.p_improve < FUTILE:
            return Verification("fail", f"not better on fresh seeds: {said}", comp, p)
        if look < looks:
            return Verification("more", f"{said}: undecided at this look's level {per_look:.3g}; adding runs", comp, p)
        return Verification("undecided", f"not verified: {said} > this look's level {per_look:.3g} after {looks} "
                                         "look(s)", comp, p)
