"""How a figure with a spread is written, the same way in every place a person or an agent reads one (the CLI,
`labmind agent` verbs, MCP tools, brains' briefs, the dashboard and the report).

`±` always says what follows it:

- `1.234 ± 0.0021 (95% CI, n=3)`: an estimate of a mean, with the half-width of its 95% Student-t interval. A
  candidate's metric is the mean of its runs (for a verified one, its fresh-seed runs).
- `1.234 ± 0.0040 (sd, n=5)`: how much single runs vary, the standard deviation of the runs. The baseline's spread
  is shown this way: it is the lab's noise, which every comparison is measured against.
- `1.234 (1 run)`: one run has neither, so there is no `±`.

Tables whose header says "± 95% CI" show the short form (`1.234 ± 0.0021`) and the runs in their own column.
The dashboard's templates call these same functions, so its labels cannot drift from the CLI's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from labmind.model import ExperimentKind

Spread = Literal["ci", "sd"]

#: Significant digits of a value and of its spread.
VALUE_DIGITS = 6
SPREAD_DIGITS = 3
#: The confidence level every interval shown is at.
LEVEL = 0.95
CI_LABEL = "95% CI"


def fmt(value: float | None, digits: int = VALUE_DIGITS) -> str:
    """A bare value: `digits` significant digits, "–" when missing (every figure's value and spread, and the
    tables' cells, are written with it)."""
    return "–" if value is None else f"{value:.{digits}g}"


def ci_half(ci: Sequence[float | None] | None) -> float | None:
    """Half the width of an interval `[low, high]`, or None when either end is missing."""
    if not ci or len(ci) < 2 or ci[0] is None or ci[1] is None:
        return None
    return (float(ci[1]) - float(ci[0])) / 2


def ci_half_from_sd(sd: float | None, n: int) -> float | None:
    """The 95% Student-t half-width of a mean of `n` runs with this sd (what the judge's summaries store)."""
    if sd is None or n < 2 or not math.isfinite(sd):
        return None
    from scipy import stats  # only brains' briefs, which carry no interval, need it

    return float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * sd / math.sqrt(n)


@dataclass(frozen=True)
class Figure:
    """A value, its spread and the label that says what the spread is, as text (templates style the parts)."""

    value: str
    spread: str | None  # the number after "±", or None (one run, or nothing to show)
    label: str  # "95% CI, n=3", "sd, n=5", "1 run", "n=3", or "" when nothing is known about the runs

    def text(self, *, short: bool = False) -> str:
        """`value ± spread (label)`; `short` leaves out the label (for a table whose header carries it)."""
        out = self.value if self.spread is None else f"{self.value} ± {self.spread}"
        return out if short or not self.label else f"{out} ({self.label})"


def figure(value: float | None, n: int | None, *, spread: Spread = "ci", sd: float | None = None,
           ci: Sequence[float | None] | None = None, digits: int = VALUE_DIGITS,
           extra: Sequence[str] = ()) -> Figure:
    """One figure. `spread="ci"` shows the 95% CI half-width (from `ci`, else from `sd` and `n`); `"sd"` the sd
    of the runs. `extra` goes into the label after the runs (e.g. "p=0.003")."""
    if value is None:
        return Figure("–", None, ", ".join(extra))
    runs = int(n or 0)
    shown = fmt(value, digits)
    if runs == 1:
        return Figure(shown, None, ", ".join(["1 run", *extra]))
    if runs < 1:
        return Figure(shown, None, ", ".join(extra))
    if spread == "sd":
        half, what = sd, "sd"
    else:
        half, what = ci_half(ci), CI_LABEL
        if half is None:
            half = ci_half_from_sd(sd, runs)
    if half is None or not math.isfinite(half):
        return Figure(shown, None, ", ".join([f"n={runs}", *extra]))
    return Figure(shown, fmt(half, SPREAD_DIGITS), ", ".join([f"{what}, n={runs}", *extra]))


def figure_text(value: float | None, n: int | None, *, spread: Spread = "ci", sd: float | None = None,
                ci: Sequence[float | None] | None = None, digits: int = VALUE_DIGITS, extra: Sequence[str] = (),
                short: bool = False) -> str:
    return figure(value, n, spread=spread, sd=sd, ci=ci, digits=digits, extra=extra).text(short=short)


def spread_of(kind: str | None) -> Spread:
    """The baseline's spread is its sd (the lab's noise); every other experiment's is the CI of its mean."""
    return "sd" if kind == ExperimentKind.BASELINE else "ci"


def row_figure(row: Any, *, digits: int = VALUE_DIGITS, extra: Sequence[str] = ()) -> Figure:
    """A store row (`ExperimentRow` or anything with the same fields)."""
    return figure(row.metric, row.n_runs, spread=spread_of(row.kind), sd=row.metric_sd,
                  ci=[row.ci_low, row.ci_high], digits=digits, extra=extra)


def dict_figure(d: Mapping[str, Any] | None, *, spread: Spread = "ci", digits: int = VALUE_DIGITS,
                extra: Sequence[str] = ()) -> Figure:
    """A dict as `labmind status`, the bench and the dashboard write them: `metric`, `n_runs`, `sd` (or
    `metric_sd`) and `ci` ([low, high])."""
    if not d:
        return Figure("–", None, "")
    sd = d.get("sd", d.get("metric_sd"))
    return figure(d.get("metric"), d.get("n_runs"), spread=spread, sd=sd, ci=d.get("ci"), digits=digits,
                  extra=extra)


def metric_text(d: Mapping[str, Any], spread: Spread = "ci") -> str:
    """An experiment's metric in a sentence: `1.234 ± 0.002 (95% CI, n=4, p=0.003)` from a record, a brief's or a
    brain's past experiment (`PastExperiment.to_dict()`); `spread="sd"` for the baseline (`1.234 ± 0.004 (sd,
    n=5)`); one run is `1.234 (1 run)`; "no metric" when no run gave one."""
    if d.get("metric") is None:
        return "no metric"
    extra = [f"p={fmt(d['p_value'], 2)}"] if d.get("p_value") is not None else []
    return dict_figure(d, spread=spread, extra=extra).text()


# ------------------------------------------------------------------------------------ the minimum effect


def bar_text(min_effect: str, auto: bool, incumbent: str = "its line's incumbent") -> str:
    """What a change must do to count, in one clause (the protocol of `labmind.lab.judging`)."""
    if auto:
        return (f"a change counts only if it beats {incumbent} on the screening seed (then the line builds on it) "
                "and the gain is verified on fresh seeds")
    return (f"a change counts only if it beats {incumbent} by at least {min_effect} on the screening seed (then "
            "the line builds on it) and the gain is verified on fresh seeds")
