"""Which flags hold a would-be gain for a person's review.

Every flag stays on the experiment's record. A flag from a static rule that is not about how the metric is
measured (`measurement = false` in rules.toml: metric_print, native_call, dynamic_code, precision_toggle,
seed_only) does not hold a gain that a trusted evaluator (`[metric] evaluate`) measured: the number came from
the protected evaluator in a fresh process, not from the candidate. A task can make such a rule hold anyway
(`[guard] hold`), or allow a rule altogether (`[guard] allow`, then it is not checked)."""

from __future__ import annotations

from labmind.findings import Finding, rules_of
from labmind.guard.rules import default_rules
from labmind.task import Task


def soft_rules(task: Task) -> frozenset[str]:
    """Rules whose flags do not hold a gain in this task."""
    if not task.metric.evaluate:
        return frozenset()  # the candidate's own output is the measurement: every flag matters
    return frozenset(r.name for r in default_rules() if not r.measurement) - set(task.guard.hold)


def holding(task: Task, flags: list[Finding]) -> list[Finding]:
    """The flags, of `flags`, that hold a gain for review in this task."""
    soft = soft_rules(task)
    return [f for f in flags if f.rule not in soft]


def allow_hint(flags: list[Finding]) -> str:
    """What the task can do about static flags that hold a gain: the rules to allow, and how."""
    static = {r.name for r in default_rules()}
    rules = [r for r in rules_of(flags) if r in static]
    if not rules:
        return ""
    listed = ", ".join(f'"{r}"' for r in rules)
    return (f"; if this is legitimate for the task, allow the rule in labmind.toml (`[guard] allow = [{listed}]`) "
            "or measure with a trusted evaluator (`[metric] evaluate`), under which rules that are not about the "
            "measurement do not hold a gain")
