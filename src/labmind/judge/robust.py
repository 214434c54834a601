"""Robust summaries: a stalled or pre-empted run must not become anyone's value.

A run is an outlier only when a strict majority of its experiment's runs agree with each other and it lies
far from them (in units of the lab's noise). Without such a majority nothing is excluded, and the judge
adds runs instead of guessing which ones to believe.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

#: How far from the majority (in noise sd) a run must be to be called an outlier.
OUTLIER_K = 6.0
#: The smallest noise scale used, so that near-deterministic tasks do not call round-off an outlier.
REL_FLOOR = 1e-6


@dataclass(frozen=True)
class Location:
    value: float  # mean of the runs kept
    kept: tuple[float, ...]
    outliers: tuple[float, ...]
    agreed: bool  # False when the runs disagree and no majority could be found


def _spread(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    med = statistics.median(values)
    return 1.4826 * statistics.median(abs(v - med) for v in values)


def few_runs_factor(n: int) -> float:
    """How much wider the band must be when the only scale is the runs' own median absolute deviation: of five
    Gaussian runs the middle three often sit close together, and a band of OUTLIER_K of their MADs then cuts
    off the other two (about 8% of sets of five; 1.5% of baselines, each then judging every later screen
    against a tenth of the true noise). With this factor a set of Gaussian runs loses a run in under 0.5% of
    baselines, while a stall (tens of noise sds off) is still left out."""
    return max(1.0, 16.0 / (n - 1))


def robust_location(values: list[float], noise_sd: float | None = None) -> Location:
    """Mean of the runs that agree with the majority; the others are named outliers."""
    if not values:
        raise ValueError("no values")
    if len(values) == 2 and noise_sd:
        # Two runs far apart: one of them may be a stall, and two cannot say which.
        apart = abs(values[0] - values[1]) > OUTLIER_K * noise_sd
        return Location(statistics.fmean(values), tuple(values), (), not apart)
    if len(values) < 3 or (noise_sd is None and len(values) < 5):
        # Too few runs to tell a stall from noise without the lab's noise scale.
        return Location(statistics.fmean(values), tuple(values), (), True)
    spread = _spread(values) if len(values) >= 5 else 0.0
    scale = max(noise_sd or 0.0, spread, REL_FLOOR * max(1.0, max(abs(v) for v in values)))
    width = OUTLIER_K * scale * (1.0 if noise_sd else few_runs_factor(len(values)))
    best: list[float] = []
    for centre in sorted(values, key=lambda v: abs(v - statistics.median(values))):
        near = [v for v in values if abs(v - centre) <= width]
        if len(near) > len(best):
            best = near
    if 2 * len(best) <= len(values):
        return Location(statistics.median(values), tuple(values), (), False)
    outliers = tuple(v for v in values if abs(v - statistics.median(best)) > width)
    kept = tuple(v for v in values if v not in outliers)
    return Location(statistics.fmean(kept), kept, outliers, True)
