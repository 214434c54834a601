"""Layers 4 and 5 of the guard on a measured candidate: is the gain believable, and does it hold out?

    findings = check_candidate(task, Measurement(values=(v,), clocks=(Clock(reported, seconds),)))  # screening
    findings = check_candidate(task, Measurement(values, clocks, gain=g, past_steps=steps,          # verification
                                                 baseline_sd=sd, holdout=(theirs_pairs, mine_pairs)))

The lab calls it before the judge decides, and the judge decides once: flags that hold a gain in this task
(guard.holding) turn a would-be `kept`/`improved` into `flagged`. Every finding stays on record either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from labmind.findings import Finding
from labmind.guard.plausibility import (
    beyond_bound,
    holdout_gap,
    implausible_gain,
    time_mismatch,
    variance_collapse,
)
from labmind.task import Task

#: (dev metric, held-out metric) of one run; either is None when the run did not produce it.
Pair = tuple[float | None, float | None]


@dataclass(frozen=True)
class Clock:
    """One run's time as it reports it (the task's `[metric] self_time`, if any) and as labmind measured it."""

    reported: float | None
    measured: float


@dataclass(frozen=True)
class Measurement:
    """What the lab measured of a candidate, as the guard's candidate checks need it."""

    values: tuple[float, ...]  # the candidate's metric values (finite ones)
    clocks: tuple[Clock, ...] = ()
    #: The gain over the point it is verified against, in 'higher is better' units. None at screening: one noisy
    #: run against one noisy step would flag half the lab as implausible.
    gain: float | None = None
    past_steps: tuple[float, ...] = ()  # the lab's verified steps, in the same units
    baseline_sd: float = 0.0
    #: Per-run (dev, held-out) pairs of the candidate and of the point it is compared with, when the task has a
    #: held-out evaluation (`[metric] holdout`); None when the check does not apply at this stage.
    holdout: tuple[tuple[Pair, ...], tuple[Pair, ...]] | None = None


def check_candidate(task: Task, m: Measurement) -> list[Finding]:
    """Plausibility (a physical bound, the run's own clock, a gain beyond the lab's history, seed variance that
    collapsed) and the held-out check, as findings."""
    findings = beyond_bound(task, list(m.values))
    if m.gain is not None:
        findings += implausible_gain(task, m.gain, list(m.past_steps))
        findings += variance_collapse(list(m.values), m.baseline_sd)
    for clock in m.clocks:
        findings += time_mismatch(task, clock.reported, clock.measured)
    if m.gain is not None and m.holdout is not None and task.metric.holdout:
        findings += _holdout(task, m.gain, *m.holdout)
    return findings


def _holdout(task: Task, gain: float, candidate: tuple[Pair, ...], incumbent: tuple[Pair, ...]) -> list[Finding]:
    mine = [(dev, held) for dev, held in candidate if dev is not None and held is not None]
    theirs = [(dev, held) for dev, held in incumbent if dev is not None and held is not None]
    if not mine or not theirs or len(mine) < len(candidate) or len(theirs) < len(incumbent):
        return [Finding("holdout_failed", evidence="a held-out evaluation is missing for the candidate or its "
                                                   "incumbent", family="plausibility")]
    return holdout_gap(task, gain, mine, theirs)
