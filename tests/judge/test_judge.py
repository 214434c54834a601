"""The judge's statistics and verdicts."""

from __future__ import annotations

import math
import statistics

import pytest

from labmind.judge import Judge, auto_min_effect, one_sided_welch, summarize
from labmind.task import Task
from labmind.verdicts import Verdict


def make_task(goal: str, constraints: list[str] | None = None, alpha: float = 0.05) -> Task:
    return Task.model_validate({
        "task": {"name": "t", "editable": ["a.py"]},
        "run": {"command": "x"},
        "metric": {"name": "loss", "goal": goal, "constraints": constraints or []},
        "noise": {"alpha": alpha},
    })


# -- summarize ----------------------------------------------------------------------------------


def test_summarize_mean_sd_and_ci() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    s = summarize(values)
    assert s.n == 4
    assert s.mean == pytest.approx(2.5)
    assert s.sd == pytest.approx(statistics.stdev(values))
    assert s.ci_low < s.mean < s.ci_high
    assert s.mean - s.ci_low == pytest.approx(s.ci_high - s.mean)
    # t(0.975, 3) = 3.182446
    assert s.ci_high - s.mean == pytest.approx(3.182446 * s.sd / 2, rel=1e-5)


def test_summarize_wider_interval_at_higher_level() -> None:
    values = [0.9, 1.1, 1.0, 1.05]
    narrow, wide = summarize(values, level=0.8), summarize(values, level=0.99)
    assert wide.ci_low < narrow.ci_low < narrow.mean < narrow.ci_high < wide.ci_high


def test_summarize_single_value_is_degenerate() -> None:
    s = summarize([3.5])
    assert (s.mean, s.sd, s.n, s.ci_low, s.ci_high) == (3.5, 0.0, 1, 3.5, 3.5)


def test_summarize_constant_values() -> None:
    s = summarize([2.0, 2.0, 2.0])
    assert (s.mean, s.sd, s.ci_low, s.ci_high) == (2.0, 0.0, 2.0, 2.0)


def test_summarize_empty_raises() -> None:
    with pytest.raises(ValueError):
        summarize([])


# -- auto_min_effect ----------------------------------------------------------------------------


def test_auto_min_effect_is_twice_the_sd() -> None:
    values = [1.0, 1.2, 0.8, 1.1]
    assert auto_min_effect(values) == pytest.approx(2 * statistics.stdev(values))


def test_auto_min_effect_floor_for_zero_spread() -> None:
    assert auto_min_effect([5.0, 5.0, 5.0]) == pytest.approx(5e-9)
    assert auto_min_effect([0.0, 0.0]) == pytest.approx(1e-9)
    assert auto_min_effect([-300.0, -300.0]) == pytest.approx(3e-7)
    assert auto_min_effect([0.5, 0.5]) == pytest.approx(1e-9)  # floor never below 1e-9
    assert auto_min_effect([5.0, 5.0]) > 0


# -- one-sided Welch ----------------------------------------------------------------------------

NOISY_BASE = [1.00, 1.02, 0.98, 1.01, 0.99]


def test_welch_minimize_clear_improvement() -> None:
    cand = [0.80, 0.82, 0.79, 0.81]
    t = one_sided_welch(cand, NOISY_BASE, sign=-1.0, alpha=0.05)
    assert t.significant
    assert t.p_value < 0.05
    assert t.gain == pytest.approx(statistics.fmean(NOISY_BASE) - statistics.fmean(cand))
    assert t.gain > 0


def test_welch_minimize_worse_is_not_significant() -> None:
    cand = [1.20, 1.22, 1.19, 1.21]
    t = one_sided_welch(cand, NOISY_BASE, sign=-1.0, alpha=0.05)
    assert not t.significant
    assert t.gain < 0
    assert t.p_value > 0.5


def test_welch_maximize_clear_improvement_and_direction() -> None:
    cand = [1.20, 1.22, 1.19, 1.21]
    up = one_sided_welch(cand, NOISY_BASE, sign=1.0, alpha=0.05)
    assert up.significant and up.p_value < 0.05 and up.gain > 0
    down = one_sided_welch(cand, NOISY_BASE, sign=-1.0, alpha=0.05)
    assert not down.significant and down.gain < 0


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_welch_equal_samples_not_significant(sign: float) -> None:
    t = one_sided_welch(list(NOISY_BASE), NOISY_BASE, sign=sign, alpha=0.05)
    assert not t.significant
    assert t.gain == pytest.approx(0.0)
    assert t.p_value == pytest.approx(0.5)


