"""The task gate (the speedrun record's loss rule): a screening run that misses the target is not kept, and a
claim needs the candidate's fresh-seed runs to pass a one-sided t-test of their mean against the bound."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from labmind.judge import Judge, Noise, Scale
from labmind.judge.stats import mean_beyond
from labmind.task import Task, TaskError, load_task

QUIET = Noise(sd=0.01, df=20, r=None, r_pairs=0, outliers=0)


def gated(level: float = 0.01) -> Judge:
    task = Task.model_validate({
        "task": {"name": "t", "editable": ["a.py"]},
        "run": {"command": "x"},
        "metric": {"name": "train_time_s", "goal": "minimize", "secondary": ["val_loss"],
                   "gate": "val_loss < 3.28", "gate_level": level},
    })
    return Judge(task, Scale.LINEAR, task.noise.parsed_min_effect())


def test_mean_beyond_is_the_one_sided_one_sample_t_test() -> None:
    values = [3.275, 3.279, 3.277, 3.276, 3.278, 3.2765]
    expected = stats.ttest_1samp(values, 3.28, alternative="less").pvalue
    assert mean_beyond(values, "<", 3.28) == pytest.approx(expected, rel=1e-9)
    assert mean_beyond([v + 1 for v in values], ">", 4.28) == pytest.approx(
        stats.ttest_1samp([v + 1 for v in values], 4.28, alternative="greater").pvalue, rel=1e-9)
    assert mean_beyond([3.0], "<", 3.28) == 1.0  # one run proves nothing


def test_a_screening_run_that_misses_the_target_is_dropped_whatever_its_time() -> None:
    judge = gated()
    screen = judge.screen([(1, 50.0)], {1: 60.0}, {"val_loss": 3.2812}, QUIET, [])
    assert screen.action == "drop"
    assert "missed the target: val_loss 3.2812, needed < 3.28" in screen.reason
    assert judge.screen([(1, 50.0)], {1: 60.0}, {"val_loss": 3.279}, QUIET, []).action == "keep"
    no_loss = judge.screen([(1, 50.0)], {1: 60.0}, {}, QUIET, [])
    assert no_loss.action == "drop" and "reported no val_loss" in no_loss.reason


def _verify(judge: Judge, losses: list[float], look: int, looks: int) -> str:
    cand = {s: 50.0 + 0.01 * s for s in range(len(losses))}
    ref = {s: 60.0 + 0.01 * s for s in range(len(losses))}
    return judge.verify(cand, ref, QUIET, level=0.05, look=look, looks=looks, paired=False, ref_level=60.0,
                        cand_id=2, ref_id=1, gate_values=losses).result


def test_a_faster_candidate_is_claimed_only_when_its_loss_passes_the_gate() -> None:
    judge = gated()
    passing = [3.276, 3.277, 3.275, 3.2775, 3.276, 3.2765]
    assert _verify(judge, passing, look=5, looks=9) == "claim"
    close = [3.279, 3.2815, 3.278, 3.2805, 3.2795, 3.280]  # mean below 3.28, but not at p < 0.01
    assert mean_beyond(close, "<", 3.28) > 0.01
    assert _verify(judge, close, look=5, looks=9) == "more"  # runs left: add runs
    assert _verify(judge, close, look=9, looks=9) == "undecided"  # none left: nothing is claimed
    reason = judge.verify({s: 50.0 for s in range(6)}, {s: 60.0 for s in range(6)}, QUIET, level=0.05, look=9,
                          looks=9, paired=False, ref_level=60.0, cand_id=2, ref_id=1, gate_values=close).reason
    assert "gate val_loss < 3.28" in reason and "one-sided t-test" in reason


def test_a_task_without_gate_is_judged_as_before() -> None:
    task = Task.model_validate({"task": {"name": "t", "editable": ["a.py"]}, "run": {"command": "x"},
                                "metric": {"name": "loss", "goal": "minimize"}})
    judge = Judge(task, Scale.LINEAR, task.noise.parsed_min_effect())
    cand, ref = {s: 1.0 for s in range(4)}, {s: 2.0 for s in range(4)}
    assert judge.verify(cand, ref, QUIET, level=0.05, look=3, looks=3, paired=False, ref_level=2.0, cand_id=2,
                        ref_id=1).result == "claim"


@pytest.mark.parametrize(("metric", "message"), [
    ({"gate": "val_loss <= 3.28", "secondary": ["val_loss"]}, "expected 'name < number'"),
    ({"gate": "val_loss < 3.28"}, "must also be listed in secondary"),
])
def test_a_bad_gate_is_named(tmp_path, metric: dict, message: str) -> None:
    lines = [f'{k} = {v!r}'.replace("'", '"') for k, v in metric.items()]
    (tmp_path / "labmind.toml").write_text(
        '[task]\nname = "t"\neditable = ["a.py"]\n[run]\ncommand = "x"\n[metric]\nname = "m"\ngoal = "minimize"\n'
        + "\n".join(lines) + "\n")
    with pytest.raises(TaskError, match=message):
        load_task(tmp_path)


def test_the_baseline_against_the_gate() -> None:
    from labmind.judge.gate import baseline_problem, meets

    lower = ("val_loss", "<", 3.28)
    assert baseline_problem([3.30, 3.279, 3.31], lower, "val_loss < 3.28") is None  # one run meeting it is enough
    missed = baseline_problem([3.30, 3.31, None], lower, "val_loss < 3.28")
    assert missed is not None and not missed.no_value
    assert 'target `[metric] gate = "val_loss < 3.28"` in every run (val_loss 3.3, 3.31, none)' in missed.reason
    assert baseline_problem([None, None], lower, "val_loss < 3.28").no_value  # type: ignore[union-attr]
    assert baseline_problem([math.nan, math.inf], lower, "x").no_value  # type: ignore[union-attr]
    # `>` gates, and non-finite values never meet a gate (as on candidates)
    upper = ("accuracy", ">", 0.9)
    assert baseline_problem([0.95], upper, "accuracy > 0.9") is None
    assert baseline_problem([0.5, 0.89], upper, "accuracy > 0.9") is not None
    assert meets(math.inf, ">", 0.9) is None and meets(None, "<", 1.0) is None and meets(0.5, "<", 1.0) is True
    assert baseline_problem([0.5], None, "") is None  # no gate, nothing to check
