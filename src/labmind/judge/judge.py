"""The judge: turns run results into verdicts, with a sentence of why for every one of them."""

from __future__ import annotations

import operator
from dataclasses import dataclass

from labmind.judge.stats import Summary, one_sided_welch, summarize
from labmind.task import Task
from labmind.verdicts import Verdict

_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt, "==": operator.eq,
        "!=": operator.ne}


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6g}"


def fmt_summary(s: Summary) -> str:
    return f"{fmt(s.mean)} ± {fmt(s.sd)} (n={s.n})"


@dataclass(frozen=True)
class Screen:
    confirm: bool  # spend confirmation runs on it
    verdict: Verdict | None  # the final verdict when not confirming
    reason: str
    near_miss: bool = False


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str
    p_value: float | None
    summary: Summary


class Judge:
    def __init__(self, task: Task, min_effect: float) -> None:
        self.task = task
        self.min_effect = min_effect
        self.metric = task.metric.name

    def constraint_violation(self, secondary: dict[str, float]) -> str | None:
        for name, op, bound in self.task.metric.parsed_constraints():
            value = secondary.get(name)
            if value is None:
                return f"constraint {name} {op} {bound:g} cannot be checked: the run reported no {name}"
            if not _OPS[op](value, bound):
                return f"violates constraint {name} {op} {bound:g} (got {value:g})"
        return None

    def screen(self, value: float, secondary: dict[str, float], incumbent: list[float]) -> Screen:
        """After one run: is it worth confirming?"""
        inc = summarize(incumbent)
        gain = self.task.sign * (value - inc.mean)
        violation = self.constraint_violation(secondary)
        if violation:
            return Screen(False, Verdict.NOT_IMPROVED, f"{self.metric} {fmt(value)}, but it {violation}")
        if gain > self.min_effect:
            return Screen(True, None, f"screening run {self.metric} {fmt(value)} beats the incumbent's "
                                      f"{fmt(inc.mean)} by more than the minimum effect {fmt(self.min_effect)}")
        return Screen(
            False, Verdict.NOT_IMPROVED,
            f"{self.metric} {fmt(value)} vs the incumbent's {fmt_summary(inc)}: not better by the minimum effect "
            f"{fmt(self.min_effect)}",
            near_miss=gain > 0,
        )

    def decide(self, confirm: list[float], secondaries: list[dict[str, float]], incumbent: list[float],
               flags: list[str]) -> Decision:
        """After the confirmation runs (fresh seeds; the screening run is left out to avoid the
        winner's curse): a one-sided Welch test against the incumbent's runs."""
        alpha = self.task.noise.alpha
        cand, inc = summarize(confirm), summarize(incumbent)
        for sec in secondaries:
            violation = self.constraint_violation(sec)
            if violation:
                return Decision(Verdict.NOT_IMPROVED, f"a confirmation run {violation}", None, cand)
        test = one_sided_welch(confirm, incumbent, sign=self.task.sign, alpha=alpha)
        versus = f"{self.metric} {fmt_summary(cand)} on fresh seeds vs the incumbent's {fmt_summary(inc)}"
        if not test.significant:
            return Decision(Verdict.INCONCLUSIVE,
                            f"{versus}: one-sided Welch p={test.p_value:.3g} ≥ alpha {alpha:g}",
                            test.p_value, cand)
        if flags:
            # The flags themselves (rule names, evidence, held-out values) stay with the experiment for people;
            # the reason, which brains read, says only that it is held for review.
            rules = len({f.split(":", 1)[0] for f in flags})
            return Decision(Verdict.FLAGGED,
                            f"{versus} (p={test.p_value:.3g}), but {rules} integrity check(s) hold it for a "
                            "person's review (`labmind show`)", test.p_value, cand)
        return Decision(Verdict.IMPROVED, f"{versus}: one-sided Welch p={test.p_value:.3g} < alpha {alpha:g}",
                        test.p_value, cand)
