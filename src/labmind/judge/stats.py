"""Summaries shown to people: mean with a Student-t confidence interval."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True)
class Summary:
    mean: float
    sd: float
    n: int
    ci_low: float
    ci_high: float


def summarize(values: list[float], level: float = 0.95) -> Summary:
    """Mean with a Student-t confidence interval (degenerate for n == 1)."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    if any(not math.isfinite(v) or abs(v) > 1e150 for v in values):
        # Squares of such values overflow; the judge records them as bad_metric instead.
        raise ValueError("a value too large to summarise")
    mean = statistics.fmean(values)
    if n == 1:
        return Summary(mean, 0.0, 1, mean, mean)
    sd = statistics.stdev(values)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return Summary(mean, sd, n, mean - half, mean + half)


def mean_beyond(values: list[float], op: str, bound: float) -> float:
    """One-sided one-sample t-test that the mean is `op` ('<' or '>') `bound`: the p-value of the values if the
    true mean were at the bound (the speedrun record's loss gate). 1.0 with fewer than two values."""
    n = len(values)
    if n < 2:
        return 1.0
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    margin = (bound - mean) if op == "<" else (mean - bound)
    if sd == 0.0:
        return 0.0 if margin > 0 else 1.0
    return float(stats.t.sf(margin / (sd / math.sqrt(n)), n - 1))
