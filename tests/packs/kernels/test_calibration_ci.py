"""Repeated calibration (no GPU needed for these parts): bounds from the median of repeats, the starting
score as a mean with its 95% CI, shown that way by `labmind pack kernels scores`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labmind.packs.kernels.calibrate import merge_calibrations, score_summary, score_text
from labmind.packs.kernels.cli import kernels_app


def _result(t_a: float, t_b: float, passed_b: bool = True) -> dict:
    return {"ok": True, "device": "NVIDIA H100", "cases": [
        {"uuid": "a", "passed": True, "reasons": [], "t_ms": t_a, "flops": 1, "bytes": 1, "split": "seen"},
        {"uuid": "b", "passed": passed_b, "reasons": [] if passed_b else ["mismatch"], "t_ms": t_b, "flops": 1,
         "bytes": 1, "split": "unseen"}]}


def test_bounds_take_the_median_of_repeats_and_a_workload_must_pass_every_time() -> None:
    merged = merge_calibrations([_result(1.0, 2.0), _result(9.0, 2.2), _result(1.2, 2.1, passed_b=False)])
    a, b = merged["cases"]
    assert a["t_ms"] == 1.2 and a["t_runs_ms"] == [1.0, 9.0, 1.2]  # a stalled repeat (9 ms) does not set it
    assert b["t_ms"] == 2.1 and not b["passed"] and b["reasons"] == ["mismatch"]


def test_the_starting_score_has_a_ci_and_says_how_many_runs() -> None:
    row = score_summary([0.52, 0.55, 0.51])
    assert row["sol_score"] == pytest.approx(0.5266667) and row["sol_score_n"] == 3
    low, high = row["sol_score_ci"]
    assert low < row["sol_score"] < high and high - low > 0.05  # t with 2 degrees of freedom is wide
    assert score_text(row) == "0.5267 ± 0.0517 (95% CI, n=3)"
    assert score_text({"sol_score": 0.5}) == "0.5 (1 run)"  # a calibration made before repeats


def test_scores_shows_each_starting_score_with_its_ci(tmp_path: Path) -> None:
    rows = {"p1": {**score_summary([0.52, 0.55, 0.51]), "speedup": 1.0, "passed": 1.0},
            "p2": {"error": "the reference failed"}}
    (tmp_path / "baseline.json").write_text(json.dumps(rows))
    out = CliRunner().invoke(kernels_app, ["scores", str(tmp_path)]).output
    assert "p1: SOL score 0.5267 ± " in out and "(95% CI, n=3)" in out
    assert "p2: not calibrated: the reference failed" in out


def test_the_campaign_table_shows_scores_with_their_ci() -> None:
    from labmind.packs.kernels.campaign import ProblemRow, report

    rows = [ProblemRow("kb-1", "kernelbench", 0.527, 1.0, baseline_ci=[0.475, 0.579], baseline_n=3,
                       lab_baseline=0.5, best=0.7, best_speedup=2.5, best_ci=[0.68, 0.72], best_n=4),
            ProblemRow("kb-2", "kernelbench", 0.4, 0.9)]
    text, _ = report(rows, "NVIDIA H100")
    assert "| kb-1 | kernelbench | 0.527 ± 0.052 (n=3) | 1.000 | 0.500 | 0.700 ± 0.02 (n=4) | 2.500 |" in text
    assert "| kb-2 | kernelbench | 0.400 | 0.900 |" in text  # one calibration: a single value, as before
