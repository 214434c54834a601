"""Which numbers labmind can summarise, and summaries that never raise on stored values.

A finite float can still break statistics: the square of 1e200 overflows, so a variance, a standard error
or `math.fsum` raises OverflowError. A run printing such a value once would otherwise make every later
summary of it fail, and a lab that recorded it could not be opened again. So metric values are accepted
only up to SUMMARY_LIMIT in magnitude (anything larger is the run's `bad_metric` outcome), and read-only
views (status, report, campaign) summarise stored values with the helpers below, which skip what cannot
be summarised instead of raising.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

#: Largest metric magnitude labmind accepts: its square (1e300) and sums of thousands of squares stay
#: below the float maximum (1.8e308), so means, variances and t-tests over such values cannot overflow.
SUMMARY_LIMIT = 1e150


def summarisable(value: float | None) -> bool:
    """A value the statistics can take: finite and at most SUMMARY_LIMIT in magnitude."""
    return value is not None and math.isfinite(value) and abs(value) <= SUMMARY_LIMIT


def why_unusable(value: float) -> str:
    """Why a metric value is a `bad_metric`, in a sentence for people and brains."""
    if math.isnan(value):
        return "is NaN"
    if math.isinf(value):
        return "is infinite"
    return f"is larger in magnitude than {SUMMARY_LIMIT:g}, which statistics cannot summarise (squares overflow)"


def safe_mean(values: Iterable[float | None]) -> float | None:
    """The mean of the summarisable values, or None when there are none."""
    kept = [float(v) for v in values if summarisable(v)]
    return statistics.fmean(kept) if kept else None


def safe_variance(values: Iterable[float | None]) -> float | None:
    """The sample variance of the summarisable values, or None when fewer than two (or it overflows)."""
    kept = [float(v) for v in values if summarisable(v)]
    if len(kept) < 2:
        return None
    try:
        return statistics.variance(kept)
    except (OverflowError, ValueError):
        return None
