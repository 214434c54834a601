"""The director on a real store, without a lab, git or a brain: when it is asked, what it sees, which of its
decisions are carried out and which are refused, with the reason recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from labmind.brains.base import Decision
from labmind.lab.director import Director
from labmind.lab.ledger import Ledger
from labmind.store import Store
from labmind.task import Task
from labmind.verdicts import Verdict
from labmind.workspace.git import RepoInfo


class Listener:
    def __init__(self) -> None:
        self.notes: list[tuple[str, str]] = []

    def event(self, kind: str, message: str) -> None:
        self.notes.append((kind, message))


@pytest.fixture
def lab(tmp_path: Path) -> tuple[Ledger, Director, Listener, dict[str, int]]:
    task = Task.model_validate({"task": {"name": "t", "editable": ["a.py"]}, "run": {"command": "x"},
                                "metric": {"name": "loss", "goal": "minimize"}})
    store = Store.open(tmp_path / "lab.db")
    store.create_lab(name="t", task_json=task.model_dump_json(), repo_root=str(tmp_path), task_subdir="",
                     base_commit="c0", branch="labmind/t", settings={})
    base = store.add_experiment(kind="baseline", line_id=None, parent_id=None, brain="", base_commit="c0",
                                status="done")
    store.update_experiment(base, commit_sha="c0", metric=1.0)
    store.update_lab(baseline_id=base)
    ids = {"base": base, "line1": store.add_line("line-1", base), "line2": store.add_line("line-2", base)}
    # line 1 has a verified win (exp "win"); line 2 a failed try.
    for name, line, verdict, metric in (("win", ids["line1"], Verdict.IMPROVED, 0.9),
                                        ("miss", ids["line2"], Verdict.NOT_IMPROVED, 1.1)):
        exp = store.add_experiment(kind="candidate", line_id=line, parent_id=base, brain="b", base_commit="c0",
                                   status="done")
        store.update_experiment(exp, commit_sha=f"c-{name}", verdict=verdict.value, metric=metric)
        ids[name] = exp
    store.set_incumbent(ids["line1"], ids["win"])
    listener = Listener()
    ledger = Ledger(store, task, listener)
    allowed = [True]
    director = Director(ledger, task, RepoInfo(root=tmp_path, subdir="", head="c0"), brain_name="b",
                        brief_text="brief", every=None, max_lines=3, may_propose=lambda: allowed[0])
    return ledger, director, listener, ids


def test_it_is_asked_every_two_verdicts_per_active_line_and_sees_every_line(lab) -> None:
    _, director, _, ids = lab
    director.since = 3
    assert director.due() is None  # two active lines: every 4 verdicts
    director.since = 4
    view = director.due()
    assert view is not None and director.since == 0
    assert [line.id for line in view.lines] == [ids["line1"], ids["line2"]]
    assert view.best.id == ids["win"] and view.baseline.id == ids["base"] and view.max_lines == 3
    assert view.lines[1].since_improvement == 1 and view.lines[0].n_done == 1


def test_refused_decisions_say_why_and_change_nothing(lab) -> None:
    ledger, director, listener, ids = lab
    director.apply(Decision(kind="retire", reason="dull", line_id=ids["line1"]))
    director.apply(Decision(kind="explore", reason="why not", direction=""))
    director.apply(Decision(kind="combine", reason="merge", line_id=ids["line1"], other_line_id=ids["line2"]))
    director.apply(Decision(kind="combine", reason="self", line_id=ids["line1"], other_line_id=ids["line1"]))
    assert [m for _, m in listener.notes] == [
        f"retire not applied: line {ids['line1']} holds the lab's best (exp {ids['win']}) (reason given: dull)",
        "explore not applied: no direction was given (reason given: why not)",
        f"combine not applied: line {ids['line2']} has no win to combine (reason given: merge)",
        "combine not applied: combine needs two different active lines (reason given: self)",
    ]
    assert [line.status for line in ledger.store.lines()] == ["active", "active"]
    assert ledger.store.decisions() == []


def test_carried_out_decisions_are_recorded_with_their_reasons(lab) -> None:
    ledger, director, listener, ids = lab
    director.apply(Decision(kind="explore", reason="try width", direction="wider layers"))
    new_line = ledger.store.lines()[-1]
    assert new_line.incumbent_id == ids["win"] and new_line.direction == "wider layers"
    director.apply(Decision(kind="retire", reason="stalled", line_id=ids["line2"]))
    assert ledger.store.line(ids["line2"]).status == "retired"
    assert [(d.kind, d.reason) for d in ledger.store.decisions()] == [("explore", "try width"), ("retire", "stalled")]
    # The lab's lines are at their cap; a line that starts from the lab's best holds it too.
    director.max_lines = 2
    director.apply(Decision(kind="explore", reason="more", direction="deeper"))
    director.apply(Decision(kind="retire", reason="a", line_id=new_line.id))
    assert listener.notes[-2][1] == ("explore not applied: the lab already has 2 active lines (at most 2) "
                                     "(reason given: more)")
    assert listener.notes[-1][1] == (f"retire not applied: line {new_line.id} holds the lab's best "
                                     f"(exp {ids['win']}) (reason given: a)")
    assert len(ledger.store.decisions()) == 2
