"""The lab's stoppers, each alone and composed, without a lab."""

from __future__ import annotations

import time

from labmind.lab.stoppers import BrainBudget, BrainFailures, Deadline, Halted, MaxExperiments, Stoppers


def test_a_deadline_counts_from_its_start_and_a_session_without_budget_has_none() -> None:
    deadline = Deadline(budget_s=0.05)
    assert deadline.in_budget() and deadline.left_s() is None  # not started: the session has not begun
    deadline.start()
    left = deadline.left_s()
    assert left is not None and 0 < left <= 0.05 and deadline.reason() is None
    time.sleep(0.06)
    assert not deadline.in_budget() and deadline.left_s() == 0.0
    assert deadline.reason() == "the session's budget is spent"
    unlimited = Deadline(budget_s=None)
    unlimited.start()
    assert unlimited.in_budget() and unlimited.left_s() is None and unlimited.reason() is None


def test_brain_failures_stop_at_the_limit() -> None:
    failures = [0]
    stopper = BrainFailures(limit=3, failures=lambda: failures[0])
    failures[0] = 2
    assert stopper.reason() is None
    failures[0] = 3
    assert stopper.reason() == "the brain failed 3 times in a row"


def test_a_spent_llm_budget_is_said_once() -> None:
    said: list[str] = []
    message: list[str | None] = [None]
    stopper = BrainBudget(exhausted=lambda: message[0], note=said.append)
    assert stopper.reason() is None and said == []
    message[0] = "the lab's LLM budget of $1.00 is used up"
    assert stopper.reason() == message[0]
    assert stopper.reason() == message[0]
    assert said == ["no more proposals: the lab's LLM budget of $1.00 is used up"]


def test_the_experiment_limit_stops_only_new_proposals_and_the_first_reason_wins() -> None:
    made, halted = [4], [False]
    stoppers = Stoppers(every=[Halted(lambda: "the lab is stopping" if halted[0] else None)],
                        new=[MaxExperiments(limit=5, made=lambda: made[0])])
    assert stoppers.reason() is None
    made[0] = 5
    assert stoppers.reason() == "the lab made its 5 experiments"
    assert stoppers.reason(new=False) is None  # a repair the lab requested earlier may still be made
    halted[0] = True
    assert stoppers.reason(new=False) == "the lab is stopping"
    assert stoppers.reason() == "the lab is stopping"