def test_welch_small_gain_in_big_noise_not_significant() -> None:
    base = [1.0, 2.0, 0.5, 1.5]
    cand = [1.1, 2.1, 0.6, 1.6]
    t = one_sided_welch(cand, base, sign=1.0, alpha=0.05)
    assert t.gain > 0
    assert not t.significant
    assert 0.05 < t.p_value < 0.5


def test_welch_alpha_is_respected() -> None:
    base = [1.0, 1.1, 0.9, 1.05, 0.95]
    cand = [1.06, 1.16, 0.96, 1.11, 1.01]
    t = one_sided_welch(cand, base, sign=1.0, alpha=0.5)
    assert 0.05 < t.p_value < 0.5
    assert t.significant
    assert not one_sided_welch(cand, base, sign=1.0, alpha=0.05).significant


@pytest.mark.parametrize(("sign", "cand", "base", "significant"), [
    (1.0, [2.0, 2.0, 2.0], [1.0, 1.0, 1.0], True),
    (1.0, [1.0, 1.0, 1.0], [2.0, 2.0, 2.0], False),
    (-1.0, [1.0, 1.0, 1.0], [2.0, 2.0, 2.0], True),
    (-1.0, [2.0, 2.0, 2.0], [1.0, 1.0, 1.0], False),
    (1.0, [1.0, 1.0], [1.0, 1.0, 1.0], False),
    (1.0, [1.0 + 1e-12], [1.0], True),
])
def test_welch_zero_variance_is_exact(sign: float, cand: list[float], base: list[float],
                                      significant: bool) -> None:
    t = one_sided_welch(cand, base, sign=sign, alpha=0.05)
    assert t.significant is significant
    assert t.p_value == (0.0 if significant else 1.0)


def test_welch_single_candidate_against_noisy_incumbent_is_not_nan() -> None:
    t = one_sided_welch([5.0], NOISY_BASE, sign=1.0, alpha=0.05)
    assert not math.isnan(t.p_value)
    assert 0.0 <= t.p_value <= 1.0


# -- Judge.screen -------------------------------------------------------------------------------

INC_MIN = [1.00, 1.02, 0.98]  # mean 1.0


def test_screen_confirms_when_gain_exceeds_min_effect() -> None:
    judge = Judge(make_task("minimize"), min_effect=0.05)
    s = judge.screen(0.90, {}, INC_MIN)
    assert s.confirm is True
    assert s.verdict is None
    assert s.near_miss is False
    assert "loss 0.9" in s.reason and "minimum effect 0.05" in s.reason


def test_screen_near_miss_when_better_but_below_min_effect() -> None:
    judge = Judge(make_task("minimize"), min_effect=0.05)
    s = judge.screen(0.97, {}, INC_MIN)
    assert s.confirm is False
    assert s.verdict == Verdict.NOT_IMPROVED
    assert s.near_miss is True
    assert "not better by the minimum effect 0.05" in s.reason


def test_screen_gain_equal_to_min_effect_does_not_confirm() -> None:
    judge = Judge(make_task("maximize"), min_effect=0.5)
    s = judge.screen(2.5, {}, [2.0, 2.0])
    assert s.confirm is False
    assert s.near_miss is True


def test_screen_worse_is_not_a_near_miss() -> None:
    judge = Judge(make_task("minimize"), min_effect=0.05)
    s = judge.screen(1.10, {}, INC_MIN)
    assert (s.confirm, s.verdict, s.near_miss) == (False, Verdict.NOT_IMPROVED, False)
    same = judge.screen(1.0, {}, INC_MIN)
    assert same.near_miss is False


def test_screen_respects_maximize() -> None:
    judge = Judge(make_task("maximize"), min_effect=0.05)
    assert judge.screen(1.10, {}, INC_MIN).confirm is True
    assert judge.screen(0.90, {}, INC_MIN).confirm is False


def test_screen_constraint_violation_is_not_improved() -> None:
    judge = Judge(make_task("minimize", ["mem_gb <= 40", "tok_s > 100"]), min_effect=0.05)
    s = judge.screen(0.5, {"mem_gb": 41.0, "tok_s": 500.0}, INC_MIN)
    assert s.confirm is False
    assert s.verdict == Verdict.NOT_IMPROVED
    assert s.near_miss is False
    assert "mem_gb <= 40" in s.reason and "got 41" in s.reason
    s = judge.screen(0.5, {"mem_gb": 10.0, "tok_s": 100.0}, INC_MIN)
    assert s.verdict == Verdict.NOT_IMPROVED and "tok_s > 100" in s.reason
    assert judge.screen(0.5, {"mem_gb": 40.0, "tok_s": 101.0}, INC_MIN).confirm is True


