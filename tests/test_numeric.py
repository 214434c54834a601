"""labmind.numeric: which values statistics can take, and summaries that never raise."""

from __future__ import annotations

import math
import statistics

import pytest

from labmind.numeric import SUMMARY_LIMIT, safe_mean, safe_variance, summarisable, why_unusable


def test_the_limit_keeps_variances_finite() -> None:
    values = [SUMMARY_LIMIT, -SUMMARY_LIMIT] * 500
    assert math.isfinite(statistics.variance(values)) and all(summarisable(v) for v in values)
    with pytest.raises(OverflowError):
        statistics.variance([-1e308, 1.0])  # what a -1e308 metric did to every summary before


@pytest.mark.parametrize(("value", "usable"), [(1.5, True), (-1e150, True), (-1e308, False), (1e151, False),
                                               (math.nan, False), (math.inf, False), (None, False)])
def test_summarisable(value: float | None, usable: bool) -> None:
    assert summarisable(value) is usable


def test_reasons_name_the_problem() -> None:
    assert why_unusable(math.nan) == "is NaN"
    assert why_unusable(-math.inf) == "is infinite"
    assert "larger in magnitude than 1e+150" in why_unusable(-1e308)


def test_safe_summaries_skip_what_they_cannot_take() -> None:
    assert safe_mean([1.0, 3.0, -1e308, math.nan, None]) == 2.0
    assert safe_mean([-1e308]) is None
    assert safe_variance([1.0, 3.0, 1e300]) == 2.0
    assert safe_variance([1.0]) is None
