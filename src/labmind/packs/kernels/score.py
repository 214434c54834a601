"""Scores of the kernels pack: SOL-ExecBench's SOL score and KernelBench's fast_p.

Pure functions over latencies (milliseconds), so they are tested without a GPU. The formulas are the
benchmarks' own definitions, restated here:

- SOL score of one workload: S = 1 / (1 + (T_k - T_SOL) / (T_b - T_SOL)). S = 0.5 at the baseline T_b,
  1.0 at the speed-of-light bound T_SOL; a failed workload scores 0. When the baseline is already at or
  below the bound (T_b <= T_SOL) the formula has no range, and S is 1 if T_k <= T_SOL else 0.
- A problem's score is the mean over its workloads; a campaign's is the mean over its problems.
- KernelBench fast_p: the fraction of *all* problems that are correct and have speedup > p, where
  speedup = T_baseline / T_k.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def sol_score(t_k: float, t_b: float, t_sol: float) -> float:
    """One workload's SOL score. Not clamped above 1: a value > 1 means faster than the bound, which the
    evaluator reports as a violation rather than hiding it."""
    for name, value in (("t_k", t_k), ("t_b", t_b), ("t_sol", t_sol)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite, non-negative latency, got {value!r}")
    if t_b - t_sol <= 0:
        return 1.0 if t_k <= t_sol else 0.0
    return 1.0 / (1.0 + (t_k - t_sol) / (t_b - t_sol))


@dataclass(frozen=True)
class WorkloadResult:
    """What one workload scored; `passed` False means it failed correctness or an integrity check."""

    uuid: str
    passed: bool
    t_k: float | None  # candidate latency (ms); None when it failed before timing
    t_b: float
    t_sol: float
    reason: str = ""

    @property
    def score(self) -> float:
        if not self.passed or self.t_k is None:
            return 0.0
        return sol_score(self.t_k, self.t_b, self.t_sol)


def problem_score(results: Sequence[WorkloadResult]) -> float:
    """Mean of the workloads' scores (failures count 0); 0 for a problem with no results."""
    return statistics.fmean(r.score for r in results) if results else 0.0


def campaign_score(problem_scores: Iterable[float]) -> float:
    """Mean over problems; a problem that was not run must be passed in as 0."""
    scores = list(problem_scores)
    return statistics.fmean(scores) if scores else 0.0


def fast_p(correct: Sequence[bool], t_baseline: Sequence[float], t_k: Sequence[float], p: float) -> float:
    """KernelBench's fast_p: correct problems with speedup > p, divided by all problems."""
    if not (len(correct) == len(t_baseline) == len(t_k)):
        raise ValueError("correct, t_baseline and t_k must have one entry per problem")
    n = len(correct)
    if n == 0:
        return 0.0
    fast = sum(1 for ok, b, k in zip(correct, t_baseline, t_k, strict=True) if ok and k > 0 and b / k > p)
    return fast / n


def geomean(values: Iterable[float]) -> float:
    vals = [v for v in values if v > 0]
    return math.exp(statistics.fmean(math.log(v) for v in vals)) if vals else 0.0
