import math

import pytest

from labmind.packs.kernels.campaign import ProblemRow, allocate, report
from labmind.packs.kernels.score import WorkloadResult, campaign_score, fast_p, geomean, problem_score, sol_score


def test_sol_score_anchors():
    assert sol_score(2.0, 2.0, 0.5) == pytest.approx(0.5)  # at the baseline
    assert sol_score(0.5, 2.0, 0.5) == pytest.approx(1.0)  # at speed of light
    assert sol_score(1.0, 2.0, 0.5) == pytest.approx(1 / (1 + 0.5 / 1.5))
    assert sol_score(6.5, 2.0, 0.5) == pytest.approx(0.2)  # 4x the baseline gap above the bound
    assert sol_score(0.25, 2.0, 0.5) > 1.0  # beyond the bound is reported, not clamped


def test_sol_score_degenerate_baseline():
    assert sol_score(0.4, 0.3, 0.5) == 1.0
    assert sol_score(0.6, 0.3, 0.5) == 0.0
    with pytest.raises(ValueError):
        sol_score(float("nan"), 1.0, 0.1)


def test_problem_and_campaign_means_count_failures_as_zero():
    rows = [WorkloadResult("a", True, 1.0, 1.0, 0.0), WorkloadResult("b", False, 0.1, 1.0, 0.0),
            WorkloadResult("c", True, None, 1.0, 0.0)]
    assert problem_score(rows) == pytest.approx(0.5 / 3)
    assert problem_score([]) == 0.0
    assert campaign_score([0.5, 1.0, 0.0]) == pytest.approx(0.5)


def test_fast_p_is_kernelbench_definition():
    correct = [True, True, False, True]
    base = [2.0, 3.0, 10.0, 1.0]
    cand = [1.0, 2.5, 1.0, 1.0]  # speedups 2.0, 1.2, (incorrect), 1.0
    assert fast_p(correct, base, cand, 1.0) == pytest.approx(2 / 4)
    assert fast_p(correct, base, cand, 1.5) == pytest.approx(1 / 4)
    assert fast_p(correct, base, cand, 2.0) == 0.0  # strictly greater than p
    assert fast_p([], [], [], 1.0) == 0.0
    assert math.isclose(geomean([1.0, 4.0]), 2.0)


def test_allocate_follows_headroom_and_drops_small_shares():
    shares = allocate({"a": 0.5, "b": 0.25, "c": 0.25}, 400.0, 50.0)
    assert shares == pytest.approx({"a": 200.0, "b": 100.0, "c": 100.0})
    assert next(iter(shares)) == "a"
    shares = allocate({"a": 0.9, "b": 0.05, "c": 0.05}, 100.0, 30.0)
    assert shares == {"a": 100.0}  # b and c would get 5 s each: dropped, their time goes to a
    assert allocate({"a": 0.5}, 10.0, 60.0) == {}


def test_report_table_and_fast_p():
    rows = [ProblemRow("kb-1", "kernelbench", 0.5, 1.0, lab_baseline=0.5, best=0.7, best_speedup=2.5),
            ProblemRow("kb-2", "kernelbench", 0.4, 0.9), ProblemRow("sol-x", "sol", 0.8, 3.0)]
    text, summary = report(rows, "NVIDIA H100 80GB HBM3")
    assert text.startswith("SOL score on NVIDIA H100 80GB HBM3 (not comparable")
    assert "| kb-1 | kernelbench | 0.500 | 1.000 | 0.500 | 0.700 | 2.500 |" in text
    assert summary["sol_score_final"] == pytest.approx((0.7 + 0.4 + 0.8) / 3)
    assert summary["kernelbench_fast_p_start"][1.0] == 0.0
    assert summary["kernelbench_fast_p_final"][2.0] == pytest.approx(0.5)
