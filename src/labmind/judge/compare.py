"""One comparison: a candidate's runs against a reference's runs, by seed, on the judge's scale.

Paired (same seeds, differences per seed) when the lab's measured seed correlation makes that the more
precise design, unpaired (difference of robust means) otherwise. The variance is moderated: the lab's
pooled estimate counts as a prior worth at most `PRIOR_DF` degrees of freedom, and the comparison's own
runs add theirs, so a candidate that is noisier than the lab shows it as soon as it has a few runs.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy import stats

from labmind.judge.noise import Noise
from labmind.judge.robust import robust_location

PRIOR_DF = 10
LEVEL = 0.95


@dataclass(frozen=True)
class Comparison:
    effect: float  # candidate minus reference in 'better' units on the scale (positive = better)
    se: float
    df: int
    paired: bool
    n_cand: int
    n_ref: int
    outliers: tuple[float, ...]  # excluded run values (on the scale), candidate's and reference's
    agreed: bool  # False when a side's runs disagree with no majority (the judge then adds runs)

    @property
    def ci(self) -> tuple[float, float]:
        if self.df <= 0 or not math.isfinite(self.se):
            return (-math.inf, math.inf)
        half = float(stats.t.ppf(0.5 + LEVEL / 2, self.df)) * self.se
        return (self.effect - half, self.effect + half)

    def p_value(self, min_effect: float) -> float:
        """One-sided: the chance of an effect this large if the true effect were only `min_effect`."""
        if self.se == 0.0:
            return 0.0 if self.effect > min_effect else 1.0
        if self.df <= 0 or not math.isfinite(self.se):
            return 1.0
        p = float(stats.t.sf((self.effect - min_effect) / self.se, self.df))
        return 1.0 if math.isnan(p) else p

    @property
    def p_improve(self) -> float:
        """The probability that the candidate is better (flat prior on the effect)."""
        if self.se == 0.0:
            return 1.0 if self.effect > 0 else 0.0
        if self.df <= 0 or not math.isfinite(self.se):
            return 0.5  # no noise estimate yet: nothing is known either way
        return 1.0 - self.p_value(0.0)


def _moderated(local_ss: float, local_df: int, noise: Noise, factor: float) -> tuple[float, int]:
    """Variance and df: the lab's (times `factor`, e.g. 2(1 − r) for a paired difference) as a prior worth
    at most PRIOR_DF df, plus the comparison's own sum of squares."""
    prior_df = min(noise.df, PRIOR_DF)
    prior_var = factor * noise.sd**2
    df = prior_df + local_df
    if df == 0:
        return math.inf, 0
    return (prior_df * prior_var + local_ss) / df, df


def compare(cand: dict[int, float], ref: dict[int, float], noise: Noise, *, sign: float,
            paired: bool | None = None) -> Comparison:
    """`cand` and `ref` map seeds to values on the scale. `paired` forces the design; by default it follows
    the lab's measured correlation."""
    if not cand or not ref:
        raise ValueError("a comparison needs runs on both sides")
    shared = sorted(set(cand) & set(ref))
    use_pairs = (noise.paired if paired is None else paired) and bool(shared)
    if use_pairs:
        diffs = [sign * (cand[s] - ref[s]) for s in shared]
        loc = robust_location(diffs, math.sqrt(2 * max(0.0, 1 - (noise.r or 0.0))) * noise.sd or None)
        kept = list(loc.kept)
        mean = statistics.fmean(kept)
        local_ss = sum((d - mean) ** 2 for d in kept)
        var, df = _moderated(local_ss, len(kept) - 1, noise, 2 * max(0.0, 1 - (noise.r or 0.0)))
        se = math.sqrt(var / len(kept)) if math.isfinite(var) else math.inf
        return Comparison(mean, se, df, True, len(kept), len(kept), loc.outliers, loc.agreed)
    c = robust_location(list(cand.values()), noise.sd or None)
    r = robust_location(list(ref.values()), noise.sd or None)
    local_ss = sum((v - c.value) ** 2 for v in c.kept) + sum((v - r.value) ** 2 for v in r.kept)
    local_df = (len(c.kept) - 1) + (len(r.kept) - 1)
    var, df = _moderated(local_ss, local_df, noise, 1.0)
    se = math.sqrt(var * (1 / len(c.kept) + 1 / len(r.kept))) if math.isfinite(var) else math.inf
    return Comparison(sign * (c.value - r.value), se, df, False, len(c.kept), len(r.kept),
                      c.outliers + r.outliers, c.agreed and r.agreed)
