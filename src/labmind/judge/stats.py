"""Noise, confidence intervals and the one-sided Welch test (scipy)."""

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
    mean = statistics.fmean(values)
    if n == 1:
        return Summary(mean, 0.0, 1, mean, mean)
    sd = statistics.stdev(values)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return Summary(mean, sd, n, mean - half, mean + half)


def auto_min_effect(baseline: list[float]) -> float:
    """Twice the baseline's seed-to-seed spread: a single screening run must clear it before we spend
    confirmation runs. A floor keeps perfectly deterministic tasks from promoting float round-off."""
    s = summarize(baseline)
    return max(2.0 * s.sd, 1e-9 * max(1.0, abs(s.mean)))


@dataclass(frozen=True)
class Test:
    p_value: float
    gain: float  # candidate mean minus incumbent mean, in 'higher is better' units
    significant: bool


def one_sided_welch(candidate: list[float], incumbent: list[float], *, sign: float, alpha: float) -> Test:
    """Is the candidate better than the incumbent? `sign` is +1 when larger values are better."""
    a = [sign * v for v in candidate]
    b = [sign * v for v in incumbent]
    gain = statistics.fmean(a) - statistics.fmean(b)
    var_a = statistics.variance(a) if len(a) > 1 else 0.0
    var_b = statistics.variance(b) if len(b) > 1 else 0.0
    if var_a == 0.0 and var_b == 0.0:
        # Deterministic runs: the t statistic is undefined; the difference is exact.
        p = 0.0 if gain > 0 else 1.0
    else:
        p = float(stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue)
        if math.isnan(p):
            p = 1.0
    return Test(p_value=p, gain=gain, significant=gain > 0 and p < alpha)
