"""The knobs brain: discovery, source rewriting, TPE learning and resume."""

from __future__ import annotations

import math
import shutil
import threading
from pathlib import Path

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from labmind.brains.base import BrainError
from labmind.brains.knobs import (
    MARKER,
    PARENT,
    WARM_STARTS,
    KnobsBrain,
    build_space,
    discover,
    scan_file,
    transfer,
    write_values,
)
from labmind.library import Insight, Kind, KnobChange, Provenance
from labmind.model import PastExperiment

from .brainkit import BASELINE, make_ctx, make_task, past

SOURCE = '''"""A toy training script."""
import os

LR = 3e-4  # learning rate
HIDDEN: int = 64
USE_BN = True
DROPOUT = 0.1
lowercase = 5
_PRIVATE = 3
COMPUTED = 2 * 3
OPTIM = "adam"
ZERO = 0
NEG = -1.5
A = B = 4
PATH = os.environ.get("X", "y")


def f():
    INNER = 3
    return INNER
'''


def write(tmp_path: Path, text: str = SOURCE, name: str = "train.py") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text(text)
    return tmp_path


def test_discovers_top_level_upper_case_literals(tmp_path: Path) -> None:
    knobs, ambiguous = discover(write(tmp_path), ["train.py"])
    values = {n: k.value for n, k in knobs.items()}
    assert values == {
        "LR": 3e-4, "HIDDEN": 64, "USE_BN": True, "DROPOUT": 0.1, "OPTIM": "adam", "ZERO": 0, "NEG": -1.5,
    }  # fmt: skip
    assert {"COMPUTED", "PATH"} <= ambiguous  # assigned to non-literals: never edited


def test_inferred_space_defaults(tmp_path: Path) -> None:
    space = build_space(make_task(), *discover(write(tmp_path), ["train.py"]))
    assert set(space) == {"LR", "HIDDEN", "USE_BN", "DROPOUT"}  # strings, 0 and negatives left alone
    assert space["LR"] == FloatDistribution(3e-5, 3e-3, log=True)
    assert space["HIDDEN"] == IntDistribution(16, 256, log=True)
    assert space["USE_BN"] == CategoricalDistribution([True, False])


def test_small_int_range_is_linear_and_at_least_one(tmp_path: Path) -> None:
    space = build_space(make_task(), *discover(write(tmp_path, "LAYERS = 2\n"), ["train.py"]))
    assert space["LAYERS"] == IntDistribution(1, 8, log=False)


def test_declared_knobs_replace_inferred_ones(tmp_path: Path) -> None:
    task = make_task(
        knobs={
            "LR": {"low": 1e-5, "high": 1e-2, "log": True},
            "OPTIM": {"choices": ["adam", "sgd"]},
            "NEG": {"low": -3, "high": -0.1},
            "HIDDEN": {"low": 16, "high": 256},  # int literal + integral bounds: searched as int
        }
    )
    space = build_space(task, *discover(write(tmp_path), ["train.py"]))
    assert set(space) == {"LR", "OPTIM", "NEG", "HIDDEN"}
    assert space["LR"] == FloatDistribution(1e-5, 1e-2, log=True)
    assert space["OPTIM"] == CategoricalDistribution(["adam", "sgd"])
    assert space["NEG"] == FloatDistribution(-3, -0.1)
    assert space["HIDDEN"] == IntDistribution(16, 256)


@pytest.mark.parametrize("name", ["MISSING", "COMPUTED", "lowercase"])
def test_declared_knob_that_is_not_a_literal_is_an_error(tmp_path: Path, name: str) -> None:
    task = make_task(knobs={name: {"low": 1, "high": 2}})
    with pytest.raises(BrainError, match=name):
        build_space(task, *discover(write(tmp_path), ["train.py"]))


def test_string_knob_needs_choices(tmp_path: Path) -> None:
    task = make_task(knobs={"OPTIM": {"low": 1, "high": 2}})
    with pytest.raises(BrainError, match="OPTIM"):
        build_space(task, *discover(write(tmp_path), ["train.py"]))


def test_rewrite_changes_only_the_literals(tmp_path: Path) -> None:
    # Non-ASCII text before a knob on the same line checks that byte offsets are used correctly.
    text = SOURCE + 'GREETING = "héllo wörld"; SCALE = 2.0  # ünïcode\n'
    path = write(tmp_path, text) / "train.py"
    knobs, _ = discover(tmp_path, ["train.py"])
    new = {"LR": 0.001234, "HIDDEN": 128, "OPTIM": "sgd", "NEG": -2.5, "USE_BN": False, "SCALE": 1e-05}
    write_values(knobs, new)
    expected = (
        text.replace("LR = 3e-4", "LR = 0.001234")
        .replace("HIDDEN: int = 64", "HIDDEN: int = 128")
        .replace('OPTIM = "adam"', 'OPTIM = "sgd"')
        .replace("NEG = -1.5", "NEG = -2.5")
        .replace("USE_BN = True", "USE_BN = False")
        .replace("SCALE = 2.0", "SCALE = 1e-05")
    )
    assert path.read_text() == expected
    literals, _ = scan_file(path)
    assert {lit.name: lit.value for lit in literals if lit.name in new} == new


