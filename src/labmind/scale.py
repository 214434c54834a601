"""The scale a metric is judged on, and the minimum effect on that scale.

Times, throughputs and most losses have noise that grows with their value: a 5% gain on a 0.3 ms kernel
is as real as a 5% gain on a 30 ms one. Such metrics are judged on a log scale, where an effect is a
ratio; metrics that can be zero or negative stay linear.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum


class Scale(StrEnum):
    LINEAR = "linear"
    LOG = "log"


def choose_scale(configured: str, baseline: list[float]) -> tuple[Scale, str]:
    """`[metric] scale`, or from the baseline when "auto": log when every baseline value is positive."""
    if configured == Scale.LOG:
        if any(v <= 0 for v in baseline):
            raise ValueError("[metric] scale = \"log\" needs positive values, but the baseline printed "
                             f"{min(baseline):g}; use scale = \"linear\"")
        return Scale.LOG, "log (set in [metric] scale)"
    if configured == Scale.LINEAR:
        return Scale.LINEAR, "linear (set in [metric] scale)"
    if baseline and all(v > 0 for v in baseline):
        return Scale.LOG, "log (auto: every baseline value is positive, so effects are judged as ratios)"
    return Scale.LINEAR, "linear (auto: the baseline has values ≤ 0)"


def to_scale(scale: Scale, value: float) -> float:
    if scale is Scale.LOG:
        if value <= 0:
            raise ValueError(f"{value:g} is not positive, so it has no place on a log scale")
        return math.log(value)
    return value


def from_scale(scale: Scale, value: float) -> float:
    return math.exp(value) if scale is Scale.LOG else value


def effect_text(scale: Scale, effect: float, sign: float, *, digits: int = 3) -> str:
    """A 'better' effect as the change it makes to the metric itself, the way every summary shows a change:
    relative on a log scale ("-3.25%" for a loss that fell), in the metric's units on a linear one. `sign`: +1
    when larger is better, -1 when smaller is (`Task.sign`)."""
    change = sign * effect  # the change on the scale itself
    if scale is Scale.LOG:
        return f"{100 * math.expm1(change):+.{digits}g}%"
    return f"{change:+.{digits}g}"


def effect_with_ci_text(scale: Scale, effect: float, sign: float, low: float | None = None,
                        high: float | None = None) -> str:
    """`effect_text` with its direction said ("better"/"worse") and, when given, its 95% CI, both ends in the same
    units (the CI of a 'better' effect, turned into the metric's change; its ends swap when smaller is better).
    Ends given but not finite: the CI is said to be unavailable."""
    word = "better" if effect > 0 else "worse" if effect < 0 else "no change"
    text = f"{effect_text(scale, effect, sign)} ({word}"
    if low is not None and high is not None:
        if math.isfinite(low) and math.isfinite(high):
            a, b = sorted((sign * low, sign * high))
            text += f"; 95% CI {effect_text(scale, a, 1.0)} to {effect_text(scale, b, 1.0)}"
        else:
            text += "; 95% CI not available: no noise estimate yet"
    return text + ")"


_PERCENT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*%\s*$")


@dataclass(frozen=True)
class MinEffect:
    """`[noise] min_effect`: "auto" (any gain the judge can verify), an absolute amount in the metric's units,
    or a percentage of the value it is compared with."""

    kind: str  # auto | absolute | relative
    value: float = 0.0  # metric units (absolute) or a fraction (relative: 0.01 for "1%")

    @classmethod
    def parse(cls, raw: str | float) -> MinEffect:
        if isinstance(raw, str):
            if raw == "auto":
                return cls("auto")
            m = _PERCENT.match(raw)
            if not m:
                raise ValueError(f"expected \"auto\", a number or a percentage such as \"1%\", got {raw!r}")
            fraction = float(m.group(1)) / 100
            if not math.isfinite(fraction) or not 0 <= fraction < 1:
                raise ValueError(f"a percentage min_effect must be in [0%, 100%), got {raw!r}")
            return cls("relative", fraction)
        value = float(raw)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"expected a finite number ≥ 0, got {raw!r}")
        return cls("absolute", value)

    def on_scale(self, scale: Scale, reference: float, sign: float) -> float:
        """The minimum effect in 'better' units on the scale, for a comparison against `reference` (a metric
        value). A floor keeps deterministic tasks from promoting float round-off. Infinite when an absolute
        amount cannot be reached from this reference (e.g. 454 ms less than a 0.3 ms incumbent)."""
        floor = 1e-9 if scale is Scale.LOG else 1e-9 * max(1.0, abs(reference))
        if self.kind == "auto":
            return floor
        if self.kind == "relative":
            target = reference * (1 + sign * self.value) if reference >= 0 else reference * (1 - sign * self.value)
        else:
            target = reference + sign * self.value
        if scale is Scale.LOG:
            if target <= 0:
                return math.inf
            return max(floor, sign * (math.log(target) - math.log(reference)))
        return max(floor, sign * (target - reference))

    def in_units(self, reference: float, sign: float) -> float:
        """The same minimum effect in the metric's own units at `reference` (what brains are told)."""
        if self.kind == "auto":
            return 0.0
        if self.kind == "relative":
            return abs(reference) * self.value
        return self.value

    def text(self) -> str:
        if self.kind == "auto":
            return "any verified gain (min_effect auto)"
        if self.kind == "relative":
            return f"{100 * self.value:g}%"
        return f"{self.value:g}"
