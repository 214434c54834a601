"""One `±` convention for every figure shown: what the spread is (sd or 95% CI) and the runs behind it."""

from __future__ import annotations

import math
import statistics

import pytest
from scipy import stats

from labmind.figures import bar_text, ci_half_from_sd, dict_figure, figure, figure_text, spread_of
from labmind.judge.stats import summarize


def test_a_mean_shows_its_ci_half_width_and_a_baseline_its_sd() -> None:
    values = [1.02, 1.00, 0.99, 1.03]
    s = summarize(values)
    half = (s.ci_high - s.ci_low) / 2
    assert figure_text(s.mean, s.n, sd=s.sd, ci=[s.ci_low, s.ci_high]) == f"{s.mean:.6g} ± {half:.3g} (95% CI, n=4)"
    assert figure_text(s.mean, s.n, spread="sd", sd=s.sd, ci=[s.ci_low, s.ci_high]) == (
        f"{s.mean:.6g} ± {statistics.stdev(values):.3g} (sd, n=4)")
    # Without a stored interval (brains' briefs), the same half-width comes from the sd and the runs.
    assert ci_half_from_sd(s.sd, s.n) == pytest.approx(half)
    assert ci_half_from_sd(s.sd, s.n) == pytest.approx(stats.t.ppf(0.975, 3) * s.sd / math.sqrt(4))
    assert figure_text(s.mean, s.n, sd=s.sd) == f"{s.mean:.6g} ± {half:.3g} (95% CI, n=4)"


def test_one_run_has_no_spread_and_says_so() -> None:
    s = summarize([1.5])
    assert figure_text(s.mean, 1, sd=s.sd, ci=[s.ci_low, s.ci_high]) == "1.5 (1 run)"
    assert figure_text(s.mean, 1, spread="sd", sd=0.0) == "1.5 (1 run)"
    assert figure_text(None, 0) == "–"
    assert figure_text(2.0, 3) == "2 (n=3)"  # several runs but nothing known of their spread: no ±


def test_short_form_for_tables_and_extras_in_the_label() -> None:
    f = figure(0.9, 3, ci=[0.88, 0.92], extra=["p=0.001"])
    assert (f.value, f.spread, f.label) == ("0.9", "0.02", "95% CI, n=3, p=0.001")
    assert f.text() == "0.9 ± 0.02 (95% CI, n=3, p=0.001)" and f.text(short=True) == "0.9 ± 0.02"
    assert dict_figure({"metric": 0.9, "metric_sd": 0.01, "n_runs": 5}, spread="sd").text() == "0.9 ± 0.01 (sd, n=5)"
    assert spread_of("baseline") == "sd" and spread_of("candidate") == "ci"


def test_the_bar_names_the_minimum_effect_or_says_any_verified_gain() -> None:
    assert bar_text("1%", False, "line 2's incumbent") == (
        "a change counts only if it beats line 2's incumbent by at least 1% on the screening seed (then the line "
        "builds on it) and the gain is verified on fresh seeds")
    auto = bar_text("any verified gain (min_effect auto)", True)
    assert "at least" not in auto and "on the screening seed" in auto and "verified on fresh seeds" in auto


def test_every_verdict_has_a_colour_in_the_report_and_the_dashboard() -> None:
    """`kept` (provisional) included: the plots' colour map, the dashboard's CSS and the chart's draw order."""
    from pathlib import Path

    from labmind.observe.report_plots import COLORS
    from labmind.verdicts import Verdict

    static = Path(__file__).resolve().parents[1] / "src" / "labmind" / "observe" / "web" / "static"
    css, js = (static / "labmind.css").read_text(), (static / "overview.js").read_text()
    for v in Verdict:
        assert v.value in COLORS, v
        assert f"--{v.value}:" in css and f".v-{v.value} " in css, v
        assert f'"{v.value}"' in js, v
