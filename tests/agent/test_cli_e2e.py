"""End to end through the CLI: a real lab with the agent brain, driven by two agents on two lines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from labmind.agent_tools.ops import AgentTools, ToolsError
from labmind.verdicts import Verdict

from .labkit import (
    as_json,
    changed_lines,
    edit,
    expected_lines,
    experiments,
    labmind,
    make_toy,
    status_of,
    stop_lab,
    wait_stopped,
)

pytestmark = pytest.mark.slow


def test_two_agents_drive_a_lab_on_two_lines(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    t = str(task)
    nolab = labmind("agent", "next", t, check=False)
    assert nolab.returncode == 1 and "labmind agent start" in nolab.stderr

    started = as_json(labmind("agent", "start", t, "--slots", "2", "--max-experiments", "2", "--json"))
    try:
        assert started["state"] == "running" and started["brain"] == "agent:claim=none,submit=3600s"
        assert Path(started["log"]).is_file()
        again = labmind("agent", "start", t, check=False)
        assert again.returncode == 1 and f"already running in {task} (pid {started['pid']})" in again.stderr

        # Each agent claims the offer on its own line; the lab keeps one ready per free slot.
        alice = as_json(labmind("agent", "next", t, "--line", "1", "--agent", "alice", "--wait", "120", "--json"))
        bob = as_json(labmind("agent", "next", t, "--line", "2", "--agent", "bob", "--wait", "120", "--json"))
        assert (alice["line"], bob["line"]) == (1, 2) and alice["experiment"] != bob["experiment"]
        for brief in (alice, bob):
            assert Path(brief["worktree"], "train.py").is_file()
            assert Path(brief["worktree"]).is_relative_to(task / ".labmind" / "worktrees")
            assert brief["editable_files"] == ["train.py"] and brief["task"]["protected"] == ["guard.txt"]
            assert brief["metric"] == {"name": "loss", "goal": "minimize"} and brief["history"] == []
        none_left = labmind("agent", "next", t, "--agent", "carol", check=False)
        assert none_left.returncode == 1 and "no open experiment right now" in none_left.stderr
        assert "Claimed: " in none_left.stderr and "by alice" in none_left.stderr

        # Refusals: an unedited worktree, someone else's claim.
        a, b = str(alice["experiment"]), str(bob["experiment"])
        unedited = labmind("agent", "submit", a, t, "--agent", "alice", "--title", "nothing", check=False)
        assert unedited.returncode == 1 and "no change against its parent" in unedited.stderr
        before_a, after_a = edit(alice["worktree"], "LR = 0.001", "LR = 0.01")
        before_b, after_b = edit(bob["worktree"], "LR = 0.001", "LR = 0.0001")
        stolen = labmind("agent", "submit", a, t, "--agent", "bob", "--title", "mine now", check=False)
        assert stolen.returncode == 1 and "claimed by agent 'alice', not 'bob'" in stolen.stderr

        sub_a = as_json(labmind("agent", "submit", a, t, "--agent", "alice", "--title", "raise LR to 0.01",
                                "--hypothesis", "the optimum is near 0.01", "--json"))
        assert sub_a["status"] == "submitted" and sub_a["changed_files"] == ["train.py"]
        # The token alone identifies the claimer.
        labmind("agent", "submit", b, t, "--token", bob["token"], "--title", "lower LR to 1e-4")
        twice = labmind("agent", "submit", a, t, "--agent", "alice", "--title", "again", check=False)
        assert twice.returncode == 1 and "already submitted" in twice.stderr

        screened = as_json(labmind("agent", "results", a, t, "--wait", "180", "--json"))["experiments"][0]
        verdict_b = as_json(labmind("agent", "results", b, t, "--wait", "180", "--json"))["experiments"][0]
        # Alice's change is kept at screening (her line builds on it); the lab's closing verification on fresh
        # seeds, once no experiment is left to propose, makes it a claim. Then the lab ends by itself.
        assert screened["verdict"] in ("kept", "improved"), screened
        wait_stopped(task, timeout=180)
        verdict_a = as_json(labmind("agent", "results", a, t, "--json"))["experiments"][0]
        text = labmind("agent", "results", a, t).stdout
        assert f"exp {a} (line 1, parent 1, agent alice) 'raise LR to 0.01': improved" in text and "why:" in text
    finally:
        stop_lab(task)
    assert verdict_a["verdict"] == "improved" and verdict_a["final"]
    assert verdict_a["n_runs"] >= 2 and verdict_a["p_value"] < 0.05  # fresh-seed runs, at the claim's level
    assert "verified on fresh seeds" in verdict_a["reason"]
    assert verdict_a["ci"][0] < verdict_a["metric"] < verdict_a["ci"][1] and verdict_a["reason"]
    assert verdict_b["verdict"] == "not_improved" and verdict_b["final"] and verdict_b["agent"] == "bob"

    # The lab made exactly its two experiments and ended by itself; the store holds what the agents did.
    wait_stopped(task)
    rows = {i: r for i, r in experiments(task).items() if r.kind == "candidate"}
    # Offers nobody claimed were withdrawn once the two claims used up the limit; they are not experiments.
    untaken = {i for i, r in rows.items() if r.status == "failed" and "not taken up" in (r.error or "")}
    rows = {i: r for i, r in rows.items() if i not in untaken}
    assert sorted(rows) == sorted([int(a), int(b)])
    assert status_of(task)["experiments"] == 2
    assert untaken  # the case this checks: withdrawn offers are in the store, and no figure counts them
    assert json.loads(labmind("guard-report", str(task), "--json").stdout)["experiments"] == 2
    report = labmind("report", str(task), "--out", str(task / "report")).stdout
    assert "Candidate experiments: 2." in (task / "report" / "report.md").read_text(), report
    assert (rows[int(a)].line_id, rows[int(b)].line_id) == (1, 2)
    assert (rows[int(a)].verdict, rows[int(b)].verdict) == (Verdict.IMPROVED, Verdict.NOT_IMPROVED)
    for exp, before, after, agent in ((a, before_a, after_a, "alice"), (b, before_b, after_b, "bob")):
        row = rows[int(exp)]
        assert row.changed_files == ["train.py"] and row.idea.params["_agent"] == agent
        # labmind's own diff (from git) is exactly the agent's edit.
        assert changed_lines(row.diff or "") == expected_lines(before, after)
        assert changed_lines(row.diff or "") == ["-LR = 0.001", f"+{after.splitlines()[1]}"]
    assert rows[int(a)].idea.hypothesis == "the optimum is near 0.01"
    assert changed_lines(json.loads(labmind("diff", a, t, "--json").stdout)["diff"]) == ["-LR = 0.001", "+LR = 0.01"]

    # A finished experiment whose offer is long gone, and an unknown one, are refused with the reason.
    shutil.rmtree(task / ".labmind" / "agent" / "offers" / f"exp-{a}")
    with pytest.raises(ToolsError, match=rf"experiment {a} is already improved and takes no submission; see"):
        AgentTools(task).submit(int(a), "alice", title="once more")
    with pytest.raises(ToolsError, match=r"there is no experiment 99 in this lab; claim one with"):
        AgentTools(task).submit(99, "alice", title="made up")

    mine = as_json(labmind("agent", "results", t, "--agent", "alice", "--json"))
    assert [r["id"] for r in mine["experiments"]] == [int(a)]
    history = as_json(labmind("agent", "history", t, "--json"))
    assert [[r["id"] for r in ln["experiments"]] for ln in history["lines"]] == [[int(a)], [int(b)]]
    assert history["lines"][0]["incumbent"]["id"] == int(a) and history["lines"][1]["incumbent"]["id"] == 1


def test_a_stopped_lab_withdraws_its_offers_and_offers_them_again_when_started(tmp_path: Path) -> None:
    task = make_toy(tmp_path / "task")
    t = str(task)
    labmind("agent", "start", t, "--slots", "1", "--max-experiments", "1", "--submit-timeout", "20m")
    try:
        first = as_json(labmind("agent", "next", t, "--agent", "alice", "--wait", "120", "--json"))
        status = as_json(labmind("agent", "status", t, "--json"))
        assert status["brain"] == "agent:claim=none,submit=1200s"
        assert [(o["experiment"], o["status"], o["agent"]) for o in status["offers"]] == [
            (first["experiment"], "claimed", "alice")]
        edit(first["worktree"], "LR = 0.001", "LR = 0.01")
        stopped = labmind("stop", t)
        assert f"Continue with `labmind agent start {t}`" in stopped.stdout  # as it was started, not `resume`
        exp = str(first["experiment"])
        late = labmind("agent", "submit", exp, t, "--agent", "alice", "--title", "raise LR", check=False)
        assert late.returncode == 1 and "was withdrawn: the lab stopped" in late.stderr
        assert "labmind agent start" in late.stderr

        # Started again, the lab keeps its timeouts and offers the unfinished experiment again, same id.
        restarted = as_json(labmind("agent", "start", t, "--json"))
        assert restarted["brain"] == "agent:claim=none,submit=1200s"
        again = as_json(labmind("agent", "next", t, "--agent", "alice", "--wait", "120", "--json"))
        assert again["experiment"] == first["experiment"] and again["worktree"] != first["worktree"]
        assert not Path(first["worktree"]).exists()  # the old worktree, edits and all, is gone
        edit(again["worktree"], "LR = 0.001", "LR = 0.01")
        abandoned = as_json(labmind("agent", "submit", exp, t, "--agent", "alice", "--abandon",
                                    "changed my mind", "--json"))
        assert abandoned["status"] == "abandoned"
        record = as_json(labmind("agent", "results", exp, t, "--wait", "60", "--json"))["experiments"][0]
    finally:
        stop_lab(task)
    assert record["state"] == "failed" and record["verdict"] is None
    assert record["error"] == "BrainError: agent 'alice' abandoned experiment 2: changed my mind"
    wait_stopped(task)
    # (offers nobody claimed before the abandoned claim used up the limit were withdrawn: not experiments)
    rows = [r for r in experiments(task).values() if r.kind == "candidate" and "not taken up" not in (r.error or "")]
    assert [(r.status, r.verdict, r.commit_sha) for r in rows] == [("failed", None, None)]  # nothing committed


def test_experiments_count_when_claimed_so_the_agent_picks_the_line(tmp_path: Path) -> None:
    """One experiment allowed, two lines: the lab offers work on both, and the agent's claim decides where the
    experiment goes. Before, the first offer used up the limit, so line 2 never got one."""
    task = make_toy(tmp_path / "task")
    t = str(task)
    as_json(labmind("agent", "start", t, "--slots", "1", "--lines", "2", "--max-experiments", "1", "--json"))
    try:
        mine = as_json(labmind("agent", "next", t, "--line", "2", "--agent", "alice", "--wait", "120", "--json"))
        assert mine["line"] == 2
        edit(mine["worktree"], "LR = 0.001", "LR = 0.01")
        labmind("agent", "submit", str(mine["experiment"]), t, "--agent", "alice", "--title", "raise LR")
        late = labmind("agent", "next", t, "--agent", "bob", "--wait", "3", check=False)
        # Nothing left to claim: the limit is used up (or the lab has already judged it and ended).
        assert late.returncode == 1 and ("all 1 experiments it was asked for" in late.stderr
                                         or "no lab is running" in late.stderr), late.stderr
        wait_stopped(task, timeout=180)
    finally:
        stop_lab(task)
    rows = [r for r in experiments(task).values() if r.kind == "candidate"]
    taken = [r for r in rows if not (r.status == "failed" and "not taken up" in (r.error or ""))]
    assert [r.id for r in taken] == [mine["experiment"]] and taken[0].verdict is not None
    assert status_of(task)["experiments"] == 1 and status_of(task)["max_experiments"] == 1
