"""The plain-text renderings agents read: offers, submissions, results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labmind.agent_tools.brief import render_offer, render_results, render_submitted
from labmind.figures import metric_text


def past(i: int, title: str, verdict: str = "", metric: float | None = 1.0, n: int = 3, **extra: Any) -> dict:
    return {"id": i, "idea": {"title": title}, "verdict": verdict, "reason": extra.pop("reason", ""),
            "metric": metric, "metric_sd": 0.01, "n_runs": n, "ci": [0.98, 1.02], "p_value": None, **extra}


def offer_data(tmp_path: Path) -> dict[str, Any]:
    return {
        "experiment": 7, "line": 2, "agent": "alice", "token": "abc123", "submit_by": None,
        "worktree": "/lab/.labmind/worktrees/exp-7-a1b2c3", "editable_files": ["train.py"],
        "task": {"editable": ["train.py"], "protected": ["prepare.py"], "command": "python train.py",
                 "brief": "Lower the loss."},
        "metric": {"name": "loss", "goal": "minimize"}, "min_effect": 0.02, "min_effect_text": "0.02",
        "min_effect_kind": "absolute",
        "parent": past(3, "raise LR"), "incumbent": past(3, "raise LR"), "best": past(5, "cosine"),
        "baseline": past(1, "baseline"),
        "history": [past(3, "raise LR", "improved", reason="beat the incumbent on fresh seeds", agent="bob"),
                    past(6, "drop warmup", "not_improved", metric=1.1, n=1, reason="not better by 0.02")],
        "near_misses": [],
        "recent_failures": [past(4, "fused kernel", "crashed", metric=None, n=1, reason="exit 1",
                                 log_tail="Traceback (most recent call last)\nValueError: shapes differ\n")],
        "direction": "optimiser settings", "directive": None, "also_holding": [9], "task_dir": str(tmp_path),
    }


def test_an_offer_tells_the_agent_everything_it_needs_and_what_to_do(tmp_path: Path) -> None:
    text = render_offer(offer_data(tmp_path), "cli")
    assert text.startswith("Experiment 7 on line 2 is yours (agent alice, token abc123); submit by no limit.")
    for expected in (
        "Worktree (edit here):  /lab/.labmind/worktrees/exp-7-a1b2c3",
        "Editable files:        train.py",
        "Protected files:       prepare.py",
        "Run command:           python train.py",
        "minimize loss; a change counts only if it beats line 2's incumbent by at least 0.02 on the screening "
        "seed (then the line builds on it) and the gain is verified on fresh seeds.",
        # A candidate's spread is the 95% CI half-width of its mean; the baseline's is the sd of its runs.
        "Best in the lab:                   #5 'cosine', 1 ± 0.02 (95% CI, n=3)",
        "Baseline:                          #1 'baseline', 1 ± 0.01 (sd, n=3)",
        "Line 2's direction: optimiser settings",
        "Research brief:\nLower the loss.",
        "- #3 [bob] 'raise LR': improved, 1 ± 0.02 (95% CI, n=3). Why: beat the incumbent on fresh seeds",
        "- #6 'drop warmup': not_improved, 1.1 (1 run). Why: not better by 0.02",
        "- #4 'fused kernel': crashed, no metric. Why: exit 1\n    | Traceback (most recent call last)\n"
        "    | ValueError: shapes differ",
        "You also hold, unsubmitted: exp 9",
        f"3. labmind agent submit 7 {tmp_path} --token abc123 --title",
        f"4. labmind agent results 7 {tmp_path} --wait 600",
    ):
        assert expected in text, expected
    measuring = render_offer({**offer_data(tmp_path), "min_effect": None,
                              "baseline": past(1, "baseline", metric=None)}, "cli")
    assert "Baseline:                          #1 'baseline', being measured" in measuring
    assert "the lab is still measuring the baseline's noise, which sets the minimum effect" in measuring
    auto = render_offer({**offer_data(tmp_path), "min_effect": 0.0, "min_effect_kind": "auto",
                         "min_effect_text": "any verified gain (min_effect auto)"}, "cli")
    assert ("a change counts only if it beats line 2's incumbent on the screening seed (then the line builds on "
            "it) and the gain is verified on fresh seeds.") in auto and "at least 0 " not in auto
    mcp = render_offer(offer_data(tmp_path), "mcp")
    assert "submit_experiment(experiment=7, title=" in mcp and "labmind agent submit" not in mcp
    assert "0. This worktree" not in text  # the parent is the incumbent: nothing to catch up on


def test_an_offer_made_before_the_incumbent_changed_says_how_to_catch_up(tmp_path: Path) -> None:
    data = {**offer_data(tmp_path), "incumbent": past(8, "cosine", "improved")}
    data["task"] = {**data["task"], "name": "toy"}
    text = render_offer(data, "cli")
    assert ("0. This worktree holds #3's code, but line 2's incumbent is now #8, and your change is judged "
            "against #8. To build on it, first run: git -C /lab/.labmind/worktrees/exp-7-a1b2c3 checkout "
            "refs/labmind/toy/exp/8 -- train.py") in text


def test_metrics_show_spread_and_interval_only_when_there_are_several_runs() -> None:
    assert metric_text({"metric": 1.5, "n_runs": 1, "sd": 0.0, "ci": [1.5, 1.5]}) == "1.5 (1 run)"
    four = {"metric": 1.5, "n_runs": 4, "sd": 0.1, "ci": [1.3, 1.7], "p_value": 0.004}
    assert metric_text(four) == "1.5 ± 0.2 (95% CI, n=4, p=0.004)"  # the CI's half-width, labelled
    assert metric_text(four, "sd") == "1.5 ± 0.1 (sd, n=4, p=0.004)"  # the baseline's: the sd of its runs
    assert metric_text({"metric": None}) == "no metric"


def test_results_name_the_verdict_and_why_or_the_failure(tmp_path: Path) -> None:
    done = {"id": 7, "line": 2, "parent": 3, "agent": "alice", "idea": {"title": "cosine"}, "verdict": "improved",
            "reason": "p=0.001 < 0.05", "meaning": "", "metric": 0.9, "sd": 0.01, "ci": [0.88, 0.92], "n_runs": 3,
            "p_value": 0.001, "flags": ["metric_repeated: printed twice"], "delta_vs_parent": -0.1,
            "parent_metric": 1.0, "state": "done", "error": None}
    failed = {**done, "id": 8, "verdict": None, "state": "failed", "error": "BrainError: agent gave up"}
    waiting = {**done, "id": 9, "verdict": None, "state": "running"}
    text = render_results({"agent": "alice", "experiments": [done, failed, waiting]})
    assert "exp 7 (line 2, parent 3, agent alice) 'cosine': improved, 0.9 ± 0.02 (95% CI, n=3, p=0.001)" \
           ".\n    why: p=0.001 < 0.05\n    flags: metric_repeated: printed twice" in text
    assert "exp 8 (line 2, parent 3, agent alice) 'cosine': failed: BrainError: agent gave up" in text
    assert "exp 9 (line 2, parent 3, agent alice) 'cosine': running (no verdict yet)" in text
    assert "has no experiments in this lab yet" in render_results({"agent": "bob", "experiments": []})
    submitted = render_submitted({"experiment": 7, "line": 2, "status": "submitted", "title": "cosine",
                                  "changed_files": ["train.py"], "task_dir": str(tmp_path)}, "mcp")
    assert "Experiment 7 submitted: 'cosine', changing train.py." in submitted and "results(experiment=7" in submitted
    for how in ("cli", "mcp"):  # an abandoned experiment gets no verdict: the next step is only more work
        gave_up = render_submitted({"experiment": 7, "line": 2, "status": "abandoned", "abandon": "needs data",
                                    "title": "", "changed_files": [], "task_dir": str(tmp_path)}, how)
        assert "abandoned: needs data" in gave_up and "for its verdict" not in gave_up and "more work" in gave_up


def test_an_offer_whose_incumbent_moved_after_it_was_made_says_so_first(tmp_path: Path) -> None:
    """Offered from #3 while #3 was line 2's incumbent; #8 was kept since (provisional, not yet improved)."""
    data = {**offer_data(tmp_path), "incumbent": past(8, "cosine", "kept"), "offered_incumbent": 3}
    data["task"] = {**data["task"], "name": "toy"}
    lines = render_offer(data, "cli").splitlines()
    command = "git -C /lab/.labmind/worktrees/exp-7-a1b2c3 checkout refs/labmind/toy/exp/8 -- train.py"
    assert lines[2] == ("STALE PARENT: this offer was made from line 2's incumbent #3; the incumbent is now #8, "
                        f"kept, and your change is judged against #8. Build on it first: {command}")
    assert any(line.startswith("0. This worktree holds #3's code") for line in lines)
    fresh = render_offer({**offer_data(tmp_path), "offered_incumbent": 3}, "cli")
    assert "STALE PARENT" not in fresh  # the incumbent has not moved
    revisit = {**offer_data(tmp_path), "incumbent": past(8, "cosine", "kept"), "offered_incumbent": 8}
    assert "STALE PARENT" not in render_offer(revisit, "cli")  # offered from a near miss on purpose