def test_float_knob_written_as_float_even_when_integral(tmp_path: Path) -> None:
    write(tmp_path, "WD = 0.5\n")
    knobs, _ = discover(tmp_path, ["train.py"])
    write_values(knobs, {"WD": 3.0})
    assert (tmp_path / "train.py").read_text() == "WD = 3.0\n"


def test_propose_edits_files_and_describes_the_change(tmp_path: Path) -> None:
    task_dir = write(tmp_path, "LR = 0.01\nLAYERS = 4\nNOTE = 'x'\n")
    brain = KnobsBrain(make_task(), seed=1)
    idea = brain.propose(make_ctx(make_task(), task_dir))
    assert idea.params[MARKER] == "knobs"
    assert set(idea.params) == {MARKER, "LR", "LAYERS", PARENT}
    assert idea.params[PARENT] == {"LR": 0.01, "LAYERS": 4}  # where each knob moved from (for insights)
    assert idea.title.startswith("set ")
    knobs, _ = discover(task_dir, ["train.py"])
    assert {n: knobs[n].value for n in ("LR", "LAYERS")} == {n: idea.params[n] for n in ("LR", "LAYERS")}
    changed = [part.split("=")[0] for part in idea.title.removeprefix("set ").split(", ")]
    assert changed and all(n in ("LR", "LAYERS") for n in changed)
    assert (tmp_path / "train.py").read_text().endswith("NOTE = 'x'\n")
    # knobs it cannot search without a range are named, not skipped in silence
    assert "Not searched: NOTE='x'" in idea.rationale and "[knobs]" in idea.rationale


def test_a_knob_at_zero_is_named_as_not_searched(tmp_path: Path) -> None:
    task_dir = write(tmp_path, "LR = 0.01\nWEIGHT_DECAY = 0.0\n")
    idea = KnobsBrain(make_task(), seed=1).propose(make_ctx(make_task(), task_dir))
    assert "WEIGHT_DECAY" not in idea.params
    assert "Not searched: WEIGHT_DECAY=0.0 (no default range from a zero" in idea.rationale


def test_empty_space_is_an_error(tmp_path: Path) -> None:
    task_dir = write(tmp_path, "name = 1\nX = 'a'\n")
    with pytest.raises(BrainError, match="nothing to search"):
        KnobsBrain(make_task(), seed=0).propose(make_ctx(make_task(), task_dir))


# -------------------------------------------------------------------------------------- learning

OBJECTIVE_SOURCE = "X = 1.0\nY = 16\nZ = 0.5\n"


def objective(task_dir: Path) -> float:
    """A smooth bowl with its minimum at X=3, Y=40, Z=0.2 (log scales)."""
    knobs, _ = discover(task_dir, ["train.py"])
    x, y, z = (knobs[n].value for n in ("X", "Y", "Z"))
    return (
        (math.log10(x) - math.log10(3)) ** 2
        + (math.log2(y) - math.log2(40)) ** 2 / 4
        + (math.log10(z) - math.log10(0.2)) ** 2
    )


def run_search(brain: KnobsBrain, task_dir: Path, n: int, start_id: int = 1) -> list[PastExperiment]:
    """Propose/learn sequentially, always from the baseline's code (a fresh copy each time)."""
    task = make_task()
    results = []
    for exp_id in range(start_id, start_id + n):
        (task_dir / "train.py").write_text(OBJECTIVE_SOURCE)
        idea = brain.propose(make_ctx(task, task_dir, experiment_id=exp_id))
        result = PastExperiment(
            id=exp_id, line_id=0, parent_id=0, idea=idea, verdict="not_improved", reason="",
            metric=objective(task_dir), metric_sd=None, n_runs=1,
        )  # fmt: skip
        brain.learn(result)
        results.append(result)
    return results


def baseline_result(task_dir: Path) -> PastExperiment:
    (task_dir / "train.py").write_text(OBJECTIVE_SOURCE)
    return past(0, parent_id=None, metric=objective(task_dir))


