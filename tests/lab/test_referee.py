"""The referee on a real store, its runs recorded by hand: the line bookkeeping that a real lab reaches only
through its scheduler's timing (siblings racing for a line, steps kept while their parent is verified), and
values the judge's scale cannot hold."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labmind.lab.judging import Referee
from labmind.lab.ledger import Ledger
from labmind.paths import LabPaths
from labmind.store import ExperimentRow, Store
from labmind.task import Task

BASELINE = (1.00, 1.01, 0.99)


class Host:
    def __init__(self) -> None:
        self.notes: list[tuple[str, str]] = []
        self.verdicts: list[tuple[int, str | None, str | None]] = []
        self.left: int | None = None  # what experiments_left answers

    def event(self, kind: str, message: str) -> None:
        self.notes.append((kind, message))

    def verdict_given(self, exp: ExperimentRow, promoted: bool, previous: str | None) -> None:
        self.verdicts.append((exp.id, exp.verdict, previous))

    def baseline_measured(self, exp: ExperimentRow) -> None:
        pass

    def experiments_left(self) -> int | None:
        return self.left


class Lab:
    """A store, a referee and a hand that runs whatever the referee queues, with values from `value`."""

    def __init__(self, root: Path, metric: dict[str, Any] | None = None) -> None:
        self.task = Task.model_validate({
            "task": {"name": "t", "editable": ["a.py"]}, "run": {"command": "x"},
            "metric": {"name": "loss", "goal": "minimize", **(metric or {})}, "noise": {"confirm_seeds": 3}})
        self.store = Store.open(root / ".labmind" / "lab.db")
        self.store.create_lab(name="t", task_json=self.task.model_dump_json(), repo_root=str(root), task_subdir="",
                              base_commit="c0", branch="labmind/t", settings={})
        self.base = self.store.add_experiment(kind="baseline", line_id=None, parent_id=None, brain="",
                                              base_commit="c0", status="testing")
        self.store.update_experiment(self.base, commit_sha="c0")
        self.store.update_lab(baseline_id=self.base)
        self.line = self.store.add_line("line-1", self.base)
        for seed in range(len(BASELINE)):
            self.store.add_run(experiment_id=self.base, purpose="baseline", seed=seed)
        self.host = Host()
        self.referee = Referee(Ledger(self.store, self.task, self.host), self.task, LabPaths(root), host=self.host)
        self.values: dict[int, Callable[[int], float]] = {self.base: lambda seed: BASELINE[seed % 3]}
        self.run_queued()
        assert self.referee.judge is not None

    def candidate(self, parent: int, value: Callable[[int], float]) -> int:
        exp = self.store.add_experiment(kind="candidate", line_id=self.line, parent_id=parent, brain="b",
                                        base_commit="c", status="testing")
        self.store.update_experiment(exp, commit_sha=f"c{exp}")
        self.referee.refresh(exp)
        self.values[exp] = value
        self.referee.advance(exp)  # queues its screening run
        return exp

    def run_queued(self, only: int | None = None, purpose: str | None = None) -> None:
        """Run every queued run (or only those of exp `only`, or for `purpose`), then let the referee take its
        next steps."""
        while True:
            queued = [r for r in self.store.runs(status="queued") if (only is None or r.experiment_id == only)
                      and (purpose is None or r.purpose == purpose)]
            if not queued:
                return
            for run in queued:
                now = time.time()
                self.store.update_run(run.id, status="done", outcome="ok", exit_code=0, started_at=now, ended_at=now,
                                      metric=self.values[run.experiment_id](run.seed))
            for exp_id in sorted({r.experiment_id for r in queued}):
                self.referee.advance(exp_id)

    def exp(self, exp_id: int) -> ExperimentRow:
        return self.store.experiment(exp_id)

    def points(self) -> tuple[int | None, int | None]:
        line = self.store.line(self.line)
        return line.incumbent_id, line.verified_id


def noisy(level: float) -> Callable[[int], float]:
    return lambda seed: level + 0.005 * ((seed * 7) % 3 - 1)


def test_a_kept_step_beaten_by_its_sibling_is_superseded(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    # Two proposals from the baseline, prepared at the same time; the first to be screened is kept ...
    first = lab.candidate(lab.base, noisy(0.9))
    second = lab.candidate(lab.base, noisy(0.8))
    lab.run_queued(only=first)
    assert lab.exp(first).verdict == "kept" and lab.points() == (first, lab.base)
    # ... then its sibling beats it on the same screening seed and the line moves to the sibling, which does not
    # contain the first one's change: the first can never be verified, and is not left `kept`.
    lab.run_queued(only=second)
    assert lab.exp(second).verdict == "kept" and lab.exp(second).judgement["reference"] == first
    assert lab.points() == (second, lab.base)
    superseded = lab.exp(first)
    assert superseded.verdict == "inconclusive" and f"superseded: its line builds on exp {second}" in superseded.reason
    assert (first, "inconclusive", "kept") in lab.host.verdicts
    # The lab's close verifies the line's head against its verified point: a claim, and the line's new point.
    lab.referee.verifier.close_lines()
    lab.run_queued()
    assert lab.exp(second).verdict == "improved" and lab.points() == (second, second)
    assert lab.exp(first).verdict == "inconclusive"


def test_a_claim_leaves_a_line_that_built_on_it_where_it_is(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    lab.referee.verify_every = 1  # verify the first kept step at once (mid-lab)
    head = lab.candidate(lab.base, noisy(0.9))
    lab.run_queued(only=head, purpose="screen")
    assert lab.exp(head).verdict == "kept" and lab.exp(head).judgement["verify"]["state"] == "running"
    lab.referee.verify_every = 1000
    # While it is verified, the line builds on it: a step better on the screening seed only.
    on_top = lab.candidate(head, lambda seed: 0.85 if seed == 0 else 0.95)
    lab.run_queued(only=on_top)
    assert lab.exp(on_top).verdict == "kept" and lab.points() == (on_top, lab.base)
    # The head is verified: it becomes the line's verified point, and the line stays on the step above it.
    lab.run_queued()
    assert lab.exp(head).verdict == "improved" and lab.points() == (on_top, head)
    assert lab.exp(on_top).verdict == "kept"
    # At the close the step is verified against the head, fails on fresh seeds, and the line goes back to the
    # head, its last verified point; nothing worse is claimed.
    lab.referee.verifier.close_lines()
    lab.run_queued()
    step = lab.exp(on_top)
    assert step.verdict == "not_improved" and step.judgement["verify"]["anchor"] == head
    assert lab.points() == (head, head)
    assert any(kind == "rebase" and f"exp {head}" in message for kind, message in lab.host.notes)


def test_a_stack_that_fails_is_bisected_down_to_the_step_that_verifies(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    # A real step, then two that only looked better on the screening seed (0); the last one is the line's head.
    real = lab.candidate(lab.base, noisy(0.9))
    lab.run_queued()
    lucky = lab.candidate(real, lambda seed: 0.85 if seed == 0 else 1.05)
    lab.run_queued()
    head = lab.candidate(lucky, lambda seed: 0.8 if seed == 0 else 1.06)
    lab.run_queued()
    assert [lab.exp(e).verdict for e in (real, lucky, head)] == ["kept"] * 3
    assert lab.points() == (head, lab.base)
    # The close verifies the head against the baseline: it fails. Rather than drop all three steps, the line
    # bisects: the middle (lucky) is verified next and fails too, then the step below it, which is claimed.
    lab.referee.verifier.close_lines()
    lab.run_queued()
    assert lab.exp(head).verdict == "not_improved"
    assert lab.exp(lucky).verdict == "not_improved" and lab.exp(lucky).judgement["verify"]["anchor"] == lab.base
    assert lab.exp(real).verdict == "improved" and lab.points() == (real, real)
    rebases = [message for kind, message in lab.host.notes if kind == "rebase"]
    assert any(f"goes back to exp {lucky}" in m for m in rebases) and any(f"goes back to exp {real}" in m
                                                                          for m in rebases)


def test_a_periodic_verification_waits_for_a_close_that_is_near(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    lab.referee.verify_every = 1
    # Fewer experiments left than a period: the close will verify the head anyway, so no runs are spent now.
    lab.host.left = 0
    head = lab.candidate(lab.base, noisy(0.9))
    lab.run_queued(only=head, purpose="screen")
    assert lab.exp(head).verdict == "kept" and "verify" not in lab.exp(head).judgement
    assert not [r for r in lab.store.runs(status="queued")]
    # With experiments left for another period, the same step is verified now.
    lab.host.left = 1
    lab.referee.verifier.maybe_verify(lab.line)
    assert lab.exp(head).judgement["verify"]["state"] == "running"
    lab.run_queued()
    assert lab.exp(head).verdict == "improved"


@pytest.mark.parametrize(("bound", "verdict"), [(0.005, "flagged"), (None, "bad_metric")])
def test_a_value_off_the_log_scale_is_flagged_under_a_bound(tmp_path: Path, bound: float | None,
                                                           verdict: str) -> None:
    # A loss of 0 has no place on the log scale the baseline chose; under a declared bound it is evidence of a
    # cheat for a person, otherwise a value the judge cannot use. Either way the line does not move.
    lab = Lab(tmp_path, {"bound": bound} if bound is not None else None)
    assert lab.referee.judge is not None and lab.referee.judge.scale == "log"
    zero = lab.candidate(lab.base, lambda seed: 0.0)
    lab.run_queued()
    row = lab.exp(zero)
    assert row.verdict == verdict and "could not be judged" in row.reason
    assert any(f.rule == "beyond_bound" for f in row.flags) is (bound is not None)
    assert "beyond_bound" not in row.reason  # reasons reach brains; the evidence stays with the flags
    assert lab.points() == (lab.base, lab.base)


STALLED = (0.27, 16.2, 0.271, 0.2705, 0.2702)


def stalled_lab(tmp_path: Path) -> Lab:
    """A timing task whose second baseline run stalls 60×."""
    lab = Lab.__new__(Lab)
    lab.task = Task.model_validate({
        "task": {"name": "t", "editable": ["a.py"]}, "run": {"command": "x"},
        "metric": {"name": "time_ms", "goal": "minimize"}, "noise": {"confirm_seeds": 3}})
    lab.store = Store.open(tmp_path / ".labmind" / "lab.db")
    lab.store.create_lab(name="t", task_json=lab.task.model_dump_json(), repo_root=str(tmp_path), task_subdir="",
                         base_commit="c0", branch="labmind/t", settings={})
    lab.base = lab.store.add_experiment(kind="baseline", line_id=None, parent_id=None, brain="", base_commit="c0",
                                        status="testing")
    lab.store.update_lab(baseline_id=lab.base)
    lab.line = lab.store.add_line("line-1", lab.base)
    for seed in range(3):
        lab.store.add_run(experiment_id=lab.base, purpose="baseline", seed=seed)
    lab.host = Host()
    lab.referee = Referee(Ledger(lab.store, lab.task, lab.host), lab.task, LabPaths(tmp_path), host=lab.host)
    lab.values = {lab.base: lambda seed: STALLED[seed]}
    lab.run_queued()
    return lab


def test_a_stalled_baseline_run_asks_for_runs_and_is_outvoted(tmp_path: Path) -> None:
    # One of the three baseline runs stalls 60× (a timing task): three runs cannot tell it from chance, so the
    # baseline gets runs until a strict majority outvotes it, and its metric is the clean runs' mean.
    lab = stalled_lab(tmp_path)
    runs = [r for r in lab.store.runs_of(lab.base) if r.purpose == "baseline"]
    assert len(runs) == 5  # two runs added, one at a time, until five can outvote the stall
    base = lab.store.experiment(lab.base)
    assert base.metric == pytest.approx((0.27 + 0.271 + 0.2705 + 0.2702) / 4)
    assert "outliers left out: 16.2" in (base.reason or "")
    assert any("the baseline's runs disagree" in message for _, message in lab.host.notes)


def test_re_runs_that_keep_reproducing_stop_being_spent(tmp_path: Path) -> None:
    # The lab has seen a stall, so a screen far outside its (tiny) noise is re-run once on the same seed. Bad
    # ideas are slow on every run: their re-runs reproduce them. After three such re-runs the rule stops.
    lab = stalled_lab(tmp_path)
    slow = [lab.candidate(lab.base, lambda seed: 0.35) for _ in range(5)]
    for exp in slow:
        lab.run_queued(only=exp)
    screens = [len([r for r in lab.store.runs_of(e) if r.purpose == "screen"]) for e in slow]
    assert screens == [2, 2, 2, 1, 1]
    assert all(lab.exp(e).verdict == "not_improved" for e in slow)


def test_a_kept_step_that_a_live_sibling_builds_on_is_not_superseded_and_is_verified_with_its_stack(
        tmp_path: Path) -> None:
    # Two slots: exp a and exp b are proposed from the baseline, and exp c from exp a while a was the head.
    lab = Lab(tmp_path)
    a = lab.candidate(lab.base, noisy(0.9))
    lab.run_queued(only=a)
    b = lab.candidate(lab.base, noisy(0.85))
    c = lab.candidate(a, noisy(0.8))
    lab.run_queued(only=b)
    assert lab.exp(b).verdict == "kept" and lab.points() == (b, lab.base)
    # exp c, still being screened, builds on exp a: exp a may come back into the line, so it stays `kept`.
    assert lab.exp(a).verdict == "kept"
    lab.run_queued(only=c)
    assert lab.exp(c).verdict == "kept" and lab.points() == (c, lab.base)
    assert lab.exp(b).verdict == "inconclusive" and f"superseded: its line builds on exp {c}" in lab.exp(b).reason
    lab.referee.verifier.close_lines()
    lab.run_queued()
    assert lab.exp(c).verdict == "improved" and lab.points() == (c, c)
    assert f"it includes the provisional step(s) exp {a}" in lab.exp(c).reason
    assert lab.exp(a).verdict == "kept" and f"verified as part of exp {c}'s stack" in lab.exp(a).reason
    assert "superseded" not in lab.exp(a).reason


def test_a_superseded_step_that_its_line_builds_on_again_is_verified_with_its_stack(tmp_path: Path) -> None:
    # The race the rule above cannot see: exp c's row appears only after exp a was superseded (its brain was
    # still writing the change from exp a when exp b took the line).
    lab = Lab(tmp_path)
    a = lab.candidate(lab.base, noisy(0.9))
    lab.run_queued(only=a)
    b = lab.candidate(lab.base, noisy(0.85))
    lab.run_queued(only=b)
    assert lab.exp(a).verdict == "inconclusive" and lab.exp(a).judgement["superseded"] == b
    c = lab.candidate(a, noisy(0.8))
    lab.run_queued(only=c)
    assert lab.points() == (c, lab.base)
    assert lab.exp(a).verdict == "kept"
    assert f"included again: its line's head, exp {c}, builds on it" in lab.exp(a).reason
    assert lab.exp(b).verdict == "inconclusive" and f"superseded: its line builds on exp {c}" in lab.exp(b).reason
    assert (a, "kept", "inconclusive") in lab.host.verdicts
    lab.referee.verifier.close_lines()
    lab.run_queued()
    assert lab.exp(c).verdict == "improved" and f"it includes the provisional step(s) exp {a}" in lab.exp(c).reason
    assert lab.exp(a).verdict == "kept" and lab.exp(a).reason.endswith(f"verified as part of exp {c}'s stack")


def test_a_step_left_behind_is_superseded_once_the_last_experiment_building_on_it_fails(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    a = lab.candidate(lab.base, noisy(0.9))
    lab.run_queued(only=a)
    b = lab.candidate(lab.base, noisy(0.8))
    c = lab.candidate(a, noisy(1.2))
    lab.run_queued(only=b)
    assert lab.exp(a).verdict == "kept"
    lab.run_queued(only=c)
    assert lab.exp(c).verdict == "not_improved" and lab.points() == (b, lab.base)
    assert lab.exp(a).verdict == "inconclusive" and f"superseded: its line builds on exp {b}" in lab.exp(a).reason


def test_a_left_behind_chain_of_kept_steps_is_superseded_whole(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    a = lab.candidate(lab.base, noisy(0.9))
    b = lab.candidate(lab.base, noisy(0.7))  # proposed from the baseline before exp a was screened
    lab.run_queued(only=a)
    c = lab.candidate(a, noisy(0.8))
    lab.run_queued(only=c)
    assert lab.points() == (c, lab.base)
    lab.run_queued(only=b)
    assert lab.points() == (b, lab.base)
    for step in (a, c):
        row = lab.exp(step)
        assert row.verdict == "inconclusive" and f"superseded: its line builds on exp {b}" in row.reason
