"""Plausibility checks on a candidate that passed its statistical test: is the gain believable?

Each check returns findings (no path or line: they are about the measurement, not about a file). A flagged
experiment is never promoted; a person decides with `labmind review`. `guard.candidate.check_candidate` runs them.
"""

from __future__ import annotations

import math
import statistics

from labmind.findings import Finding
from labmind.numeric import safe_variance
from labmind.task import Task


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _flag(rule: str, evidence: str) -> Finding:
    return Finding(rule, evidence=evidence, family="plausibility")


def beyond_bound(task: Task, values: list[float]) -> list[Finding]:
    bound = task.metric.bound
    if bound is None:
        return []
    beaten = [v for v in values if task.better(v, bound)]
    if not beaten:
        return []
    best = max(beaten, key=lambda v: task.sign * v)
    return [_flag("beyond_bound", f"{task.metric.name} {_fmt(best)} beats the declared bound {_fmt(bound)}, "
                                  "which no honest run can reach")]


def implausible_gain(task: Task, gain: float, past_steps: list[float]) -> list[Finding]:
    """`gain` and `past_steps` are in 'higher is better' units: the lab's confirmed improvement steps."""
    steps = [s for s in past_steps if s > 0]
    if not steps or gain <= 0:
        return []
    largest = max(steps)
    if gain <= task.guard.gain_ratio * largest:
        return []
    return [_flag("implausible_gain", f"a gain of {_fmt(gain)} is {gain / largest:.0f}× the largest confirmed "
                                      f"step so far ({_fmt(largest)}; limit {task.guard.gain_ratio:g}×)")]


def variance_collapse(values: list[float], baseline_sd: float) -> list[Finding]:
    # Identical values, compared as such: a standard deviation of huge values could overflow.
    if len(values) < 2 or baseline_sd <= 0 or len(set(values)) > 1:
        return []
    return [_flag("variance_collapse", f"{len(values)} fresh seeds gave the identical value {_fmt(values[0])}, "
                                       f"while the baseline varies (sd {_fmt(baseline_sd)}): the result may not "
                                       "depend on the run")]


def time_mismatch(task: Task, reported: float | None, measured: float) -> list[Finding]:
    """A run that claims to be much faster than labmind's own clock says."""
    name = task.metric.self_time
    if name is None or reported is None or measured <= 0:
        return []
    if reported >= 0.5 * measured - 1.0:
        return []
    return [_flag("time_mismatch", f"the run reports {name} = {_fmt(reported)} s but labmind measured "
                                   f"{measured:.1f} s")]


def holdout_gap(task: Task, dev_gain: float, candidate: list[tuple[float, float]],
                incumbent: list[tuple[float, float]]) -> list[Finding]:
    """The held-out improvement should follow the dev improvement; a shortfall suggests the change fits
    the evaluation data rather than the task.

    Each list holds (dev, held-out) pairs, one per run that defines the experiment's metric (its
    confirmation runs; the baseline's runs). Pairing by run cancels what a seed does to both splits
    alike, so the check compares generalisation gaps: an honest gain of D moves both splits and leaves
    the gap alone; fitting the dev split widens the gap by up to D. Flagged when the gap widens by more
    than (1 - holdout_fraction) × D plus one standard error.
    """
    if dev_gain <= 0 or not candidate or not incumbent:
        return []
    gaps_c = [task.sign * (dev - held) for dev, held in candidate]
    gaps_i = [task.sign * (dev - held) for dev, held in incumbent]
    widened = statistics.fmean(gaps_c) - statistics.fmean(gaps_i)
    spread = [v / len(g) for g in (gaps_c, gaps_i) if (v := safe_variance(g)) is not None]
    allowed = (1.0 - task.guard.holdout_fraction) * dev_gain + math.sqrt(sum(spread))
    if widened <= allowed:
        return []
    held = task.sign * (statistics.fmean(h for _, h in candidate) - statistics.fmean(h for _, h in incumbent))
    return [_flag("holdout_gap", f"dev gain {_fmt(dev_gain)} but held-out gain {_fmt(held)} over {len(candidate)} "
                                 f"seeds; the dev/held-out gap widened by {_fmt(widened)} (allowed {_fmt(allowed)})")]