def test_tpe_learns_a_synthetic_objective(tmp_path: Path) -> None:
    task_dir = write(tmp_path, OBJECTIVE_SOURCE)
    brain = KnobsBrain(make_task(), seed=7)
    brain.learn(baseline_result(task_dir))
    results = run_search(brain, task_dir, 30)
    metrics = [r.metric for r in results if r.metric is not None]
    random_start = sum(metrics[:4]) / 4
    best = min(metrics)
    assert best < 0.2 * random_start, (best, random_start)
    assert best < min(metrics[:4])
    # Every proposal changed something (exact repeats of the parent are re-asked).
    assert all(r.idea.title.startswith("set ") for r in results)
    assert brain.n_trials >= 31  # the baseline plus one trial per proposal


def test_baseline_is_told_as_a_completed_trial(tmp_path: Path) -> None:
    task_dir = write(tmp_path, OBJECTIVE_SOURCE)
    brain = KnobsBrain(make_task(), seed=0, anchor_dir=task_dir)
    brain.learn(baseline_result(task_dir))
    (trial,) = brain.study.trials
    assert trial.state == TrialState.COMPLETE
    assert trial.params == {"X": 1.0, "Y": 16, "Z": 0.5}


def test_failures_are_told_as_failed_trials(tmp_path: Path) -> None:
    task_dir = write(tmp_path, OBJECTIVE_SOURCE)
    brain = KnobsBrain(make_task(), seed=0)
    for exp_id, verdict in enumerate(["crashed", "no_change", "flagged", "improved"], start=1):
        idea = brain.propose(make_ctx(make_task(), task_dir, experiment_id=exp_id))
        metric = float("nan") if verdict == "crashed" else 0.5
        brain.learn(past(exp_id, params=idea.params, verdict=verdict, metric=metric))
    states = [t.state for t in brain.study.trials]
    assert states == [TrialState.FAIL] * 3 + [TrialState.COMPLETE]


@pytest.mark.parametrize("anchored", [True, False])
def test_resume_rebuilds_the_study_from_past_experiments(tmp_path: Path, anchored: bool) -> None:
    task_dir = write(tmp_path / "wt", OBJECTIVE_SOURCE)
    original = write(tmp_path / "orig", OBJECTIVE_SOURCE)
    first = KnobsBrain(make_task(), seed=3)
    base = baseline_result(task_dir)
    first.learn(base)
    history = [base, *run_search(first, task_dir, 8)]
    history.append(past(99, title="an llm edit", metric=0.0))  # another brain's: ignored
    crashed = history[3]
    history[3] = PastExperiment(**{**crashed.__dict__, "verdict": "crashed", "metric": None})

    second = KnobsBrain(make_task(), seed=3, anchor_dir=original if anchored else None)
    for result in history:
        second.learn(result)
    if not anchored:
        assert second.n_trials == 0  # kept until the first proposal shows the search space
        (task_dir / "train.py").write_text(OBJECTIVE_SOURCE)
        second.propose(make_ctx(make_task(), task_dir, experiment_id=100, parent=BASELINE))
        assert second.n_trials == 10
    else:
        assert second.n_trials == 9
    done = second.study.trials[:9]
    assert sum(t.state == TrialState.FAIL for t in done) == 1
    assert {t.params["Y"] for t in done} == {r.idea.params.get("Y", 16) for r in history[:9]}
    measured = [r.metric for r in history[:9] if r.metric is not None]
    assert second.study.best_value == pytest.approx(min(measured))
    second.learn(history[0])  # learning the same experiment twice changes nothing
    assert len(second.study.trials) == (9 if anchored else 10)


def test_concurrent_proposals_and_learning(tmp_path: Path) -> None:
    dirs = [write(tmp_path / f"wt{i}", OBJECTIVE_SOURCE) for i in range(4)]
    brain = KnobsBrain(make_task(), seed=0, anchor_dir=dirs[0])
    brain.learn(baseline_result(dirs[0]))
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(5):
                exp_id = 1 + i * 10 + j
                idea = brain.propose(make_ctx(make_task(), dirs[i], experiment_id=exp_id))
                brain.learn(past(exp_id, params=idea.params, metric=objective(dirs[i])))
        except BaseException as exc:  # reported below: a thread's exception would be lost
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(t.state == TrialState.COMPLETE for t in brain.study.trials) >= 21


def test_declared_space_is_respected(tmp_path: Path) -> None:
    task = make_task(knobs={"X": {"low": 0.5, "high": 2.0}, "Y": {"low": 10, "high": 20, "int": True}})
    task_dir = write(tmp_path, OBJECTIVE_SOURCE)
    brain = KnobsBrain(task, seed=0)
    for exp_id in range(1, 8):
        idea = brain.propose(make_ctx(task, task_dir, experiment_id=exp_id))
        assert set(idea.params) == {MARKER, PARENT, "X", "Y"}
        assert 0.5 <= idea.params["X"] <= 2.0 and 10 <= idea.params["Y"] <= 20
        assert isinstance(idea.params["Y"], int)
        brain.learn(past(exp_id, params=idea.params, metric=idea.params["X"]))
    assert (task_dir / "train.py").read_text().endswith("Z = 0.5\n")  # undeclared: never touched


