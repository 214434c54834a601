"""The lab's noise, estimated from every experiment that has several runs, on the judge's scale.

Two numbers matter: the sd of one run around its experiment's mean, and how strongly two experiments run
on the same seed move together (the seed fixes initialisation and data order). A strong correlation makes
paired comparisons (same seeds) far more powerful than unpaired ones; a weak one makes them worse, so the
design is chosen from this estimate, per task.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from labmind.judge.robust import OUTLIER_K, robust_location

#: Paired designs are used when the measured seed correlation is at least this: below it, the variance of
#: a paired difference (2σ²(1 − r)) is larger than that of an unpaired one against a well-measured reference.
PAIRING_R = 0.5
#: Degrees of freedom of paired differences needed before the correlation is trusted.
MIN_PAIR_DF = 3


@dataclass(frozen=True)
class Noise:
    sd: float  # one run's sd on the scale (pooled over experiments)
    df: int  # degrees of freedom behind `sd`
    r: float | None  # seed correlation between experiments run on the same seed; None until measured
    r_pairs: int  # same-seed pairs behind `r`
    outliers: int  # runs excluded as outliers so far (heavy tails: the judge re-runs extreme screens)

    @property
    def paired(self) -> bool:
        return self.r is not None and self.r >= PAIRING_R

    def describe(self) -> str:
        corr = "not measured yet" if self.r is None else f"{self.r:.2f} over {self.r_pairs} same-seed pairs"
        return f"run sd {self.sd:.3g} (df {self.df}); seed correlation {corr}"


def estimate(groups: list[dict[int, float]], pairs: list[tuple[dict[int, float], dict[int, float]]]) -> Noise:
    """`groups`: each experiment's values by seed (on the scale). `pairs`: (reference, candidate) groups whose
    shared seeds measure the seed correlation."""
    sd, df, outliers = _pooled_sd(groups)
    r, n_pairs = _correlation(pairs, sd)
    return Noise(sd=sd, df=df, r=r, r_pairs=n_pairs, outliers=outliers)


def _pooled_sd(groups: list[dict[int, float]]) -> tuple[float, int, int]:
    """The sd of one run, pooled over experiments. Within an experiment, runs outvoted by a strict majority are
    left out (`robust_location`). Across experiments the pool is built from within-experiment pairwise
    differences ((a − b)/√2 has the run's sd), weighted so that each experiment counts its degrees of freedom;
    a difference beyond OUTLIER_K robust spreads of all of them (two runs, one stalled) is left out too, so it
    cannot inflate everyone's noise. Returns (sd, df, runs or differences left out)."""
    weighted: list[tuple[float, float]] = []  # (difference, weight)
    df_all, left_out = 0, 0
    for group in groups:
        values = list(group.values())
        if len(values) < 2:
            continue
        loc = robust_location(values)
        left_out += len(loc.outliers)
        kept = list(loc.kept)
        n = len(kept)
        if n < 2:
            continue
        df_all += n - 1
        weighted += [((a - b) / math.sqrt(2), 2 / n) for i, a in enumerate(kept) for b in kept[i + 1:]]
    if not weighted:
        return 0.0, 0, left_out
    spread = 1.4826 * statistics.median(abs(d) for d, _ in weighted)
    clean = [(d, w) for d, w in weighted if abs(d) <= OUTLIER_K * spread] if spread > 0 else weighted
    total = sum(w for _, w in clean)
    sd = math.sqrt(sum(w * d * d for d, w in clean) / total) if total else 0.0
    df = max(1, round(df_all * total / sum(w for _, w in weighted)))
    return sd, df, left_out + len(weighted) - len(clean)


def _correlation(pairs: list[tuple[dict[int, float], dict[int, float]]], sd: float) -> tuple[float | None, int]:
    """r = 1 − var(paired difference) / (2 sd²), from comparisons with at least two shared seeds (the
    difference's own mean, the effect, is removed per comparison)."""
    ss, df, n = 0.0, 0, 0
    for ref, cand in pairs:
        shared = sorted(set(ref) & set(cand))
        if len(shared) < 2:
            continue
        diffs = [cand[s] - ref[s] for s in shared]
        mean = statistics.fmean(diffs)
        ss += sum((d - mean) ** 2 for d in diffs)
        df += len(diffs) - 1
        n += len(diffs)
    if df < MIN_PAIR_DF or sd <= 0:
        return None, n
    var_d = ss / df
    return max(-1.0, min(1.0, 1.0 - var_d / (2 * sd * sd))), n