def test_screen_missing_constraint_metric() -> None:
    judge = Judge(make_task("minimize", ["mem_gb <= 40"]), min_effect=0.05)
    s = judge.screen(0.5, {}, INC_MIN)
    assert s.verdict == Verdict.NOT_IMPROVED
    assert "mem_gb" in s.reason and "reported no mem_gb" in s.reason


@pytest.mark.parametrize(("op", "value", "ok"), [
    ("<", 1.0, False), ("<", 0.9, True), (">=", 1.0, True), (">", 1.0, False), ("==", 1.0, True),
    ("!=", 1.0, False), ("<=", 1.1, False),
])
def test_constraint_operators(op: str, value: float, ok: bool) -> None:
    judge = Judge(make_task("minimize", [f"x {op} 1"]), min_effect=0.0)
    assert (judge.constraint_violation({"x": value}) is None) is ok


# -- Judge.decide -------------------------------------------------------------------------------


def test_decide_improved() -> None:
    judge = Judge(make_task("minimize"), min_effect=0.01)
    d = judge.decide([0.80, 0.81, 0.79], [{}] * 3, NOISY_BASE, [])
    assert d.verdict == Verdict.IMPROVED
    assert d.p_value is not None and d.p_value < 0.05
    assert "p=" in d.reason and "< alpha 0.05" in d.reason
    assert d.summary.n == 3
    assert d.summary.mean == pytest.approx(0.80)


def test_decide_inconclusive() -> None:
    judge = Judge(make_task("minimize"), min_effect=0.01)
    d = judge.decide([1.00, 0.99, 1.01], [{}] * 3, NOISY_BASE, [])
    assert d.verdict == Verdict.INCONCLUSIVE
    assert d.p_value is not None and d.p_value >= 0.05
    assert f"p={d.p_value:.3g}" in d.reason and "≥ alpha 0.05" in d.reason


def test_decide_flagged_when_flags_present() -> None:
    judge = Judge(make_task("maximize"), min_effect=0.01)
    flags = ["self_report", "metric_mismatch", "self_report"]
    d = judge.decide([1.50, 1.51, 1.49], [{}] * 3, NOISY_BASE, flags)
    assert d.verdict == Verdict.FLAGGED
    assert d.p_value is not None and d.p_value < 0.05
    assert "p=" in d.reason
    # Reasons reach brains: they say a review is pending, never which checks fired or their evidence.
    assert "2 integrity check(s) hold it for a person's review" in d.reason
    assert "metric_mismatch" not in d.reason and "self_report" not in d.reason


def test_decide_flags_do_not_matter_when_not_significant() -> None:
    judge = Judge(make_task("maximize"), min_effect=0.01)
    d = judge.decide([0.5, 0.51, 0.49], [{}] * 3, NOISY_BASE, ["self_report"])
    assert d.verdict == Verdict.INCONCLUSIVE


def test_decide_uses_task_alpha() -> None:
    base = [1.0, 1.1, 0.9, 1.05, 0.95]
    cand = [1.06, 1.16, 0.96, 1.11, 1.01]
    strict = Judge(make_task("maximize", alpha=0.05), min_effect=0.01).decide(cand, [{}] * 5, base, [])
    loose = Judge(make_task("maximize", alpha=0.5), min_effect=0.01).decide(cand, [{}] * 5, base, [])
    assert strict.verdict == Verdict.INCONCLUSIVE
    assert loose.verdict == Verdict.IMPROVED
    assert "alpha 0.5" in loose.reason


def test_decide_constraint_violation_in_any_confirmation_run() -> None:
    judge = Judge(make_task("minimize", ["mem_gb <= 40"]), min_effect=0.01)
    d = judge.decide([0.80, 0.81, 0.79], [{"mem_gb": 10}, {"mem_gb": 45}, {"mem_gb": 10}], NOISY_BASE, [])
    assert d.verdict == Verdict.NOT_IMPROVED
    assert d.p_value is None
    assert "mem_gb <= 40" in d.reason and "got 45" in d.reason


def test_decide_deterministic_runs() -> None:
    judge = Judge(make_task("minimize"), min_effect=1e-9)
    d = judge.decide([0.5, 0.5, 0.5], [{}] * 3, [0.6, 0.6, 0.6], [])
    assert d.verdict == Verdict.IMPROVED
    assert d.p_value == 0.0