def test_copy_is_independent(tmp_path: Path) -> None:
    # Worktrees are separate copies: proposing in one never edits another.
    a = write(tmp_path / "a", OBJECTIVE_SOURCE)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    KnobsBrain(make_task(), seed=0).propose(make_ctx(make_task(), a))
    assert (b / "train.py").read_text() == OBJECTIVE_SOURCE


def knob_insight(iid: int, *moves: KnobChange, kind: Kind = Kind.INSIGHT) -> Insight:
    return Insight(key=f"k{iid}", kind=kind, title=f"insight {iid}", body="", task="other", family="f",
                   provenance=Provenance(lab="other", lab_dir="/other", experiments=(1,)), knobs=moves, id=iid)


def test_transfer_takes_the_value_where_the_start_matches_and_the_factor_elsewhere() -> None:
    lr = FloatDistribution(1e-4, 1e-1, log=True)
    assert transfer(KnobChange("LR", 0.001, 0.004), 0.001, lr) == 0.004
    assert transfer(KnobChange("LR", 0.001, 0.004), 0.002, lr) == pytest.approx(0.008)
    assert transfer(KnobChange("LR", 0.001, 1.0), 0.01, lr) == 0.1  # clipped into this task's range
    layers = IntDistribution(1, 16)
    assert transfer(KnobChange("LAYERS", 4, 6), 8, layers) == 12
    assert transfer(KnobChange("ACT", "relu", "gelu"), "relu", CategoricalDistribution(["relu", "gelu"])) == "gelu"
    assert transfer(KnobChange("ACT", "relu", "swish"), "relu", CategoricalDistribution(["relu", "gelu"])) is None


def test_the_first_proposals_warm_start_from_library_insights_once_each(tmp_path: Path) -> None:
    from dataclasses import replace

    task_dir = write(tmp_path, "LR = 0.01\nLAYERS = 4\n")
    brain = KnobsBrain(make_task(), seed=1)
    insights = (knob_insight(7, KnobChange("LR", 0.01, 0.03)),
                knob_insight(8, KnobChange("DROPOUT", 0.1, 0.0)),  # a knob this task lacks: skipped
                knob_insight(9, KnobChange("LAYERS", 4, 8)),
                knob_insight(10, KnobChange("LR", 0.01, 0.001), kind=Kind.DEAD_END))  # dead ends are no seeds
    ctx = replace(make_ctx(make_task(), task_dir), insights=insights)
    first = brain.propose(ctx)
    assert first.params["applies"] == [7] and first.params["LR"] == 0.03 and first.params["LAYERS"] == 4
    assert "insight #7" in first.rationale
    write(tmp_path, "LR = 0.01\nLAYERS = 4\n")
    second = brain.propose(replace(ctx, experiment_id=ctx.experiment_id + 1))
    assert second.params["applies"] == [9] and second.params["LAYERS"] == 8 and second.params["LR"] == 0.01
    write(tmp_path, "LR = 0.01\nLAYERS = 4\n")
    third = brain.propose(replace(ctx, experiment_id=ctx.experiment_id + 2))
    assert "applies" not in third.params  # TPE's own from here on
    assert WARM_STARTS >= 2


def test_warm_starts_try_one_move_at_a_time_largest_first(tmp_path: Path) -> None:
    from dataclasses import replace

    task_dir = write(tmp_path, "LR = 0.01\nLAYERS = 4\n")
    brain = KnobsBrain(make_task(), seed=1)
    both = knob_insight(5, KnobChange("LAYERS", 4, 6), KnobChange("LR", 0.01, 0.1))  # LR: ×10, LAYERS: ×1.5
    ctx = replace(make_ctx(make_task(), task_dir), insights=(both,))
    first = brain.propose(ctx)
    assert first.params["applies"] == [5] and first.params["_warm_knob"] == "LR"
    assert (first.params["LR"], first.params["LAYERS"]) == (0.1, 4)  # only the largest move
    write(tmp_path, "LR = 0.01\nLAYERS = 4\n")
    second = brain.propose(replace(ctx, experiment_id=ctx.experiment_id + 1))
    assert second.params["_warm_knob"] == "LAYERS" and (second.params["LR"], second.params["LAYERS"]) == (0.01, 6)
    # A resumed brain learns which moves were tried and does not try them again.
    fresh = KnobsBrain(make_task(), seed=1, anchor_dir=task_dir)
    for i, idea in enumerate((first, second), start=2):
        fresh.learn(past(i, parent_id=1, title=idea.title, params=idea.params))
    write(tmp_path, "LR = 0.01\nLAYERS = 4\n")
    assert "applies" not in fresh.propose(replace(ctx, experiment_id=9)).params
