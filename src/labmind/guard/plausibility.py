"""Plausibility checks on a candidate that passed its statistical test: is the gain believable?

Each check returns flags as "rule: evidence" strings, the form stored with the experiment. A flagged
experiment is never promoted; a person decides with `labmind review`.
"""

from __future__ import annotations

import statistics

from labmind.task import Task


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def beyond_bound(task: Task, values: list[float]) -> list[str]:
    bound = task.metric.bound
    if bound is None:
        return []
    beaten = [v for v in values if task.better(v, bound)]
    if not beaten:
        return []
    best = max(beaten, key=lambda v: task.sign * v)
    return [
        f"beyond_bound: {task.metric.name} {_fmt(best)} beats the declared bound {_fmt(bound)}, "
        "which no honest run can reach"
    ]


def implausible_gain(task: Task, gain: float, past_steps: list[float]) -> list[str]:
    """`gain` and `past_steps` are in 'higher is better' units: the lab's confirmed improvement steps."""
    steps = [s for s in past_steps if s > 0]
    if not steps or gain <= 0:
        return []
    largest = max(steps)
    if gain <= task.guard.gain_ratio * largest:
        return []
    return [
        f"implausible_gain: a gain of {_fmt(gain)} is {gain / largest:.0f}× the largest confirmed step so far "
        f"({_fmt(largest)}; limit {task.guard.gain_ratio:g}×)"
    ]


def variance_collapse(values: list[float], baseline_sd: float) -> list[str]:
    if len(values) < 2 or baseline_sd <= 0 or statistics.pstdev(values) > 0:
        return []
    return [
        f"variance_collapse: {len(values)} fresh seeds gave the identical value {_fmt(values[0])}, "
        f"while the baseline varies (sd {_fmt(baseline_sd)}): the result may not depend on the run"
    ]


def time_mismatch(task: Task, reported: float | None, measured: float) -> list[str]:
    """A run that claims to be much faster than labmind's own clock says."""
    name = task.metric.self_time
    if name is None or reported is None or measured <= 0:
        return []
    if reported >= 0.5 * measured - 1.0:
        return []
    return [f"time_mismatch: the run reports {name} = {_fmt(reported)} s but labmind measured {measured:.1f} s"]


def holdout_gap(task: Task, dev_gain: float, holdout_gain: float, noise_sd: float) -> list[str]:
    """The held-out improvement should follow the dev improvement; a large shortfall suggests the change
    fits the evaluation data rather than the task."""
    needed = task.guard.holdout_fraction * dev_gain - 2.0 * noise_sd
    if dev_gain <= 0 or holdout_gain >= needed:
        return []
    return [
        f"holdout_gap: dev gain {_fmt(dev_gain)} but held-out gain {_fmt(holdout_gain)} (needs at least {_fmt(needed)})"
    ]
