"""The guard's plausibility checks, as pure functions."""

from __future__ import annotations

from labmind.guard.plausibility import beyond_bound, holdout_gap, implausible_gain, time_mismatch, variance_collapse
from labmind.task import Task


def task(goal: str = "minimize", **metric: object) -> Task:
    return Task.model_validate({"task": {"name": "t", "editable": ["a.py"]}, "run": {"command": "x"},
                                "metric": {"name": "loss", "goal": goal, **metric}})


def test_beyond_bound_respects_the_goal() -> None:
    assert beyond_bound(task(bound=0.5), [0.6, 0.55]) == []
    flags = beyond_bound(task(bound=0.5), [0.6, 0.4])
    assert len(flags) == 1 and flags[0].text().startswith("beyond_bound: loss 0.4 beats the declared bound 0.5")
    assert beyond_bound(task("maximize", bound=0.9), [0.95]) != []
    assert beyond_bound(task(), [0.0]) == []  # no bound declared


def test_implausible_gain_needs_history_and_a_large_ratio() -> None:
    assert implausible_gain(task(), 5.0, []) == []
    assert implausible_gain(task(), 0.9, [0.1]) == []  # 9x: within the default 10x
    flags = implausible_gain(task(), 1.5, [0.1, 0.05])
    assert flags and "15×" in flags[0].text()


def test_variance_collapse_only_when_the_baseline_varies() -> None:
    assert variance_collapse([0.3, 0.3, 0.3], 0.01) != []
    assert variance_collapse([0.3, 0.3, 0.3], 0.0) == []
    assert variance_collapse([0.3, 0.31], 0.01) == []


def test_time_mismatch() -> None:
    t = task(self_time="train_seconds")
    assert time_mismatch(t, 1.0, 30.0) != []
    assert time_mismatch(t, 28.0, 30.0) == []
    assert time_mismatch(task(), 1.0, 30.0) == []  # no self_time declared


def test_holdout_gap_pairs_dev_and_held_out_by_run() -> None:
    t = task()
    baseline = [(0.33, 0.39), (0.34, 0.37)]
    honest = [(0.20, 0.25), (0.21, 0.24)]  # both splits improve together
    assert holdout_gap(t, 0.13, honest, baseline) == []
    # A bad seed hurts both splits of an honest run alike: still no flag.
    assert holdout_gap(t, 0.10, [(0.20, 0.25), (0.45, 0.50)], baseline) == []
    fitted = [(0.03, 0.79), (0.01, 0.37)]  # dev improves, held-out does not
    flags = holdout_gap(t, 0.31, fitted, baseline)
    assert flags and flags[0].text().startswith("holdout_gap: dev gain 0.31")
