"""The task's gate (`[metric] gate`, e.g. the speedrun's `val_loss < 3.28`): one place that says whether a value
meets it, used by the judge on candidates and by the lab on the baseline."""

from __future__ import annotations

import math
from typing import NamedTuple


class BaselineMiss(NamedTuple):
    reason: str  # the baseline's verdict reason
    message: str  # what to tell the person
    no_value: bool  # no run printed a finite value (rather than values that all miss)


def meets(value: float | None, op: str, bound: float) -> bool | None:
    """Whether `value` meets `op bound` (`<` or `>`, all the task file allows); None when there is no finite
    value to judge (a run that printed none, or NaN/inf)."""
    if value is None or not math.isfinite(value):
        return None
    return value < bound if op == "<" else value > bound


def baseline_problem(values: list[float | None], gate: tuple[str, str, float] | None,
                     gate_text: str) -> BaselineMiss | None:
    """The baseline's runs against the gate, or None when at least one run meets it. Checked at the baseline
    because otherwise every candidate as good as the baseline would be dropped, one experiment at a time.
    Monotone in the runs: a run added later (the noise check's) cannot turn a passing baseline into a failing
    one. `values`: each finished run's value of the gate's secondary, None where it printed none."""
    if gate is None or not values:
        return None
    name, op, bound = gate
    judged = [meets(v, op, bound) for v in values]
    if any(judged):
        return None
    field = f'`[metric] gate = "{gate_text}"`'
    if all(j is None for j in judged):
        short = f"the baseline's runs report no finite `{name}`, which {field} needs"
        return BaselineMiss(short, f"{short}: the run (or the task's evaluator) must print a line such as "
                                   f"`{name}: 1.0` in every run", no_value=True)
    shown = ", ".join("none" if v is None else f"{v:.6g}" for v in values)
    short = f"the baseline misses the task's target {field} in every run ({name} {shown})"
    return BaselineMiss(short, f"{short}: every candidate as good as the baseline would be dropped as 'missed the "
                               "target'. Set a target the baseline reaches (the speedrun pack: `--target`)",
                        no_value=False)
